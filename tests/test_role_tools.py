"""The roles as tool-calling loops, through a scripted OpenAI-compatible server (real HTTP).

A scripted model here is a list of moves: tool calls ({"tool_calls": [...]}) and, at the end, the role's
answer (a plain mapping: the arguments of the answer tool). The tests check what went back to the model
(tool messages, images), what the loop decided and what the run's event log recorded. The tests with a
scene share one real Genesis check of a cube hanging off the table (module fixture).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dexforge.sim
from dexforge.agents.context import AgentContext, ModelSettings
from dexforge.agents.roles import RoleError, ask_role
from dexforge.agents.schemas import CritiqueBrief, DecomposeBrief, Move, ProposeBrief, RewardBrief
from dexforge.evals.scripted import ScriptedOpenAI, image_urls
from dexforge.policies.rewards.templates import render
from dexforge.policies.subtask import Plan
from dexforge.sim.spec import TaskSpec
from dexforge.tools.base import Scope


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("DEXFORGE_TEST_KEY", "scripted")


def ctx_for(server: ScriptedOpenAI, role: str, **kw: Any) -> AgentContext:
    settings = ModelSettings(
        backend="openai",
        base_url=server.base_url,
        model="scripted",
        max_retries=0,
        timeout_s=60.0,
        api_key_env="DEXFORGE_TEST_KEY",
        vision=role == "critic",
    )
    return AgentContext(models={role: settings}, **kw)


def calls(*pairs: tuple[str, dict | str]) -> dict:
    return {"tool_calls": [{"name": n, "args": a} for n, a in pairs]}


def tool_messages(request) -> list[dict]:
    return [m for m in request.messages if m.get("role") == "tool"]


def events(run_dir: Path, kind: str = "tool_call") -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def lift_cube() -> TaskSpec:
    return TaskSpec.load(Path(dexforge.sim.__file__).parent / "examples" / "lift_cube.yaml")


def plan_yaml() -> str:
    root = Path(dexforge.sim.__file__).parent.parent / "policies" / "examples" / "lift_cube.plan.yaml"
    return root.read_text()


# no simulator ------------------------------------------------------------------------------------------------
def test_proposer_grounds_a_word_the_catalog_lacks(tmp_path):
    """(d) 'pear' is not in the catalog: find_assets says so and lists entries by use; the model looks up
    'fruit', finds the apple and grounds the request in it."""
    spec = lift_cube().model_dump(mode="json")
    spec["objects"][0]["asset"] = "apple"
    spec["objects"][0]["pose"]["pos"] = [0.0, 0.0, 0.04]
    spec["success"] = [{"kind": "lifted", "object": "apple", "height": 0.1}]
    script = {
        "proposer": [
            calls(("find_assets", {"query": "pear"})),
            calls(("find_assets", {"query": "fruit"})),
            {"reasoning": "No pear in the catalog; the apple is the closest fruit.", "family": "lift", "spec": spec},
        ]
    }
    with ScriptedOpenAI(script) as server:
        ctx = ctx_for(server, "proposer")
        answer, records = ask_role(
            "proposer", ProposeBrief(request="lift the pear"), ctx, scope=Scope(run_dir=str(tmp_path), role="proposer")
        )
        sent = server.for_role("proposer")
    assert answer.spec.objects[0].asset == "apple"
    first, second = tool_messages(sent[1])[0]["content"], tool_messages(sent[2])[-1]["content"]
    assert "no catalog asset matches 'pear'" in first and "food: apple" in first
    assert second.startswith("1 match(es) for 'fruit'") and "apple" in second
    assert [r["kind"] for r in records] == ["tools", "tools", "answer"]
    logged = events(tmp_path)
    assert [(e["role"], e["name"], e["args"]) for e in logged] == [
        ("proposer", "find_assets", {"query": "pear"}),
        ("proposer", "find_assets", {"query": "fruit"}),
    ]
    assert all(e["ok"] and e["summary"] for e in logged)
    # the tools the model was offered: its toolbox plus the answer tool, with the typed schemas
    offered = {t["function"]["name"]: t["function"]["parameters"] for t in sent[0].body["tools"]}
    assert set(offered) == {
        "find_assets",
        "asset_info",
        "validate_spec",
        "static_checks",
        "memory_search",
        "TaskProposal",
    }
    assert offered["find_assets"]["properties"]["max_size_m"]["description"]


def test_malformed_tool_arguments_come_back_and_the_model_goes_on(tmp_path):
    """(f) Broken JSON and arguments that fail the schema are answered with the error; the loop continues."""
    spec_yaml = lift_cube().to_yaml()
    script = {
        "proposer": [
            calls(("find_assets", '{"query": "cube"'), ("validate_spec", {"spec": spec_yaml})),
            calls(("validate_spec", {"spec_yaml": spec_yaml})),
            {"reasoning": "One cube, lift it.", "family": "lift", "spec": lift_cube().model_dump(mode="json")},
        ]
    }
    with ScriptedOpenAI(script) as server:
        ctx = ctx_for(server, "proposer")
        answer, records = ask_role(
            "proposer", ProposeBrief(request="lift the cube"), ctx, scope=Scope(run_dir=str(tmp_path), role="proposer")
        )
        sent = server.for_role("proposer")
    assert answer.family == "lift"
    replies = {m["tool_call_id"]: m["content"] for m in tool_messages(sent[1])}
    assert len(replies) == 2  # both calls were answered
    texts = " | ".join(replies.values())
    assert "find_assets are not valid JSON" in texts
    assert "spec_yaml" in texts and "Field required" in texts  # the schema's own error, naming the field
    assert tool_messages(sent[2])[-1]["content"].startswith("valid: lift_cube")
    logged = events(tmp_path)
    seen = [(e["name"], e["ok"]) for e in logged]
    assert sorted(seen[:2]) == [("find_assets", False), ("validate_spec", False)] and seen[2] == ("validate_spec", True)
    assert len([r for r in records if r["kind"] == "answer"]) == 1


def test_a_model_that_never_answers_is_stopped_at_its_budget(tmp_path):
    """(e) Tool calls past the budget are not run; asked to answer, it keeps calling; the loop ends with a
    reason that says so, and the run fails cleanly with that reason."""
    script = {"proposer": [calls(("find_assets", {"query": "cube"}))] * 6}
    with ScriptedOpenAI(script) as server:
        ctx = ctx_for(server, "proposer", max_tool_calls=2, max_invalid=2)
        with pytest.raises(RoleError) as info:
            ask_role(
                "proposer",
                ProposeBrief(request="lift the cube"),
                ctx,
                scope=Scope(run_dir=str(tmp_path), role="proposer"),
            )
        sent = server.for_role("proposer")
    assert "stopped at its budget of 2 tool calls without an answer" in info.value.reason
    assert len(sent) == 4  # two calls run, then two refused turns
    forced = [r.body.get("tool_choice") for r in sent]
    assert forced[:2] == [None, None] and all(f and f["function"]["name"] == "TaskProposal" for f in forced[2:])
    refused = tool_messages(sent[3])[-1]["content"]
    assert "budget of 2 calls is spent" in refused
    assert len(events(tmp_path)) == 2  # the refused calls never ran

    from dexforge.agents import runner

    with ScriptedOpenAI(script) as server:
        ctx = ctx_for(server, "proposer", max_tool_calls=2, max_invalid=2, memory=False)
        result = runner.start("lift the cube", ctx, root=tmp_path / "runs")
    assert result.status == "failed"
    assert "budget of 2 tool calls" in result.state["reason"] and "proposer" in result.state["reason"]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["model_calls"]["proposer"]["tool_calls"] == 2


def _fake_dexgen(home: Path) -> None:
    folder = home / "dexgen" / "default"
    (folder / "experts" / "cube").mkdir(parents=True)
    (folder / "experts" / "cube" / "expert.json").write_text("{}")
    (folder / "dexgen.pt").write_bytes(b"")


def test_decomposer_asks_whether_dexgen_exists_and_assigns_it(tmp_path, monkeypatch):
    """(c) controllers says a DexGen model is trained for the cube; the decomposer plans a dexgen hold."""
    monkeypatch.setenv("DEXFORGE_HOME", str(tmp_path / "home"))
    spec = lift_cube()
    plan = Plan.model_validate(__import__("yaml").safe_load(plan_yaml()))
    hold = {
        "name": "hold",
        "controller": "dexgen",
        "dexgen": {"mode": "hold", "strength": 1.0},
        "success": [{"kind": "held", "object": "cube", "duration": 0.5}],
        "episode_length": 100,
        "start": "previous",
    }
    data = plan.model_dump(mode="json")
    data["subtasks"].append(hold)

    def answer(body: dict) -> dict:
        said = [m["content"] for m in body["messages"] if m.get("role") == "tool"]
        assert any("dexgen (available)" in s for s in said), said  # it read the tool's answer first
        return {"reasoning": "DexGen is trained for the cube: it holds after the lift.", "plan": data}

    script = {"decomposer": [calls(("controllers", {})), answer]}
    scope = Scope(run_dir=str(tmp_path), role="decomposer", spec_yaml=spec.to_yaml())
    brief = DecomposeBrief(request="lift the cube and hold it", family="lift", spec=spec)
    with ScriptedOpenAI(script) as server:
        ctx = ctx_for(server, "decomposer")
        with pytest.raises(RoleError):  # no model yet: the answer callable refuses to answer
            ask_role("decomposer", brief, ctx.model_copy(update={"max_invalid": 1}), scope=scope)
    _fake_dexgen(tmp_path / "home")
    with ScriptedOpenAI(script) as server:
        got, _ = ask_role(
            "decomposer",
            brief,
            ctx_for(server, "decomposer"),
            scope=scope,
            validate=lambda a: a.plan.check_against(spec),
        )
    assert [s.controller for s in got.plan.subtasks][-1] == "dexgen"
    logged = events(tmp_path)
    assert logged[-1]["name"] == "controllers" and "cube (hold)" in logged[-1]["summary"]


# with a real scene ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hanging(tmp_path_factory) -> tuple[TaskSpec, Path]:
    """One real check of a cube hanging over the table's edge: renders, findings, scene state, metrics."""
    from dexforge.tools.common import call_tool
    from dexforge.tools.sim_tools import check_scene

    spec = lift_cube().model_dump(mode="json")
    spec["objects"][0]["pose"]["pos"] = [0.61, 0.0, 0.025]
    spec["hand"]["pose"]["pos"] = [0.57, 0.0, 0.2]
    spec = TaskSpec.model_validate(spec)
    out = tmp_path_factory.mktemp("hanging") / "specs" / "v1"
    checked = call_tool(check_scene, spec_yaml=spec.to_yaml(), out_dir=str(out), render=False)
    assert Path(checked["scene_state"]).exists() and Path(checked["metrics_batch"]).exists()
    return spec, out


@pytest.mark.genesis
def test_critic_looks_from_the_top_measures_and_corrects(hanging):
    """(a) The critic asks for a top view (the image comes back) and measures the cube against the table;
    it finds the overhang and revises with a move."""
    spec, spec_dir = hanging
    run_dir = spec_dir.parent.parent

    def critique(body: dict) -> dict:
        said = " ".join(m["content"] for m in body["messages"] if m.get("role") == "tool")
        assert "past the table edge" in said
        return {
            "findings": ["The cube reaches past the table's edge (measured); from the top it hangs over."],
            "corrections": [Move(object="cube", pos=(0.45, 0.0, 0.025)).model_dump()],
            "verdict": "revise",
        }

    script = {
        "critic": [
            calls(("render_view", {"eye": [0.45, 0.0, 1.0], "target": [0.45, 0.0, 0.0]}), ("measure", {"a": "cube"})),
            critique,
        ]
    }
    brief = CritiqueBrief(request="lift the cube", spec=spec)
    scope = Scope(run_dir=str(run_dir), role="critic", spec_yaml=spec.to_yaml(), spec_dir=str(spec_dir), vision=True)
    with ScriptedOpenAI(script) as server:
        answer, _ = ask_role("critic", brief, ctx_for(server, "critic"), scope=scope)
        sent = server.for_role("critic")
    assert answer.verdict == "revise" and answer.corrections[0].kind == "move"
    assert len(image_urls(sent[1])) == 1 and image_urls(sent[1])[0].startswith("data:image/png;base64,")
    measured = next(e for e in events(run_dir) if e["name"] == "measure")
    assert measured["ok"] and "past the table edge" in measured["summary"]
    state = json.loads((spec_dir / "scene_state.json").read_text())
    cube = next(b for b in state["bodies"] if b["name"] == "cube")
    assert cube["aabb_max"][0] > 0.6  # the scene really hangs over the edge
    shown = next(e for e in events(run_dir) if e["name"] == "render_view")
    assert shown["images"] and Path(shown["images"][0]).exists()
    # the report shows the critic's trajectory with the image it asked for
    from dexforge.agents.report import write_report

    (run_dir / "summary.json").write_text(json.dumps({"request": "lift the cube", "status": "stopped"}))
    page = write_report(run_dir).read_text()
    section = page[page.index("<h2>Tool trajectories</h2>") :]
    assert "critic" in section and "render_view" in section and "measure" in section
    assert "past the table edge" in section and '<img src="tools/critic/render_view-' in section


@pytest.mark.genesis
def test_reward_writer_dry_runs_reads_the_nan_and_fixes_it(hanging):
    """(b) A program that divides by zero yields NaN in the dry run on the scene's real batch; the model reads
    the error, fixes the division and answers."""
    spec, spec_dir = hanging
    run_dir = spec_dir.parent.parent
    plan = Plan.model_validate(__import__("yaml").safe_load(plan_yaml()))
    grasp = next(s for s in plan.subtasks if s.controller == "rl")
    good = render("grasp", obj="cube")
    bad_source = (
        "def compute_reward(m):\n"
        "    lift = m['cube.lift']\n"
        "    zero = lift * 0.0\n"
        "    ratio = zero / zero\n"
        "    return ratio, {'ratio': ratio}\n"
    )
    script = {
        "reward_writer": [
            calls(("dry_run_reward", {"source": bad_source})),
            calls(("dry_run_reward", {"source": good})),
            {
                "reasoning": "The ratio divided by zero; the grasp template instead.",
                "subtask": grasp.name,
                "source": good,
            },
        ]
    }
    brief = RewardBrief(request="lift the cube", spec=spec, subtask=grasp)
    scope = Scope(
        run_dir=str(run_dir), role="reward_writer", spec_yaml=spec.to_yaml(), spec_dir=str(spec_dir), subtask=grasp.name
    )
    with ScriptedOpenAI(script) as server:
        answer, _ = ask_role("reward_writer", brief, ctx_for(server, "reward_writer"), scope=scope)
        sent = server.for_role("reward_writer")
    assert answer.source == good
    first = tool_messages(sent[1])[-1]
    assert "dry run failed" in first["content"] and "NaN" in first["content"]
    second = tool_messages(sent[2])[-1]["content"]
    assert second.startswith("dry run passed on 16 envs")
    runs = [e for e in events(run_dir) if e["name"] == "dry_run_reward"]
    assert [e["ok"] for e in runs[-2:]] == [False, True]


@pytest.mark.genesis
def test_the_agent_process_imports_neither_genesis_nor_torch(tmp_path):
    """An offline run through proposer, critic and decomposer (tools included): the simulator and torch stay in
    the workers."""
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from dexforge.agents import runner\n"
        "from dexforge.agents.context import AgentContext\n"
        "ctx = AgentContext(stop_after='decompose', memory=False, render=False, video=False)\n"
        f"result = runner.start('lift the cube', ctx, root=Path({str(tmp_path)!r}))\n"
        "print(json.dumps([result.status, 'genesis' in sys.modules, 'torch' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    status, genesis, torch = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == "stopped"
    assert not genesis and not torch
