"""Nodes from an accepted scene to a plan with rewards: decompose (the decomposer's plan of subtasks) and
write_reward (the reward-writer's program for the rl subtask being worked on). Training, judging and the chained
evaluation: `agents.train_nodes`.
"""

from __future__ import annotations

from pathlib import Path

from langgraph.runtime import Runtime

from dexforge.agents import faults
from dexforge.agents.context import AgentContext
from dexforge.agents.roles import ask_role
from dexforge.agents.runs import log_event, rel
from dexforge.agents.schemas import DecomposeBrief, Decomposition, RewardBrief, RewardDraft
from dexforge.agents.state import AgentState
from dexforge.policies.subtask import Plan
from dexforge.sim.spec import TaskSpec, load_yaml
from dexforge.tools.base import Scope
from dexforge.tools.common import ToolFailed, call_tool, progress
from dexforge.tools.sim_tools import metric_keys
from dexforge.tools.train_tools import check_reward


def plan_of(state: AgentState) -> Plan:
    return Plan.model_validate(load_yaml(state["plan_yaml"]))


def _cap(plan: Plan, ctx: AgentContext) -> Plan:
    if ctx.rl_budget is None:
        return plan
    subs = []
    for s in plan.subtasks:
        if s.controller == "rl" and s.budget.env_steps > ctx.rl_budget:
            s = s.model_copy(update={"budget": s.budget.model_copy(update={"env_steps": ctx.rl_budget})})
        subs.append(s)
    return plan.model_copy(update={"subtasks": subs})


def decompose(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    ctx = runtime.context
    spec = TaskSpec.from_yaml(state["spec_yaml"])
    previous = plan_of(state) if state.get("plan_yaml") else None
    brief = DecomposeBrief(
        request=state["request"],
        family=state.get("family") or "lift",
        spec=spec,
        memories=state.get("memories", []),
        examples=state.get("examples", []),
        previous=previous,
        failure=state.get("failure") if previous is not None else None,
    )

    def validate(answer: Decomposition) -> None:
        answer.plan.check_against(spec)

    scope = _scope(state, ctx, "decomposer", plan_yaml=state.get("plan_yaml"))
    answer, calls = ask_role("decomposer", brief, ctx, scope=scope, validate=validate)
    assert isinstance(answer, Decomposition)
    plan = _cap(answer.plan.model_copy(update={"task": spec.name}), ctx)
    plans = list(state.get("plans", []))
    path = Path(state["run_dir"]) / f"plan_v{len(plans) + 1}.yaml"
    plan.save(path)
    plans.append(rel(state["run_dir"], path))
    # a fresh plan keeps the subtasks that passed when it starts with the same ones (same spec, same order)
    passed: dict = {}
    if previous is not None:
        for old, new in zip(previous.subtasks, plan.subtasks, strict=False):
            if old != new or old.name not in state.get("passed", {}):
                break
            passed[new.name] = state["passed"][old.name]
    log_event(state["run_dir"], "plan", version=len(plans), reasoning=answer.reasoning, kept=list(passed))
    progress(event="plan", subtasks=[s.name for s in plan.subtasks])
    stop = {"status": "stopped", "reason": "stopped after planning, as asked (stop_after=decompose)"}
    return {
        **(stop if ctx.stop_after == "decompose" else {}),
        "plan_yaml": plan.to_yaml(),
        "plans": plans,
        "passed": passed,
        "current": len(passed),
        "retries": 0,
        "reward_errors": 0,
        "failure": None,
        "decision": "next",
        "node_path": ["decompose"],
        "model_calls": calls,
    }


def write_reward(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    ctx = runtime.context
    spec = TaskSpec.from_yaml(state["spec_yaml"])
    plan = plan_of(state)
    sub = plan.subtasks[state["current"]]
    history = state.get("attempts", {}).get(sub.name, [])
    last = history[-1] if history else None
    keys = metric_keys(spec)
    brief = RewardBrief(
        request=state["request"],
        spec=spec,
        subtask=sub,
        metrics=keys,
        attempt=len(history),
        previous=(Path(state["run_dir"]) / last["reward"]).read_text() if last and last.get("reward") else None,
        stats=last.get("components") if last else None,
        failure=state.get("failure"),
        memories=state.get("memories", []),
        examples=state.get("examples", []),
    )

    def validate(answer: RewardDraft) -> None:
        if answer.subtask != sub.name:
            raise ValueError(f"`subtask` must be '{sub.name}', the subtask being rewarded, not '{answer.subtask}'")
        try:
            call_tool(check_reward, source=answer.source, metric_keys=sorted(keys))
        except ToolFailed as exc:
            raise ValueError(exc.message) from None

    start_states = start_states_of(state, plan, state["current"])
    scope = _scope(
        state,
        ctx,
        "reward_writer",
        plan_yaml=state["plan_yaml"],
        subtask=sub.name,
        attempts=[dict(a) for a in history],
        start_states=start_states,
        start_metrics=str(Path(start_states).with_name("end_metrics.pt")) if start_states else None,
    )
    draft, calls = ask_role("reward_writer", brief, ctx, scope=scope, validate=validate)
    assert isinstance(draft, RewardDraft)
    if faults.reward_raises(ctx.faults, sub.name, len(history)):
        draft = draft.model_copy(update={"source": faults.RAISING_REWARD})
        log_event(state["run_dir"], "fault", fault="reward_raises", subtask=sub.name, attempt=len(history))
    subs = [s.model_copy(update={"reward": draft.source}) if s.name == sub.name else s for s in plan.subtasks]
    plan = plan.model_copy(update={"subtasks": subs})
    log_event(state["run_dir"], "reward", subtask=sub.name, attempt=len(history), reasoning=draft.reasoning)
    progress(event="reward", subtask=sub.name, attempt=len(history))
    return {
        "plan_yaml": plan.to_yaml(),
        "reflection": draft.reasoning if history else None,
        "node_path": ["write_reward"],
        "model_calls": calls,
    }


def start_states_of(state: AgentState, plan: Plan, index: int) -> str | None:
    """The end states of the subtask before `index` (absolute path) when `index` starts from them."""
    if index == 0 or plan.subtasks[index].start != "previous":
        return None
    before = state.get("passed", {}).get(plan.subtasks[index - 1].name) or {}
    return str(Path(state["run_dir"]) / before["end_states"]) if before.get("end_states") else None


def _scope(state: AgentState, ctx: AgentContext, role: str, **fields) -> Scope:
    return Scope(
        run_dir=state["run_dir"],
        role=role,
        request=state["request"],
        spec_yaml=state["spec_yaml"],
        spec_dir=str(Path(state["run_dir"]) / Path(state["specs"][-1]["spec"]).parent) if state.get("specs") else None,
        backend=ctx.backend,
        job_timeout_s=min(ctx.job_timeout_s, 900.0),
        memory=ctx.memory,
        vision=ctx.model_for(role).vision,
        **fields,
    )
