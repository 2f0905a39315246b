"""The OpenAI-compatible model path of the roles, against a real local HTTP server (no Genesis, no model)."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

import dexforge.sim
from dexforge.agents import prompts
from dexforge.agents.context import ModelSettings
from dexforge.agents.llm import RoleFailed, ask, chat_model
from dexforge.agents.schemas import (
    Critique,
    CritiqueBrief,
    DecomposeBrief,
    Move,
    ProposeBrief,
    RewardBrief,
    RewardDraft,
    TaskProposal,
)
from dexforge.evals.scripted import ScriptedOpenAI, image_urls
from dexforge.policies.rewards.templates import render
from dexforge.policies.subtask import SubtaskSpec
from dexforge.sim.spec import TaskSpec

METHODS = ["function_calling", "json_schema"]
MODES = [(m, s) for m in METHODS for s in (False, True)]
MODE_IDS = [f"{m}-{'stream' if s else 'json'}" for m, s in MODES]
REJECTED = "Your last answer was rejected"


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch):
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("LANGSMITH_TEST_TRACKING", "false")
    monkeypatch.delenv("LANGCHAIN_TRACING_V2", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("DEXFORGE_TEST_KEY", raising=False)


def lift_cube() -> TaskSpec:
    return TaskSpec.load(Path(dexforge.sim.__file__).parent / "examples" / "lift_cube.yaml")


def proposal() -> dict[str, Any]:
    return TaskProposal(reasoning="One cube, lift it 10 cm.", family="lift", spec=lift_cube()).model_dump(mode="json")


def critique() -> Critique:
    move = Move(object="cube", pos=(0.02, 0.0, 0.025))
    return Critique(findings=["the cube is 4 cm off the palm"], corrections=[move], verdict="revise")


def draft() -> RewardDraft:
    return RewardDraft(reasoning="The grasp template.", subtask="grasp", source=render("grasp", obj="cube"))


def settings(server: ScriptedOpenAI, method: str = "function_calling", **kw: Any) -> ModelSettings:
    base = {"backend": "openai", "base_url": server.base_url, "model": "scripted", "max_retries": 0}
    return ModelSettings(
        **{**base, "structured_output": method, "timeout_s": 20.0, "api_key_env": "DEXFORGE_TEST_KEY", **kw}
    )


def model_for(s: ModelSettings, streaming: bool):
    return chat_model(s, streaming=True) if streaming else None


@pytest.mark.parametrize(("method", "streaming"), MODES, ids=MODE_IDS)
def test_valid_answer_parses(method: str, streaming: bool) -> None:
    with ScriptedOpenAI({"proposer": [proposal()]}) as server:
        s = settings(server, method)
        answer, records = ask(
            s, "proposer", prompts.PROPOSER, "lift the cube", TaskProposal, model=model_for(s, streaming)
        )
    assert answer.spec == lift_cube() and answer.family == "lift"
    assert [(r.ok, r.attempt, r.role, r.model) for r in records] == [(True, 1, "proposer", "scripted")]
    body = server.requests[0].body
    assert body.get("stream", False) is streaming
    if method == "function_calling":
        assert body["tools"][0]["function"]["name"] == "TaskProposal" and "response_format" not in body
    else:
        assert body["response_format"]["json_schema"]["strict"] is False and "tools" not in body
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"


@pytest.mark.parametrize(("method", "streaming"), MODES, ids=MODE_IDS)
def test_malformed_json_goes_back_to_the_model(method: str, streaming: bool) -> None:
    # A truncated answer that partial-JSON repair would turn into a valid Critique (corrections=[]).
    truncated = '{"findings": ["the cube floats"], "verdict": "accept", "corrections": ['
    with ScriptedOpenAI({"critic": [truncated, critique()]}) as server:
        s = settings(server, method)
        answer, records = ask(s, "critic", prompts.CRITIC, "check it", Critique, model=model_for(s, streaming))
    assert answer == critique()
    assert [r.ok for r in records] == [False, True] and [r.attempt for r in records] == [1, 2]
    assert "JSON" in (records[0].error or "")
    second = server.requests[1]
    assert REJECTED in second.text() and "Answer again with the whole corrected answer." in second.text()
    roles = [m["role"] for m in second.messages]
    if method == "function_calling":  # the rejected tool call is answered by a tool message
        assert roles == ["system", "user", "assistant", "tool", "user"]
        assert second.messages[3]["tool_call_id"] == second.messages[2]["tool_calls"][0]["id"]
        assert second.messages[2]["tool_calls"][0]["function"]["arguments"] == truncated  # as written, unrepaired
    else:
        assert roles == ["system", "user", "assistant", "user"] and second.messages[2]["content"] == truncated


@pytest.mark.parametrize("method", METHODS)
def test_unknown_asset_is_named_and_recovered(method: str) -> None:
    bad = proposal()
    bad["spec"]["objects"][0]["asset"] = "piano"
    with ScriptedOpenAI({"proposer": [bad, proposal()]}) as server:
        answer, records = ask(settings(server, method), "proposer", prompts.PROPOSER, "lift it", TaskProposal)
    assert answer.spec.objects[0].asset == "cube" and len(records) == 2
    told = server.requests[1].messages[-1]["content"]
    assert told.startswith(REJECTED) and "objects.0.asset" in told and "'piano'" in told
    assert "\n" not in told


def test_validate_rejection_is_retried() -> None:
    seen: list[str] = []

    def validate(d: RewardDraft) -> None:
        seen.append(d.subtask)
        if d.subtask != "grasp":
            raise ValueError("no rl subtask named 'lift'; rl subtasks: grasp")

    wrong = draft().model_copy(update={"subtask": "lift"})
    with ScriptedOpenAI({"reward_writer": [wrong, draft()]}) as server:
        s = settings(server)
        answer, records = ask(s, "reward_writer", prompts.REWARD_WRITER, "write", RewardDraft, validate=validate)
    assert answer == draft() and seen == ["lift", "grasp"]
    assert records[0].error == "no rl subtask named 'lift'; rl subtasks: grasp"
    assert "no rl subtask named 'lift'" in server.requests[1].messages[-1]["content"]


def test_max_invalid_exhausted_raises_role_failed() -> None:
    script = {"critic": ["not json", {"verdict": "maybe"}, "{}"]}
    with ScriptedOpenAI(script) as server, pytest.raises(RoleFailed) as info:
        ask(settings(server), "critic", prompts.CRITIC, "check", Critique, max_invalid=2)
    assert info.value.role == "critic" and info.value.attempts == 2 and len(info.value.records) == 2
    assert "verdict" in str(info.value) and "2 invalid answer(s)" in str(info.value)
    assert len(server.requests) == 2


@pytest.mark.parametrize("vision", [True, False])
def test_images_are_sent_only_with_vision(tmp_path: Path, vision: bool) -> None:
    png = tmp_path / "front.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    with ScriptedOpenAI({"critic": [critique()]}) as server:
        s = settings(server, "json_schema", vision=vision)
        ask(s, "critic", prompts.CRITIC, "look", Critique, images=[png, png])
    urls = image_urls(server.requests[0])
    if vision:
        assert len(urls) == 2 and urls[0].startswith("data:image/png;base64,")
        assert base64.b64decode(urls[0].split(",", 1)[1]) == png.read_bytes()
    else:
        assert urls == [] and isinstance(server.requests[0].messages[1]["content"], str)


@pytest.mark.parametrize(("method", "streaming"), MODES, ids=MODE_IDS)
def test_usage_and_cost_are_recorded(monkeypatch, method: str, streaming: bool) -> None:
    monkeypatch.setenv("DEXFORGE_TEST_KEY", "sk-test")
    with ScriptedOpenAI({"reward_writer": ["{", draft()]}) as server:
        s = settings(server, method, price_in_per_mtok=2.0, price_out_per_mtok=10.0)
        _, records = ask(s, "reward_writer", prompts.REWARD_WRITER, "write", RewardDraft, model=model_for(s, streaming))
    for record, request in zip(records, server.requests, strict=True):
        assert record.input_tokens == len(json.dumps(request.messages)) // 4 > 0
        assert record.latency_s > 0
        assert record.cost_usd == pytest.approx((2.0 * record.input_tokens + 10.0 * record.output_tokens) / 1e6)
    assert [r.output_tokens for r in records] == [1, len(draft().model_dump_json()) // 4]  # counted once
    assert records[1].input_tokens > records[0].input_tokens  # the retry carries the rejected answer
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"


def test_endpoint_down_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    s = ModelSettings(backend="openai", base_url=url, model="m", max_retries=0, timeout_s=2.0)
    start = time.perf_counter()
    with pytest.raises(RoleFailed) as info:
        ask(s, "proposer", prompts.PROPOSER, "lift", TaskProposal)
    assert time.perf_counter() - start < 10  # a hang would take minutes; this is not a benchmark
    assert url in str(info.value) and "cannot reach" in str(info.value)
    assert info.value.records[0].ok is False


def test_timeout_and_server_error_become_role_failed() -> None:
    def slow(body: dict) -> dict:
        time.sleep(1.5)
        return critique().model_dump(mode="json")

    with ScriptedOpenAI({"critic": [slow]}) as server:
        with pytest.raises(RoleFailed, match="no answer from"):
            ask(settings(server, timeout_s=0.3), "critic", prompts.CRITIC, "check", Critique)
        with pytest.raises(RoleFailed, match=r"HTTP 500.*no scripted reply left for role 'critic'"):
            ask(settings(server), "critic", prompts.CRITIC, "check", Critique)
    assert server.requests[-1].status == 500


class _State(TypedDict, total=False):
    answer: Critique


def test_langgraph_messages_stream_mode_streams_and_stays_strict() -> None:
    truncated = '{"findings": [], "verdict": "accept", "corrections": ['
    with ScriptedOpenAI({"critic": [truncated, critique()]}) as server:
        s = settings(server)

        def critic(state: _State) -> dict:
            return {"answer": ask(s, "critic", prompts.CRITIC, "check", Critique)[0]}

        graph = (
            StateGraph(_State).add_node("critic", critic).add_edge(START, "critic").add_edge("critic", END).compile()
        )
        events = list(graph.stream({}, stream_mode=["messages", "values"]))
    chunks = [data[0] for mode, data in events if mode == "messages"]
    assert chunks and all(getattr(c, "tool_call_chunks", None) is not None for c in chunks)
    assert [mode for mode, _ in events][-1] == "values" and events[-1][1]["answer"] == critique()
    assert all(r.body["stream"] is True for r in server.requests) and len(server.requests) == 2


def test_models_route() -> None:
    import openai

    with ScriptedOpenAI({}) as server:
        listed = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0).models.list()
    assert [m.id for m in listed] == ["scripted"]


# prompts ----------------------------------------------------------------------------------------------
def test_system_prompts_name_their_role() -> None:
    for role, text in prompts.SYSTEM_PROMPTS.items():
        assert text.splitlines()[0] == f"You are the dexforge {role}."
    assert "compute_reward(m) -> (reward, components)" in prompts.REWARD_WRITER and "grasp:" in prompts.REWARD_WRITER


def test_render_brief_sections() -> None:
    spec = lift_cube()
    text = prompts.render_brief(ProposeBrief(request="lift the block", previous=spec, error="objects.0.asset: bad"))
    assert "## Request\nlift the block" in text and "| cube |" in text and "name: lift_cube" in text
    assert text.index("## Asset catalog") < text.index(f"## {REJECTED}\nobjects.0.asset: bad")
    finding = {"check": "reach", "severity": "error", "subject": "cube", "message": "too far", "values": {"d": 0.7}}
    text = prompts.render_brief(CritiqueBrief(request="r", spec=spec, findings=[finding], renders=["/x/front.png"]))
    assert "- error [reach] cube: too far (d=0.7)" in text and "front.png" in text
    text = prompts.render_brief(DecomposeBrief(request="r", family="lift", spec=spec, failure="grasp at 10%"))
    assert "## Why it failed\ngrasp at 10%" in text and REJECTED not in text
    sub = SubtaskSpec(name="grasp", controller="rl", reward_template="grasp", reward_params={"obj": "cube"})
    brief = RewardBrief(
        request="r",
        spec=spec,
        subtask=sub,
        metrics={"cube.pos": "(num_envs, 3) object centre, m"},
        previous=draft().source,
        stats={"grasp": {"mean": 0.125, "max": 1.0}, "contact": {"mean": 0.5, "max": 1.0}},
    )
    text = prompts.render_brief(brief)
    assert "```python\n" in text and "| grasp | 0.125 | 1 |" in text and "| cube.pos | (num_envs, 3)" in text


def test_prompts_import_no_genesis() -> None:
    code = "import sys, dexforge.agents.prompts, dexforge.agents.llm; print('genesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
