"""The agent's parts that need no simulator: settings, routers, run folders, tools, clean failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dexforge.agents import graph as G
from dexforge.agents import runner
from dexforge.agents.context import AgentContext, ModelSettings
from dexforge.agents.runs import RunNotFound, create_run, find_run, new_run_id
from dexforge.cli import main
from dexforge.evals.scripted import ScriptedOpenAI
from dexforge.tools import all_tools
from dexforge.tools.base import Scope
from dexforge.tools.common import ToolFailed, call_tool
from dexforge.tools.toolboxes import toolbox
from dexforge.tools.train_tools import check_reward


def test_context_resolves_explicit_over_environment_over_default():
    assert AgentContext.from_env({}).model_for("critic").backend == "offline"
    env = {
        "DEXFORGE_BASE_URL": "http://h/v1",
        "DEXFORGE_MODEL": "m",
        "DEXFORGE_CRITIC_MODEL": "v",
        "DEXFORGE_ENVS": "16",
    }
    ctx = AgentContext.from_env(env)
    assert ctx.model_for("proposer").model == "m" and ctx.model_for("critic").model == "v"
    assert ctx.model_for("critic").vision and not ctx.model_for("proposer").vision
    assert ctx.n_envs == 16
    assert AgentContext.from_env(env, n_envs=4).n_envs == 4  # an explicit argument wins
    assert AgentContext.from_env({}).warm_start and AgentContext.from_env({}).memory
    quiet = AgentContext.from_env({"DEXFORGE_WARM_START": "0", "DEXFORGE_USE_MEMORY": "false"})
    assert not quiet.warm_start and not quiet.memory
    assert AgentContext.from_env({"DEXFORGE_WARM_START": "0"}, warm_start=True).warm_start
    with pytest.raises(ValueError):
        AgentContext(max_retries=-1)


def test_routers_follow_the_state_and_refuse_impossible_ones():
    plan = "task: t\nsubtasks:\n  - {name: a, controller: scripted, script: open_hand}\n"
    plan += "  - {name: b, controller: rl, reward_template: grasp, reward_params: {obj: cube}}\n"
    assert G.next_subtask({"plan_yaml": plan, "current": 0}) == "train"
    assert G.next_subtask({"plan_yaml": plan, "current": 1}) == "write_reward"
    assert G.next_subtask({"plan_yaml": plan, "current": 2}) == "collect"
    assert G.after_judge({"plan_yaml": plan, "current": 1, "decision": "retry"}) == "write_reward"
    assert G.after_judge({"decision": "redecompose"}) == "decompose"
    assert G.after_judge({"decision": "give_up"}) == "archive"
    with pytest.raises(ValueError, match="decision"):
        G.after_judge({"decision": None})
    assert G.after_approve({"approved": False}) == "propose"


def test_run_folders_are_found_by_id_prefix_and_say_what_exists(tmp_path):
    run_id, path = create_run("Put the apple in the bowl!", AgentContext(), tmp_path)
    assert "put-the-apple-in-the-bowl" in run_id and (path / "run.json").exists()
    assert find_run(run_id[:-3], tmp_path) == path
    with pytest.raises(RunNotFound, match="recent runs"):
        find_run("nope", tmp_path)
    assert new_run_id("???").split("-")[2] == "task"


def test_tools_answer_errors_the_model_can_act_on(tmp_path):
    assert {t.name for t in all_tools()} >= {"check_scene", "train_subtask", "collect", "check_reward"}
    spec = (Path(__file__).parents[1] / "sim" / "examples" / "lift_cube.yaml").read_text()
    scope = Scope(run_dir=str(tmp_path), role="proposer", spec_yaml=spec)
    tools = {t.name: t for r in ("proposer", "decomposer") for t in toolbox(r, scope)}
    with pytest.raises(ToolFailed, match="piano"):
        call_tool(tools["validate_spec"], spec_yaml="objects: [{asset: piano}]")
    found = call_tool(tools["find_assets"], query="xylophone")
    assert found["matches"] == [] and "graspable" in found["by_tag"]  # no match: the catalog by use instead
    with pytest.raises(ToolFailed, match="line 1"):
        call_tool(check_reward, source="import os\ndef compute_reward(m):\n    return m['x'], {}\n")
    with pytest.raises(ToolFailed, match=r"cube\.lfit"):
        call_tool(
            check_reward, source="def compute_reward(m):\n    return m['cube.lfit'], {}\n", metric_keys=["cube.lift"]
        )
    keys = call_tool(tools["describe_metrics"])["metrics"]
    assert "cube.lift" in keys and "cube.open_fraction" not in keys  # a cube has no joints
    with pytest.raises(ToolFailed):
        call_tool(check_reward, source=123)  # bad arguments are tool errors too


def test_a_role_that_never_answers_validly_fails_the_run_cleanly(tmp_path):
    script = {"proposer": ["{not json"] * 3}
    with ScriptedOpenAI(script) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="scripted")
        ctx = AgentContext(models={"proposer": settings}, max_invalid=3)
        result = runner.start("lift the cube", ctx, root=tmp_path)
        assert len(server.for_role("proposer")) == 3
    assert result.status == "failed" and "proposer" in result.state["reason"]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["node_path"] == ["recall", "report"]
    assert (result.run_dir / "report.html").exists()


def test_an_unreachable_endpoint_fails_the_run_with_the_url(tmp_path):
    settings = ModelSettings(backend="openai", base_url="http://127.0.0.1:9/v1", model="x", max_retries=0, timeout_s=2)
    result = runner.start("lift the cube", AgentContext(models={"proposer": settings}), root=tmp_path)
    assert result.status == "failed" and "127.0.0.1:9" in result.state["reason"]


def test_cli_errors_are_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DEXFORGE_HOME", str(tmp_path))
    assert main(["resume", "no-such-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no run 'no-such-run'" in err[0]
    assert main(["run", "   "]) == 2
    assert "request is empty" in capsys.readouterr().err


def test_the_offline_reasoner_says_what_it_supports(tmp_path):
    result = runner.start("juggle the piano", AgentContext(), root=tmp_path)
    assert result.status == "failed"
    assert "lift" in result.state["reason"] and "open" in result.state["reason"]


def test_langgraph_json_points_at_the_graph():
    root = Path(__file__).parents[1]
    config = json.loads((root / "langgraph.json").read_text())
    module, _, name = config["graphs"]["dexforge"].partition(":")
    assert (root / module).exists() and name == "graph" and hasattr(G, name)


def test_a_similar_request_recalls_the_archived_run_into_state_and_report(tmp_path, monkeypatch):
    monkeypatch.setenv("DEXFORGE_MEMORY_DIR", str(tmp_path / "memory"))
    first = runner.start("juggle the piano on the table", AgentContext(), root=tmp_path)
    assert first.status == "failed"
    second = runner.start("juggle the piano", AgentContext(), root=tmp_path)
    memories = second.state["memories"]
    assert memories and "juggle the piano on the table" in memories[0], memories
    assert any("pitfall" in m for m in memories)  # the failure came back as a pitfall too
    html = (second.run_dir / "report.html").read_text()
    assert "juggle the piano on the table" in html


def test_each_attempt_at_a_subtask_trains_with_its_own_seed(tmp_path, monkeypatch):
    """A retry must not replay the exploration of the attempt that failed: RL's seed moves with the attempt."""
    from types import SimpleNamespace

    from dexforge.agents import train_nodes
    from dexforge.agents.context import AgentContext
    from dexforge.policies.subtask import Plan
    from dexforge.policies.train import rl_seed
    from dexforge.sim.demo import example_spec
    from dexforge.tools.common import ToolFailed

    plan = Plan.model_validate(
        {
            "task": "lift_cube",
            "subtasks": [
                {
                    "name": "grasp",
                    "controller": "rl",
                    "active": ["fingers"],
                    "reward_template": "grasp",
                    "reward_params": {"obj": "cube"},
                    "success": [{"kind": "lifted", "object": "cube", "height": 0.05}],
                    "start": "initial",
                }
            ],
        }
    )
    seen: list[dict] = []

    def fake_call(tool, **kwargs):
        seen.append(kwargs)
        raise ToolFailed("train_subtask", "stopped by the test")

    monkeypatch.setattr(train_nodes, "call_tool", fake_call)
    state = {
        "run_dir": str(tmp_path),
        "request": "lift the cube",
        "spec_yaml": example_spec("lift_cube").to_yaml(),
        "plan_yaml": plan.to_yaml(),
        "current": 0,
        "attempts": {},
    }
    runtime = SimpleNamespace(context=AgentContext(memory=False, warm_start=False))
    for _ in range(2):
        state["attempts"] = train_nodes.train(state, runtime)["attempts"]
    assert [k["attempt"] for k in seen] == [0, 1]
    assert [a["error"] for a in state["attempts"]["grasp"]] == ["stopped by the test"] * 2
    assert rl_seed(7, 0) == 7 and len({rl_seed(7, a) for a in range(4)}) == 4
