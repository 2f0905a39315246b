"""The last nodes: archive the run's outcome for later recall, write the summary and the report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from langgraph.runtime import Runtime

from dexforge.agents import experience
from dexforge.agents.context import AgentContext
from dexforge.agents.runs import load_run, log_event
from dexforge.agents.state import AgentState
from dexforge.home import DexforgeError
from dexforge.policies.subtask import Plan
from dexforge.sim.spec import load_yaml


def _status(state: AgentState) -> str:
    return state.get("status") if state.get("status") in ("succeeded", "failed", "stopped") else "failed"


def archive(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Successes and failures into the experience store, for later runs to recall and warm-start from."""
    if not runtime.context.memory or state.get("status") == "stopped":  # a stopped run learnt nothing to keep
        return {"node_path": ["archive"]}
    try:
        ids = experience.archive(dict(state), summary(state, runtime.context), backend=runtime.context.backend)
        log_event(state["run_dir"], "archived", ids=ids)
    except DexforgeError as exc:  # e.g. another process holds the store's writer lock
        log_event(state["run_dir"], "archive_failed", error=str(exc))
    return {"node_path": ["archive"]}


def summary(state: AgentState, ctx: AgentContext, final: bool = True) -> dict:
    """The run's summary.json content (paths relative to the run directory)."""
    run_dir = Path(state["run_dir"])
    meta = load_run(run_dir)
    plan = Plan.model_validate(load_yaml(state["plan_yaml"])) if state.get("plan_yaml") else None
    subtasks = []
    for sub in plan.subtasks if plan else []:
        attempts = state.get("attempts", {}).get(sub.name, [])
        passed = sub.name in state.get("passed", {})
        rate = (
            state["passed"][sub.name]["success_rate"]
            if passed
            else (attempts[-1].get("success_rate") if attempts else None)
        )
        subtasks.append(
            {
                "name": sub.name,
                "controller": sub.controller,
                "active": list(sub.active),
                "passed": passed,
                "success_rate": rate,
                "attempts": attempts,
            }
        )
    calls: dict[str, dict] = {}
    for c in state.get("model_calls", []):
        row = calls.setdefault(
            c["role"],
            {"calls": 0, "answers": 0, "tool_calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
        )
        row["calls"] += 1
        row["answers"] += 1 if c.get("kind", "answer") in ("answer", "text") else 0
        row["tool_calls"] += len(c.get("tool_calls") or [])
        row["input_tokens"] += c.get("input_tokens", 0)
        row["output_tokens"] += c.get("output_tokens", 0)
        row["cost_usd"] += c.get("cost_usd", 0.0)
    collected = state.get("collect") or {}
    created = time.mktime(time.strptime(meta["created"][:19], "%Y-%m-%dT%H:%M:%S"))
    return {
        "run_id": state["run_id"],
        "request": state["request"],
        "status": _status(state) if final else "running",
        "reason": state.get("reason"),
        "backends": meta.get("backends", {}),
        "specs": state.get("specs", []),
        "plans": state.get("plans", []),
        "subtasks": subtasks,
        "task_success_rate": collected.get("task_success_rate"),
        "episodes": collected.get("episodes"),
        "kept_after": collected.get("kept_after") or {},  # after each subtask, the chained episodes still succeeding
        "env_steps": sum(a.get("env_steps", 0) for v in state.get("attempts", {}).values() for a in v),
        "improved": state.get("improved", 0),
        "wall_s": round(time.time() - created, 1),
        "dataset": collected.get("dataset"),
        "video": collected.get("video"),
        "node_path": [*state.get("node_path", []), *(["report"] if final else [])],
        "model_calls": calls,
        "memories": state.get("memories", []),
        "examples": [
            {k: e.get(k) for k in ("id", "request", "similarity", "task_success_rate")}
            for e in state.get("examples", [])
        ],
    }


def report(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    from dexforge.agents.report import write_report

    run_dir = Path(state["run_dir"])
    data = summary(state, runtime.context)
    (run_dir / "summary.json").write_text(json.dumps(data, indent=2, default=str))
    path = write_report(run_dir)
    log_event(run_dir, "report", path=str(path), status=data["status"])
    return {"status": data["status"], "node_path": ["report"]}
