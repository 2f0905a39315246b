"""Running eval cases: each in its own process with a fresh DEXFORGE_HOME, in parallel where the
machine allows, each `repeat` times; results as JSONL and an HTML summary.

A case process (`python -m dexforge.evals.run CASE.json OUT_DIR`) seeds the case's memory records,
starts the scripted server when the case has replies, drives the real graph with the case's settings and
faults (`dexforge.agents.runner.start`), then observes the run (node path, tool calls from its event
log, corrections, memories, answers per role, success rates) and scores it. A case that outlives its
timeout is killed with its workers and fails with that reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dexforge.evals.suite import Case, Suite


@dataclass
class CaseResult:
    case: str
    repeat: int
    passed: bool
    checks: list[dict] = field(default_factory=list)
    seen: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    wall_s: float = 0.0
    run_dir: str | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


# the case process ----------------------------------------------------------------------------------------------
def _seed_memory(case: Case) -> None:
    from dexforge.memory.records import FailureRecord, TaskRecord
    from dexforge.memory.store import ExperienceStore

    if not case.memory:
        return
    with ExperienceStore.open(writer=True) as store:
        for rec in case.memory:
            if rec.kind == "task":
                store.add_task(TaskRecord(request=rec.request, family=rec.family, status=rec.status, reason=rec.reason))
            else:
                store.add_failure(
                    FailureRecord(
                        request=rec.request, family=rec.family, stage=rec.stage, subtask=rec.subtask, reason=rec.reason
                    )
                )


def _context(case: Case, base_url: str | None):
    """The case's settings; each role's model: scripted (its replies on the local server), live (the
    environment's endpoint) or the offline reasoner."""
    from dexforge.agents.context import ROLES, AgentContext, ModelSettings

    ctx = AgentContext.from_env(**case.settings, faults=tuple(case.faults))
    scripted = ModelSettings(backend="openai", base_url=base_url, model="scripted", vision=True)
    if case.backend == "scripted":
        served = set(case.replies) | set(case.fixed_replies)
        models = {role: scripted if role in served else ModelSettings() for role in ROLES}
        ctx = ctx.model_copy(update={"models": models})
    elif case.backend == "offline":
        ctx = ctx.model_copy(update={"models": {role: ModelSettings() for role in ROLES}})
    elif case.replies or case.fixed_replies:  # live: the roles under test ask the endpoint, the stage stays scripted
        live = AgentContext.from_env().models
        models = {
            role: scripted if role in case.fixed_replies else live[role] if role in case.replies else ModelSettings()
            for role in ROLES
        }
        ctx = ctx.model_copy(update={"models": models})
    return ctx


def as_backend(case: Case, backend: str | None) -> Case:
    """`case` run against another backend: `live` sends the roles a scripted case stands in for to the
    configured endpoint (DEXFORGE_BASE_URL, ...); its fixed replies stay scripted."""
    if backend is None or backend == case.backend:
        return case
    if backend == "live" and case.backend == "scripted":
        return case.model_copy(update={"backend": "live"})
    if backend == "live" and case.backend == "offline":
        return case.model_copy(update={"backend": "live"})
    return case


def observe(result) -> dict[str, Any]:
    """What a finished run shows, for scoring: from its state, summary and event log."""
    run_dir = Path(result.run_dir)
    events = []
    if (run_dir / "events.jsonl").exists():
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    state = result.state
    calls: dict[str, dict[str, int]] = {}
    for record in state.get("model_calls", []):
        row = calls.setdefault(record["role"], {"answers": 0, "invalid": 0, "turns": 0})
        row["turns"] += 1
        if record.get("kind", "answer") in ("answer", "text"):  # tool turns are not answers
            row["answers"] += 1
            row["invalid"] += 0 if record.get("ok", True) else 1
    plan = []
    if state.get("plan_yaml"):
        from dexforge.policies.subtask import Plan
        from dexforge.sim.spec import load_yaml

        plan = [f"{s.name}:{s.controller}" for s in Plan.model_validate(load_yaml(state["plan_yaml"])).subtasks]
    return {
        "status": result.status,
        "plan": plan,
        "reason": state.get("reason"),
        "node_path": summary.get("node_path") or state.get("node_path", []),
        "tool_calls": [
            {"role": e.get("role", "graph"), "name": e["name"], "args": e.get("args") or {}, "ok": e.get("ok")}
            for e in events
            if e["kind"] == "tool_call"
        ],
        "corrections": [c.get("kind") for e in events if e["kind"] == "corrections_applied" for c in e["corrections"]],
        "memories": state.get("memories", []),
        "model_calls": calls,
        "subtask_success": {s["name"]: s.get("success_rate") for s in summary.get("subtasks", [])},
        "task_success_rate": summary.get("task_success_rate"),
        "event_kinds": sorted({e["kind"] for e in events}),
    }


def run_case_here(case: Case, out_dir: Path, repeat: int = 0) -> CaseResult:
    """Run one case in this process (DEXFORGE_HOME must already be the case's own)."""
    from contextlib import nullcontext

    from dexforge.agents import runner
    from dexforge.evals.score import score
    from dexforge.evals.scripted import ScriptedOpenAI

    t0 = time.time()
    _seed_memory(case)
    os.environ.setdefault("OPENAI_API_KEY", "scripted")  # the scripted server takes any key
    script = {**case.replies, **case.fixed_replies} if case.backend == "scripted" else dict(case.fixed_replies)
    server = ScriptedOpenAI(script) if script else nullcontext()
    with server as srv:
        ctx = _context(case, srv.base_url if srv is not None else None)
        result = runner.start(case.request, ctx)
    seen = observe(result)
    checks = [c.to_json() for c in score(case.expect, seen)]
    return CaseResult(
        case=case.name,
        repeat=repeat,
        passed=all(c["ok"] for c in checks),
        checks=checks,
        seen=seen,
        wall_s=round(time.time() - t0, 1),
        run_dir=str(result.run_dir),
    )


def _case_main(case_file: str, out_dir: str, repeat: str) -> int:
    case = Case.model_validate_json(Path(case_file).read_text())
    out = Path(out_dir)
    try:
        result = run_case_here(case, out, int(repeat))
    except Exception as exc:  # the case boundary: any failure is this case's result, with its reason
        import traceback

        traceback.print_exc()
        result = CaseResult(case=case.name, repeat=int(repeat), passed=False, error=f"{type(exc).__name__}: {exc}")
    (out / "result.json").write_text(json.dumps(result.to_json(), indent=2, default=str))
    return 0


# the suite runner ----------------------------------------------------------------------------------------------
def default_jobs() -> int:
    """Cases at a time: one per two CPU cores (each case's worker jobs use two threads)."""
    return max(1, (os.cpu_count() or 2) // 2)


def _spawn(case: Case, case_dir: Path, repeat: int, embedder: str | None) -> subprocess.Popen:
    from dexforge import home as home_mod

    case_dir.mkdir(parents=True, exist_ok=True)
    (case_dir / "case.json").write_text(case.model_dump_json(indent=2))
    env = {
        **os.environ,
        home_mod.HOME_ENV: str(case_dir / "home"),
        home_mod.KERNEL_CACHE_ENV: os.environ.get(home_mod.KERNEL_CACHE_ENV) or str(home_mod.kernel_cache_dir()),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DEXFORGE_MEMORY_DIR", None)  # the case's own store, under its home
    if embedder:
        env["DEXFORGE_EMBEDDER"] = embedder
    if case.backend != "live":  # offline and scripted cases never reach a configured endpoint
        for key in [k for k in env if k.startswith("DEXFORGE_") and k.endswith("BASE_URL")]:
            env.pop(key)
    log = (case_dir / "case.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "dexforge.evals.run", str(case_dir / "case.json"), str(case_dir), str(repeat)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def run_suite(
    suite: Suite,
    out_dir: Path,
    *,
    repeat: int = 1,
    jobs: int | None = None,
    only: list[str] | None = None,
    embedder: str | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    backend: str | None = None,
    tags: list[str] | None = None,
    skip_tags: list[str] | None = None,
) -> list[CaseResult]:
    """Every case (or those named in `only`, with one of `tags`, with none of `skip_tags`) `repeat` times,
    `jobs` at a time, against `backend` when given (live: see `as_backend`); results in `out_dir`."""
    cases = [
        as_backend(c, backend)
        for c in suite.cases
        if (not only or c.name in only)
        and (not tags or set(tags) & set(c.tags))
        and not (set(skip_tags or ()) & set(c.tags))
    ]
    missing = sorted(set(only or []) - {c.name for c in suite.cases})
    if missing:
        from dexforge.evals.suite import SuiteError

        raise SuiteError(f"no case named {missing} in suite '{suite.name}'; cases: {[c.name for c in suite.cases]}")
    todo = [(case, r) for r in range(repeat) for case in cases]
    running: list[tuple[Case, int, subprocess.Popen, float, Path]] = []
    results: list[CaseResult] = []
    jobs = jobs or default_jobs()
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "results.jsonl").open("w") as sink:
        while todo or running:
            while todo and len(running) < jobs:
                case, r = todo.pop(0)
                case_dir = out_dir / "cases" / f"{case.name}.{r}"
                running.append((case, r, _spawn(case, case_dir, r, embedder), time.time(), case_dir))
            time.sleep(0.2)
            for item in list(running):
                case, r, proc, started, case_dir = item
                timed_out = time.time() - started > case.timeout_s
                if proc.poll() is None and not timed_out:
                    continue
                if timed_out and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                running.remove(item)
                result = _collect(case, r, case_dir, started, timed_out)
                results.append(result)
                sink.write(json.dumps(result.to_json(), default=str) + "\n")
                sink.flush()
                if on_result is not None:
                    on_result(result)
    return results


def _collect(case: Case, r: int, case_dir: Path, started: float, timed_out: bool) -> CaseResult:
    path = case_dir / "result.json"
    wall = round(time.time() - started, 1)
    if timed_out:
        return CaseResult(case.name, r, False, error=f"timed out after {case.timeout_s:g} s", wall_s=wall)
    if not path.exists():
        tail = (case_dir / "case.log").read_text()[-800:] if (case_dir / "case.log").exists() else ""
        return CaseResult(case.name, r, False, error=f"the case process died without a result: {tail}", wall_s=wall)
    data = json.loads(path.read_text())
    data["wall_s"] = wall
    return CaseResult(**data)


def pass_rates(results: list[CaseResult], repeat: int) -> dict[str, Any]:
    """pass@1 (the mean pass rate of single tries) and pass^k (all k tries pass), per case and overall."""
    by_case: dict[str, list[bool]] = {}
    for r in results:
        by_case.setdefault(r.case, []).append(r.passed)
    cases = {
        name: {"tries": len(v), "passed": sum(v), "pass@1": sum(v) / len(v), f"pass^{repeat}": float(all(v))}
        for name, v in by_case.items()
    }
    n = max(len(cases), 1)
    return {
        "cases": cases,
        "pass@1": sum(c["pass@1"] for c in cases.values()) / n,
        f"pass^{repeat}": sum(c[f"pass^{repeat}"] for c in cases.values()) / n,
        "failed": sorted(name for name, c in cases.items() if c[f"pass^{repeat}"] < 1.0),
    }


if __name__ == "__main__":
    sys.exit(_case_main(*sys.argv[1:4]))
