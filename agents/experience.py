"""What the recall and archive nodes do with the experience store (memory/).

`recall` returns the most similar past tasks and failures as short texts for the roles (few-shot
examples for the proposer, decomposer and reward-writer, pitfalls for the critic). `archive` stores a
finished run: the task, every subtask that passed (with its reward program, statistics and policy
checkpoint, for warm starts), and the failures with their reasons. The store is opened for each call
and closed again, so the writer lock is held only while writing.
"""

from __future__ import annotations

from pathlib import Path

from dexforge.home import DexforgeError

MIN_SIMILARITY = 0.35  # below this a "memory" is noise, not a similar task
LOCK_WAIT_S = 120.0  # an archive waits this long for another writer (a parallel run archiving) to finish


def recall(request: str, k: int = 3) -> list[str]:
    """Texts of the `k` most similar archived tasks and the 2 most similar failures (empty store: [])."""
    from dexforge.memory.store import ExperienceStore

    out: list[str] = []
    with ExperienceStore.open(writer=False) as store:
        for hit in store.search(request, kind="task", k=k):
            if hit.similarity < MIN_SIMILARITY:
                continue
            rec = hit.record
            rate = rec.metrics.task_success_rate
            rate_text = "n/a" if rate is None else f"{rate:.0%}"
            text = (
                f"task '{rec.request}' ({rec.family or 'unknown family'}): {rec.status}, whole-task success {rate_text}"
            )
            if rec.reason:
                text += f"; reason: {rec.reason}"
            out.append(f"{text} [similarity {hit.similarity:.2f}, {hit.id}]")
        for hit in store.search(request, kind="failure", k=2):
            if hit.similarity >= MIN_SIMILARITY:
                rec = hit.record
                out.append(f"pitfall in '{rec.request}' ({rec.stage} {rec.subtask}): {rec.reason} [{hit.id}]")
    return out


EXAMPLE_SIMILARITY = 0.6  # a task this close that succeeded lends its plan and rewards


def examples(request: str, k: int = 2) -> list[dict]:
    """The `k` most similar tasks that succeeded, with the plan and the reward programs that worked
    (agents.schemas.Example as dicts)."""
    from dexforge.memory.store import ExperienceStore

    out: list[dict] = []
    with ExperienceStore.open(writer=False) as store:
        for hit in store.search(request, kind="task", k=k, where={"outcome": "succeeded"}):
            if hit.similarity < EXAMPLE_SIMILARITY:
                continue
            rec = hit.record
            subs = store.list("subtask", limit=50, where={"task_id": hit.id})
            out.append(
                {
                    "id": hit.id,
                    "request": rec.request,
                    "family": rec.family,
                    "similarity": round(hit.similarity, 3),
                    "task_success_rate": rec.metrics.task_success_rate,
                    "plan_yaml": rec.plan_yaml,
                    "rewards": {e.record.name: e.record.reward_program for e in subs if e.record.reward_program},
                }
            )
    return out


def warm_candidates(request: str, subtask: str, controller: str, k: int = 3) -> list[dict]:
    """Stored policies of subtasks like `subtask` of `request` (passed, checkpoint on disk), nearest first:
    [{"id", "checkpoint", "similarity", "success_rate"}]. Observation and action sizes are checked by the
    training job, which knows them."""
    from dexforge.memory.store import ExperienceStore

    with ExperienceStore.open(writer=False) as store:
        hits = store.similar_subtasks(controller, None, None, subtask_text(subtask, controller, request), k=k)
    return [
        {
            "id": h.id,
            "checkpoint": h.record.checkpoint,
            "similarity": round(h.similarity, 3),
            "success_rate": h.record.success_rate,
        }
        for h in hits
        if h.similarity >= MIN_SIMILARITY
    ]


def subtask_text(name: str, controller: str, request: str) -> str:
    """How a subtask is described when stored and when looked up (the embedded text)."""
    return f"{name} ({controller}) in '{request}'"


def archive(state: dict, summary: dict, backend: str = "") -> dict[str, list[str]]:
    """Store the run's task record, its passed subtasks and its failures; returns the new ids."""
    from dexforge.memory.records import Cost, Critique, FailureRecord, SubtaskRecord, TaskMetrics, TaskRecord
    from dexforge.memory.store import ExperienceStore

    run_dir = Path(state["run_dir"])
    objects = _objects(state.get("spec_yaml"))
    common = {
        "run_id": state.get("run_id", ""),
        "family": state.get("family") or "",
        "objects": objects,
        "backend": backend,
    }
    calls = summary.get("model_calls", {}).values()
    status = "succeeded" if summary.get("status") == "succeeded" else "failed"
    task = TaskRecord(
        **common,
        request=state["request"],
        spec_yaml=state.get("spec_yaml") or "",
        plan_yaml=state.get("plan_yaml") or "",
        critiques=[Critique(**v["critique"]) for v in state.get("specs", []) if v.get("critique")],
        status=status,
        reason=state.get("reason") or "",
        metrics=TaskMetrics(
            task_success_rate=summary.get("task_success_rate"),
            env_steps=summary.get("env_steps"),
            wall_time_s=summary.get("wall_s"),
        ),
        cost=Cost(
            usd=sum(c.get("cost_usd", 0.0) for c in calls),
            input_tokens=sum(c.get("input_tokens", 0) for c in calls),
            output_tokens=sum(c.get("output_tokens", 0) for c in calls),
            model_calls=sum(c.get("calls", 0) for c in calls),
        ),
    )
    ids: dict[str, list[str]] = {"task": [], "subtask": [], "failure": []}
    with ExperienceStore.open(writer=True, wait_s=LOCK_WAIT_S) as store:
        task_id = store.add_task(task)
        ids["task"].append(task_id)
        for sub in summary.get("subtasks", []):
            passed = state.get("passed", {}).get(sub["name"])
            if passed and sub["controller"] == "rl":
                reward = run_dir / passed["reward"] if passed.get("reward") else None
                record = SubtaskRecord(
                    **common,
                    task_id=task_id,
                    name=sub["name"],
                    description=subtask_text(sub["name"], sub["controller"], state["request"]),
                    controller=sub["controller"],
                    reward_program=reward.read_text() if reward and reward.exists() else "",
                    success_rate=passed.get("success_rate"),
                    env_steps=passed.get("env_steps"),
                    checkpoint=str(run_dir / passed["checkpoint"]) if passed.get("checkpoint") else None,
                    obs_size=passed.get("obs_size"),
                    act_size=passed.get("act_size"),
                    active_dofs=list(sub.get("active") or []),
                )
                ids["subtask"].append(store.add_subtask(record))
            for attempt in sub.get("attempts", []):
                why = attempt.get("error") or ("" if attempt == passed else _weak(attempt))
                if why:
                    failure = FailureRecord(
                        **common,
                        task_id=task_id,
                        request=state["request"],
                        stage="train",
                        subtask=sub["name"],
                        reason=why,
                    )
                    ids["failure"].append(store.add_failure(failure))
        if status == "failed" and not ids["failure"]:
            failure = FailureRecord(
                **common, task_id=task_id, request=state["request"], stage="run", reason=state.get("reason") or "failed"
            )
            ids["failure"].append(store.add_failure(failure))
    return ids


def _weak(attempt: dict) -> str:
    rate = attempt.get("success_rate")
    if rate is None:
        return ""
    return f"success {rate:.0%} after {attempt.get('env_steps', 0)} env steps (stopped by {attempt.get('stop_reason')})"


def _objects(spec_yaml: str | None) -> list[str]:
    if not spec_yaml:
        return []
    try:
        from dexforge.sim.spec import TaskSpec

        return sorted({o.asset for o in TaskSpec.from_yaml(spec_yaml).objects})
    except DexforgeError:
        return []
