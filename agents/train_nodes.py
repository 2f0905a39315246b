"""Nodes from a plan with rewards to trained subtasks: train, judge, collect (the plan and its rewards:
`agents.plan_nodes`).

Subtasks are worked on one at a time (`current`). An rl subtask gets a reward program, is trained in a
worker and judged by its evaluated success rate; a failed one gets its reward rewritten with the
training statistics (up to K times), then the task is decomposed afresh once. A subtask that passed is
not trained again, also not after a crash and `dexforge resume`, except once when the chained task is
weak (below `improve_below`): the rl subtask furthest below its target then trains on from its policy for
half its budget, and the round is dropped, keeping the earlier result, if that subtask or a later one then
measures worse.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from langgraph.runtime import Runtime

from dexforge.agents import faults
from dexforge.agents.context import AgentContext
from dexforge.agents.plan_nodes import plan_of, start_states_of
from dexforge.agents.runs import log_event, rel
from dexforge.agents.state import AgentState, Attempt
from dexforge.policies.job_types import CollectResult, TrainSubtaskResult
from dexforge.policies.subtask import Plan
from dexforge.tools.common import CRASH_JOBS, ToolFailed, call_tool, progress
from dexforge.tools.train_tools import collect as collect_tool
from dexforge.tools.train_tools import train_subtask

IMPROVE_SHARE = 0.5  # of its budget, for a subtask trained again after a weak chain (it starts from its policy)


def _improve_budget(plan: Plan, name: str) -> Plan:
    subs = []
    for s in plan.subtasks:
        if s.name == name and s.controller == "rl":
            steps = max(int(s.budget.env_steps * IMPROVE_SHARE), 1)
            s = s.model_copy(update={"budget": s.budget.model_copy(update={"env_steps": steps})})
        subs.append(s)
    return plan.model_copy(update={"subtasks": subs})


def train(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    ctx = runtime.context
    plan = plan_of(state)
    index = state["current"]
    sub = plan.subtasks[index]
    if state.get("improving") == sub.name and state.get("kept"):  # more of what passed, not a new start
        plan = _improve_budget(plan, sub.name)
    attempts = {k: list(v) for k, v in state.get("attempts", {}).items()}
    history = attempts.setdefault(sub.name, [])
    out_dir = Path(state["run_dir"]) / "subtasks" / sub.name / f"attempt{len(history)}"
    done_file = out_dir / "outcome.json"
    start = start_states_of(state, plan, index)
    attempt: Attempt = {
        "attempt": len(history),
        "reflection": state.get("reflection"),
        "error": None,
        "plan": len(state.get("plans", [])),
    }
    # a retry continues from the last attempt's policy when it had learnt the skill in part (new reward, same
    # joints): half the pass rate at least. One that succeeded now and then has settled on a wrong habit
    # (knocking the object away, staying off it) that further training did not leave; a fresh start with a
    # new seed did (apple tuning seed 101: 4%, then 0% warm-started; bottle: 0%, then 100% from scratch)
    # A fresh plan that changed the subtask (it failed again and again, or a carry after it dropped what it
    # held) starts it afresh too: continuing the policy gave the same habit back (apple tuning seed 101: the
    # grasp warm-started after its transport held 0% passed at once, and the transport then held 42%).
    floor = max(ctx.pass_rate / 2, 1e-9)
    version = len(state.get("plans", []))
    learnt = [
        a
        for a in history
        if a.get("checkpoint") and a.get("success_rate", 0.0) >= floor and a.get("plan", version) == version
    ]
    init = str(Path(state["run_dir"]) / learnt[-1]["checkpoint"]) if learnt else None
    attempt["warm_start"] = rel(state["run_dir"], init) if init else None
    # otherwise from the stored policy of the most similar subtask trained before, if one fits
    wanted = init is None and sub.controller == "rl" and ctx.warm_start and ctx.memory  # --no-memory: no recall
    remembered = _remembered(state, sub) if wanted else []
    if done_file.exists():  # finished before the process died: use it, train nothing again
        value = TrainSubtaskResult.model_validate_json(done_file.read_text())
        log_event(state["run_dir"], "train_reused", subtask=sub.name, attempt=len(history))
    else:
        if out_dir.exists():  # a run killed mid-training: keep its files aside, start this attempt afresh
            out_dir.rename(out_dir.with_name(f"{out_dir.name}.interrupted-{int(time.time())}"))
        crash = faults.worker_crash(ctx.faults, sub.name, len(history))
        token = CRASH_JOBS.set(frozenset({"train_subtask"}) if crash else frozenset())
        try:
            if faults.train_fails(ctx.faults, sub.name, len(history)):
                log_event(state["run_dir"], "fault", fault="train_fails", subtask=sub.name, attempt=len(history))
                raise ToolFailed("train_subtask", f"{faults.INJECTED} training '{sub.name}' failed")
            if crash:
                log_event(state["run_dir"], "fault", fault="worker_crash", subtask=sub.name, attempt=len(history))
            value = TrainSubtaskResult.model_validate(
                call_tool(
                    train_subtask,
                    spec_yaml=state["spec_yaml"],
                    plan_yaml=plan.to_yaml(),
                    index=index,
                    out_dir=str(out_dir),
                    start_states=start,
                    n_envs=ctx.n_envs,
                    eval_episodes=ctx.eval_episodes,
                    backend=ctx.backend,
                    timeout_s=ctx.job_timeout_s,
                    init_checkpoint=init,
                    warm_candidates=[c["checkpoint"] for c in remembered],
                    attempt=len(history),
                )
            )
        except ToolFailed as exc:
            value = None
            attempt.update(error=exc.message, success_rate=0.0, env_steps=0, stop_reason="error")
        finally:
            CRASH_JOBS.reset(token)
    if value is not None:
        attempt.update(
            success_rate=value.success_rate,
            env_steps=value.env_steps,
            stop_reason=value.stop_reason,
            checkpoint=rel(state["run_dir"], value.checkpoint),
            end_states=rel(state["run_dir"], value.end_states),
            reward_stats=value.reward_stats or None,
            components=_training_components(out_dir / "stats.jsonl"),
            obs_size=value.obs_size,
            act_size=value.act_size,
        )
        used = next((c for c in remembered if c["checkpoint"] == value.warm_start), None)
        if used is not None:
            attempt.update(warm_start=used["checkpoint"], warm_start_memory=used["id"])
            log_event(state["run_dir"], "warm_start", subtask=sub.name, **used)
    reward_file, stats_file = out_dir / "reward.py", out_dir / "stats.jsonl"
    attempt["reward"] = rel(state["run_dir"], reward_file) if reward_file.exists() else None
    attempt["stats"] = rel(state["run_dir"], stats_file) if stats_file.exists() else None
    history.append(attempt)
    log_event(state["run_dir"], "trained", subtask=sub.name, **{k: attempt.get(k) for k in ("success_rate", "error")})
    return {"attempts": attempts, "node_path": ["train"]}


def _remembered(state: AgentState, sub) -> list[dict]:
    """Warm-start candidates from the experience store (nothing when it cannot be read)."""
    from dexforge.agents import experience
    from dexforge.home import DexforgeError

    try:
        found = experience.warm_candidates(state["request"], sub.name, sub.controller)
    except DexforgeError as exc:
        log_event(state["run_dir"], "warm_start_unavailable", subtask=sub.name, error=str(exc))
        return []
    if found:
        progress(event="warm_start_candidates", subtask=sub.name, candidates=[c["id"] for c in found])
    return found


def _training_components(stats: Path) -> dict | None:
    """Mean per-step reward components over the last quarter of training (what the reward-writer reads)."""
    if not stats.exists():
        return None
    rows = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    tail = rows[-max(1, len(rows) // 4) :]
    keys = {k for r in tail for k in r.get("components", {})}
    out = {k: round(sum(r["components"].get(k, 0.0) for r in tail) / len(tail), 5) for k in sorted(keys)}
    rates = [r["success_rate"] for r in rows if r.get("success_rate") is not None]
    out["_training_success_best"] = round(max(rates), 3) if rates else 0.0
    return out


def judge(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Pass the subtask, or retry it with a rewritten reward, or decompose afresh, or give up."""
    ctx = runtime.context
    plan = plan_of(state)
    sub = plan.subtasks[state["current"]]
    last = state["attempts"][sub.name][-1]
    ok = not last.get("error") and last.get("success_rate", 0.0) >= ctx.pass_rate and last.get("end_states")
    update: dict = {"node_path": ["judge"], "reflection": None}
    kept = state.get("kept")
    if kept and state.get("improving"):  # a round of extra training after a weak chain: never end worse off
        before = kept["passed"].get(sub.name, {}).get("success_rate", 0.0)
        if not ok or (sub.name == state["improving"] and last.get("success_rate", 0.0) < before):
            why = f"'{sub.name}' measured {last.get('success_rate', 0.0):.0%} after training again (was {before:.0%})"
            log_event(state["run_dir"], "improve_dropped", subtask=sub.name, why=why)
            progress(event="improve_dropped", subtask=sub.name, why=why)
            return {
                **update,
                "passed": kept["passed"],
                "collect": kept["collect"],
                "status": kept["status"],
                "reason": kept["reason"],
                "improving": None,
                "kept": None,
                "decision": "keep",
            }
    if ok:
        passed = {**state.get("passed", {}), sub.name: last}
        progress(event="judge", subtask=sub.name, passed=True, success_rate=last["success_rate"])
        return {
            **update,
            "passed": passed,
            "current": state["current"] + 1,
            "retries": 0,
            "reward_errors": 0,
            "failure": None,
            "decision": "next",
        }
    error = last.get("error") or ""
    if error:
        why = f"attempt {last['attempt']} failed: {error}"
    else:
        why = (
            f"attempt {last['attempt']}: success {last.get('success_rate', 0):.0%} < {ctx.pass_rate:.0%} "
            f"after {last.get('env_steps', 0)} env steps (stopped by {last.get('stop_reason') or 'n/a'})"
        )
    progress(event="judge", subtask=sub.name, passed=False, why=why)
    log_event(state["run_dir"], "judged_failed", subtask=sub.name, why=why)
    reward_error = "Reward" in error and state.get("reward_errors", 0) < ctx.max_invalid
    if sub.controller == "rl" and reward_error:
        return {**update, "failure": why, "reward_errors": state.get("reward_errors", 0) + 1, "decision": "retry"}
    if sub.controller == "rl" and state.get("retries", 0) < ctx.max_retries:
        return {**update, "failure": why, "retries": state.get("retries", 0) + 1, "decision": "retry"}
    if state.get("redecomposed", 0) < ctx.max_redecompose:
        failure = f"subtask '{sub.name}' ({sub.controller}) failed: {why}"
        return {
            **update,
            "failure": failure,
            "redecomposed": state.get("redecomposed", 0) + 1,
            "decision": "redecompose",
        }
    reason = f"subtask '{sub.name}' failed after {len(state['attempts'][sub.name])} attempt(s): {why}"
    return {**update, "failure": reason, "status": "failed", "reason": reason, "decision": "give_up"}


def weakest(plan: Plan, passed: dict) -> str | None:
    """The rl subtask that passed furthest below its target success (None when each met its target)."""
    short = [
        (passed[s.name].get("success_rate", 0.0) - s.target_success, i, s.name)
        for i, s in enumerate(plan.subtasks)
        if s.controller == "rl" and s.name in passed and passed[s.name].get("success_rate", 0.0) < s.target_success
    ]
    return min(short)[2] if short else None


def collect(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    ctx = runtime.context
    plan = plan_of(state)
    improved = state.get("improved", 0)
    checkpoints = {
        s.name: str(Path(state["run_dir"]) / state["passed"][s.name]["checkpoint"])
        for s in plan.subtasks
        if s.controller == "rl"
    }
    try:
        value = CollectResult.model_validate(
            call_tool(
                collect_tool,
                spec_yaml=state["spec_yaml"],
                plan_yaml=plan.to_yaml(),
                out_dir=str(Path(state["run_dir"]) / ("collect" if not improved else f"collect{improved + 1}")),
                checkpoints=checkpoints,
                n_envs=ctx.n_envs,
                eval_episodes=ctx.eval_episodes,
                video=ctx.video,
                backend=ctx.backend,
                timeout_s=ctx.job_timeout_s,
            )
        )
    except ToolFailed as exc:
        reason = f"collection failed: {exc.message}"
        return {"collect": {"error": exc.message}, "status": "failed", "reason": reason, "node_path": ["collect"]}
    result = {
        "task_success_rate": value.task_success_rate,
        "episodes": value.episodes,
        "dataset": rel(state["run_dir"], value.dataset),
        "video": rel(state["run_dir"], value.video),
        "kept_after": value.kept_after,
    }
    rate = value.task_success_rate
    status = "succeeded" if rate > 0 else "failed"
    reason = None if rate > 0 else "every subtask passed alone, but no chained episode succeeded"
    done = {"collect": result, "status": status, "reason": reason, "node_path": ["collect"]}
    again = weakest(plan, state["passed"]) if rate < ctx.improve_below and improved < ctx.max_improve else None
    if again is None:
        return {**done, "improving": None, "kept": None, "decision": "done"}
    # a weak chain: train the weakest rl subtask once more (from its policy, with its own seed), chain again
    index = [s.name for s in plan.subtasks].index(again)
    earlier = {s.name for s in plan.subtasks[:index]}
    why = (
        f"the chained task succeeded {rate:.0%} (< {ctx.improve_below:.0%}); '{again}' passed at "
        f"{state['passed'][again]['success_rate']:.0%}, short of its target {plan.subtasks[index].target_success:.0%}"
    )
    log_event(state["run_dir"], "improve", subtask=again, why=why)
    progress(event="improve", subtask=again, why=why)
    return {
        **done,
        "status": "running",
        "kept": {"passed": state["passed"], "collect": result, "status": status, "reason": reason},
        "passed": {k: v for k, v in state["passed"].items() if k in earlier},
        "current": index,
        "improved": improved + 1,
        "improving": again,
        "retries": 0,
        "reward_errors": 0,
        "decision": "improve",
    }
