"""The dexforge graph: request -> scene -> plan -> rewards -> trained subtasks -> dataset -> report.

    recall -> propose -> check --accept--> [approve] -> decompose -> write_reward -> train -> judge
                 ^         | revise (<= N rounds)          ^           ^                  |
                 +---------+                               |           +--- retry (<= K) -+
                                                           +--- re-decompose (once) ------+
    judge --all passed--> collect -> archive -> report;   judge --gave up--> archive -> report
    collect --weak chain (once)--> train (the weakest rl subtask again) -> judge -> ... -> collect

Nodes live in scene_nodes, plan_nodes, train_nodes and finish_nodes; routers here are pure functions of the state.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from dexforge.agents.context import AgentContext
from dexforge.agents.finish_nodes import archive, report
from dexforge.agents.plan_nodes import decompose, write_reward
from dexforge.agents.scene_nodes import approve, check, propose, recall
from dexforge.agents.state import AgentState
from dexforge.agents.train_nodes import collect, judge, train
from dexforge.policies.subtask import Plan
from dexforge.sim.spec import load_yaml


def after_check(
    state: AgentState, runtime: Runtime[AgentContext]
) -> Literal["propose", "approve", "decompose", "archive"]:
    verdict = state.get("verdict")
    if verdict == "revise":
        return "propose"
    if verdict == "fail":
        return "archive"
    if verdict == "accept":
        if state.get("status") == "stopped":  # stop_after="check"
            return "archive"
        return "approve" if runtime.context.mode == "chat" else "decompose"
    raise ValueError(f"check ended with verdict {verdict!r}")


def after_propose(state: AgentState) -> Literal["check", "archive"]:
    return "archive" if state.get("status") == "stopped" else "check"  # stop_after="propose"


def after_approve(state: AgentState) -> Literal["propose", "decompose"]:
    return "decompose" if state.get("approved") else "propose"


def next_subtask(state: AgentState) -> Literal["write_reward", "train", "collect"]:
    """rl subtasks get a reward first; planned and scripted ones go straight to train (measure)."""
    plan = Plan.model_validate(load_yaml(state["plan_yaml"]))
    current = state.get("current", 0)
    if current >= len(plan.subtasks):
        return "collect"
    return "write_reward" if plan.subtasks[current].controller == "rl" else "train"


def after_decompose(state: AgentState) -> Literal["write_reward", "train", "collect", "archive"]:
    """The first subtask, or the end when the run was asked to stop after planning."""
    return "archive" if state.get("status") == "stopped" else next_subtask(state)


def after_judge(state: AgentState) -> Literal["write_reward", "train", "collect", "decompose", "archive"]:
    decision = state.get("decision")
    if decision == "next":
        return next_subtask(state)
    if decision == "retry":
        return "write_reward"
    if decision == "redecompose":
        return "decompose"
    if decision in ("give_up", "keep"):  # keep: a round of extra training measured worse, the earlier result stands
        return "archive"
    raise ValueError(f"judge ended with decision {decision!r}")


def after_collect(state: AgentState) -> Literal["train", "archive"]:
    """A weak chain trains its weakest rl subtask once more (its reward kept), else the run is archived."""
    return "train" if state.get("decision") == "improve" else "archive"


builder = StateGraph(AgentState, context_schema=AgentContext)
for name, node in (
    ("recall", recall),
    ("propose", propose),
    ("check", check),
    ("approve", approve),
    ("decompose", decompose),
    ("write_reward", write_reward),
    ("train", train),
    ("judge", judge),
    ("collect", collect),
    ("archive", archive),
    ("report", report),
):
    builder.add_node(name, node)
builder.add_edge(START, "recall")
builder.add_edge("recall", "propose")
builder.add_conditional_edges("propose", after_propose)
builder.add_conditional_edges("check", after_check)
builder.add_conditional_edges("approve", after_approve)
builder.add_conditional_edges("decompose", after_decompose)
builder.add_edge("write_reward", "train")
builder.add_edge("train", "judge")
builder.add_conditional_edges("judge", after_judge)
builder.add_conditional_edges("collect", after_collect)
builder.add_edge("archive", "report")
builder.add_edge("report", END)

graph = builder.compile()
