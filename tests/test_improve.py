"""One more round of training after a weak chained result (agents.train_nodes: collect, judge; no Genesis)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from dexforge.agents import graph as G
from dexforge.agents import train_nodes
from dexforge.agents.context import AgentContext
from dexforge.policies.subtask import Plan
from dexforge.sim.demo import example_spec

PLAN = Plan.model_validate(
    {
        "task": "lift_cube",
        "subtasks": [
            {"name": "approach", "controller": "scripted", "script": "open_hand", "start": "initial"},
            {
                "name": "grasp",
                "controller": "rl",
                "active": ["fingers"],
                "reward_template": "grasp",
                "reward_params": {"obj": "cube"},
                "success": [{"kind": "lifted", "object": "cube", "height": 0.05}],
                "target_success": 0.97,
            },
            {"name": "lift", "controller": "scripted", "script": "open_hand"},
        ],
    }
)


def attempt(rate: float, n: int = 0) -> dict:
    return {"attempt": n, "success_rate": rate, "checkpoint": f"grasp{n}.pt", "end_states": f"ends{n}.pt"}


def state_after_training(tmp_path, grasp: float) -> dict:
    passed = {"approach": attempt(1.0), "grasp": attempt(grasp), "lift": attempt(0.95)}
    return {
        "run_dir": str(tmp_path),
        "request": "lift the cube",
        "spec_yaml": example_spec("lift_cube").to_yaml(),
        "plan_yaml": PLAN.to_yaml(),
        "current": 3,
        "attempts": {k: [v] for k, v in passed.items()},
        "passed": passed,
    }


@pytest.fixture
def chained(monkeypatch):
    """collect's tool answers a fixed whole-task rate; the folders it was asked for are kept."""
    asked: list[str] = []
    rate = {"value": 0.5}

    def fake_call(tool, **kwargs):
        asked.append(kwargs["out_dir"])
        return {"task_success_rate": rate["value"], "episodes": 128, "dataset": None, "video": None}

    monkeypatch.setattr(train_nodes, "call_tool", fake_call)
    return SimpleNamespace(asked=asked, rate=rate)


def runtime(**kw) -> SimpleNamespace:
    return SimpleNamespace(context=AgentContext(memory=False, **kw))


def test_the_weakest_is_the_rl_subtask_furthest_below_its_target():
    assert train_nodes.weakest(PLAN, {"grasp": attempt(0.72)}) == "grasp"
    assert train_nodes.weakest(PLAN, {"grasp": attempt(0.98)}) is None  # met its target
    assert train_nodes.weakest(PLAN, {"approach": attempt(0.1)}) is None  # only rl subtasks learn more


def test_a_weak_chain_trains_its_weakest_subtask_again_once(tmp_path, chained):
    state = state_after_training(tmp_path, grasp=0.72)
    out = train_nodes.collect(state, runtime())
    assert out["decision"] == "improve" and G.after_collect(out) == "train"
    assert out["current"] == 1 and set(out["passed"]) == {"approach"}  # grasp and what follows it run again
    assert out["kept"]["passed"] == state["passed"] and out["kept"]["collect"]["task_success_rate"] == 0.5
    assert out["improved"] == 1 and out["improving"] == "grasp" and out["status"] == "running"
    # the second chain is collected into its own folder and ends the run, whatever it measures
    again = {**state, **out, "passed": state["passed"]}
    done = train_nodes.collect(again, runtime())
    assert done["decision"] == "done" and G.after_collect(done) == "archive" and done["status"] == "succeeded"
    assert [p.rsplit("/", 1)[-1] for p in chained.asked] == ["collect", "collect2"]


def test_a_strong_chain_or_a_setting_of_zero_ends_the_run(tmp_path, chained):
    state = state_after_training(tmp_path, grasp=0.72)
    chained.rate["value"] = 0.8
    assert train_nodes.collect(state, runtime())["decision"] == "done"  # above improve_below (0.75)
    chained.rate["value"] = 0.2
    assert train_nodes.collect(state, runtime(max_improve=0))["decision"] == "done"
    state = state_after_training(tmp_path, grasp=0.99)
    assert train_nodes.collect(state, runtime())["decision"] == "done"  # nothing short of its target


def improving_state(tmp_path, chained, now: float) -> dict:
    state = state_after_training(tmp_path, grasp=0.72)
    state.update(train_nodes.collect(state, runtime()))
    state["attempts"]["grasp"].append(attempt(now, 1))
    return state


def test_a_round_that_measures_worse_keeps_the_earlier_result(tmp_path, chained):
    state = improving_state(tmp_path, chained, now=0.6)
    out = train_nodes.judge(state, runtime())
    assert out["decision"] == "keep" and G.after_judge(out) == "archive"
    assert out["passed"]["grasp"]["success_rate"] == 0.72 and out["collect"]["task_success_rate"] == 0.5
    assert out["status"] == "succeeded" and out["kept"] is None


def test_a_round_that_measures_better_goes_on_down_the_chain(tmp_path, chained):
    state = improving_state(tmp_path, chained, now=0.9)
    out = train_nodes.judge(state, runtime())
    assert out["decision"] == "next" and out["current"] == 2 and out["passed"]["grasp"]["success_rate"] == 0.9
    # a later subtask that then fails ends the round with the earlier result too
    state.update(out)
    state["attempts"]["lift"].append(attempt(0.1, 1))
    state["plan_yaml"] = PLAN.to_yaml()
    state["current"] = 2
    late = train_nodes.judge(state, runtime())
    assert late["decision"] == "keep" and late["passed"]["grasp"]["success_rate"] == 0.72


def test_the_graph_goes_from_collect_to_train_or_to_the_archive():
    edges = {(e.source, e.target) for e in G.graph.get_graph().edges}
    assert {("collect", "train"), ("collect", "archive"), ("judge", "archive")} <= edges


@pytest.mark.parametrize(("before", "warm"), [(0.04, False), (0.0, False), (0.3, True), (0.72, True)])
def test_a_retry_continues_from_a_policy_that_learnt_the_skill_in_part(tmp_path, monkeypatch, before, warm):
    from dexforge.tools.common import ToolFailed

    seen: list[dict] = []

    def fake_call(tool, **kwargs):
        seen.append(kwargs)
        raise ToolFailed("train_subtask", "stopped by the test")

    monkeypatch.setattr(train_nodes, "call_tool", fake_call)
    state = state_after_training(tmp_path, grasp=before)
    state["current"] = 1
    train_nodes.train(state, SimpleNamespace(context=AgentContext(memory=False, warm_start=False)))
    expected = str(tmp_path / "grasp0.pt") if warm else None
    assert seen[0]["init_checkpoint"] == expected and seen[0]["attempt"] == 1


def test_a_round_of_extra_training_gets_half_the_budget_and_starts_from_the_policy(tmp_path, chained, monkeypatch):
    from dexforge.tools.common import ToolFailed

    state = state_after_training(tmp_path, grasp=0.72)
    state.update(train_nodes.collect(state, runtime()))
    seen: list[dict] = []

    def fake_call(tool, **kwargs):
        seen.append(kwargs)
        raise ToolFailed("train_subtask", "stopped by the test")

    monkeypatch.setattr(train_nodes, "call_tool", fake_call)
    train_nodes.train(state, runtime(warm_start=False))
    sent = Plan.model_validate(yaml.safe_load(seen[0]["plan_yaml"]))
    assert sent.subtasks[1].budget.env_steps == PLAN.subtasks[1].budget.env_steps // 2
    assert seen[0]["init_checkpoint"] == str(tmp_path / "grasp0.pt") and seen[0]["attempt"] == 1


def test_a_subtask_changed_by_a_fresh_plan_starts_afresh(tmp_path, monkeypatch):
    from dexforge.tools.common import ToolFailed

    seen: list[dict] = []

    def fake_call(tool, **kwargs):
        seen.append(kwargs)
        raise ToolFailed("train_subtask", "stopped by the test")

    monkeypatch.setattr(train_nodes, "call_tool", fake_call)
    ctx = SimpleNamespace(context=AgentContext(memory=False, warm_start=False))
    for plans, warm in ((["plan_v1.yaml"], True), (["plan_v1.yaml", "plan_v2.yaml"], False)):
        state = state_after_training(tmp_path, grasp=1.0)
        state["attempts"]["grasp"][0]["plan"] = 1  # trained under the first plan
        state.update(current=1, plans=plans)
        out = train_nodes.train(state, ctx)
        assert (seen[-1]["init_checkpoint"] is not None) == warm
        assert out["attempts"]["grasp"][-1]["plan"] == len(plans)
