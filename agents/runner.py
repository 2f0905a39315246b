"""Running the graph for a request: a run directory, a SQLite checkpointer in it, streaming progress,
resumption after a crash, and a clean failure (summary and report written) when a run cannot go on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from dexforge.agents.context import AgentContext
from dexforge.agents.runs import CHECKPOINTS, create_run, load_run, log_event
from dexforge.home import DexforgeError

OnEvent = Callable[[str, Any], None]


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str  # succeeded | failed | waiting (chat: an interrupt asks the user)
    state: dict
    interrupt: Any = None

    @property
    def report(self) -> Path | None:
        path = self.run_dir / "report.html"
        return path if path.exists() else None

    def to_json(self) -> dict:
        summary = (
            json.loads((self.run_dir / "summary.json").read_text()) if (self.run_dir / "summary.json").exists() else {}
        )
        return {
            "status": self.status,
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "report": str(self.report) if self.report else None,
            "reason": self.state.get("reason"),
            "subtasks": {s["name"]: s.get("success_rate") for s in summary.get("subtasks", [])},
            "task_success_rate": summary.get("task_success_rate"),
            "kept_after": summary.get("kept_after") or {},
            "env_steps": summary.get("env_steps"),
            "wall_s": summary.get("wall_s"),
            "model_calls": summary.get("model_calls", {}),
            "node_path": summary.get("node_path", self.state.get("node_path", [])),
            "dataset": summary.get("dataset"),
        }


@contextmanager
def compiled(run_dir: Path) -> Iterator[Any]:
    """The graph compiled with the run's SQLite checkpointer."""
    from dexforge.agents.graph import builder

    conn = sqlite3.connect(run_dir / CHECKPOINTS, check_same_thread=False)
    try:
        yield builder.compile(checkpointer=SqliteSaver(conn))
    finally:
        conn.close()


def _config(run_id: str) -> dict:
    return {"configurable": {"thread_id": run_id}, "recursion_limit": 200}


def start(
    request: str,
    ctx: AgentContext,
    on_event: OnEvent | None = None,
    history: list[str] | None = None,
    root: Path | None = None,
) -> RunResult:
    """Create a run for `request` and drive it until it ends (or, in chat mode, asks the user)."""
    request = " ".join(request.split())
    if not request:
        raise DexforgeError("the request is empty; say what the hand should do, e.g. 'lift the cube'")
    run_id, run_dir = create_run(request, ctx, root)
    on_event and on_event("run", {"run_id": run_id, "run_dir": str(run_dir)})
    inputs = {
        "request": request,
        "history": history or [],
        "run_id": run_id,
        "run_dir": str(run_dir),
        "status": "running",
        "node_path": [],
        "model_calls": [],
    }
    return _drive(run_dir, ctx, inputs, on_event)


def resume(
    run_dir: Path, on_event: OnEvent | None = None, reply: str | None = None, ctx: AgentContext | None = None
) -> RunResult:
    """Continue a run from its last checkpoint (after a crash), or answer its pending question (chat)."""
    meta = load_run(run_dir)
    ctx = ctx or AgentContext.model_validate(meta["context"])
    log_event(run_dir, "resume", reply=reply)
    on_event and on_event("run", {"run_id": meta["run_id"], "run_dir": str(run_dir), "resumed": True})
    return _drive(run_dir, ctx, Command(resume=reply) if reply is not None else None, on_event)


def inspect(run_dir: Path) -> RunResult:
    """A run as its folder and checkpoint hold it, running nothing: `waiting` (with the pending question), the
    final status of its summary.json, or `running` (not finished: working in another process, or stopped by a
    crash; `resume` continues it)."""
    meta = load_run(run_dir)
    with compiled(run_dir) as graph:
        snapshot = graph.get_state(_config(meta["run_id"]))
    state = dict(snapshot.values)
    pending = [i.value for task in snapshot.tasks for i in task.interrupts]
    if snapshot.next and pending:
        return RunResult(meta["run_id"], run_dir, "waiting", state, pending[0])
    summary_file = run_dir / "summary.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        state["reason"] = state.get("reason") or summary.get("reason")
        return RunResult(meta["run_id"], run_dir, summary.get("status") or "failed", state)
    return RunResult(meta["run_id"], run_dir, "running", state)


def _drive(run_dir: Path, ctx: AgentContext, inputs: Any, on_event: OnEvent | None) -> RunResult:
    from dexforge.tools.common import TOOL_CALLS

    meta = load_run(run_dir)
    config = _config(meta["run_id"])
    token = TOOL_CALLS.set(lambda call: log_event(run_dir, "tool_call", **call))
    with compiled(run_dir) as graph:
        try:
            for mode, chunk in graph.stream(
                inputs, config, context=ctx, stream_mode=["updates", "custom"], durability="sync"
            ):
                if on_event is not None:
                    on_event(mode, chunk)
        except Exception as exc:
            return _fail(graph, config, run_dir, ctx, exc)
        finally:
            TOOL_CALLS.reset(token)
        snapshot = graph.get_state(config)
    state = dict(snapshot.values)
    if snapshot.next:  # stopped at an interrupt (chat approval)
        pending = [i.value for task in snapshot.tasks for i in task.interrupts]
        return RunResult(meta["run_id"], run_dir, "waiting", state, pending[0] if pending else None)
    return RunResult(meta["run_id"], run_dir, state.get("status", "failed"), state)


def _fail(graph, config: dict, run_dir: Path, ctx: AgentContext, exc: Exception) -> RunResult:
    """Record why the run stopped, archive it and write its summary and report from the last state."""
    from dexforge.agents import experience
    from dexforge.agents.finish_nodes import summary
    from dexforge.agents.report import write_report

    state = dict(graph.get_state(config).values)
    # the calls of a role that never answered validly count too (tokens, cost, invalid answers)
    state["model_calls"] = [*state.get("model_calls", []), *getattr(exc, "records", [])]
    reason = f"{type(exc).__name__}: {exc}"
    state.update(status="failed", reason=reason)
    log_event(run_dir, "run_failed", reason=reason)
    data = summary(state, ctx)
    (run_dir / "summary.json").write_text(json.dumps(data, indent=2, default=str))
    write_report(run_dir)
    try:
        if ctx.memory:
            experience.archive(state, data, backend=ctx.backend)
    except DexforgeError as archive_exc:
        log_event(run_dir, "archive_failed", error=str(archive_exc))
    return RunResult(load_run(run_dir)["run_id"], run_dir, "failed", state)
