"""`dexforge chat`: the tool-calling assistant, offline (its rules) and through a real local OpenAI-compatible
HTTP server (scripted replies); runs are real (Genesis workers, tiny settings) where a test needs one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from langchain_core.messages import AIMessage, ToolMessage
from typer.testing import CliRunner

from dexforge.agents.chat.agent import ChatSession, chat_settings
from dexforge.agents.chat.offline import Facts, read_intent, tokens
from dexforge.agents.chat.tools import ChatContext
from dexforge.agents.context import AgentContext, ModelSettings
from dexforge.cli import app
from dexforge.evals.scripted import ScriptedOpenAI, image_urls
from dexforge.home import DexforgeError

TINY = {
    "n_envs": 8,
    "rl_budget": 1024,
    "eval_episodes": 8,
    "video": False,
    "max_retries": 0,
    "max_redecompose": 0,
    "max_improve": 0,
}
MODEL_VARS = ("DEXFORGE_BASE_URL", "DEXFORGE_PROPOSER_BASE_URL", "DEXFORGE_CHAT_BASE_URL", "DEXFORGE_CHAT_MODEL")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in MODEL_VARS:
        monkeypatch.delenv(var, raising=False)


def tool_calls(transcript: list) -> list[tuple[str, dict]]:
    return [(c["name"], c["args"]) for _, m in transcript if isinstance(m, AIMessage) for c in m.tool_calls]


def results(transcript: list) -> list[ToolMessage]:
    return [m for _, m in transcript if isinstance(m, ToolMessage)]


def answer(transcript: list) -> str:
    return next(str(m.content) for _, m in reversed(transcript) if isinstance(m, AIMessage) and m.content)


# the offline rules, without runs ----------------------------------------------------------------------------
RUN = "20261204-101010-lift-the-cube-ab12"
WAITING, FINISHED, NO_RUN = Facts(RUN, "waiting"), Facts(RUN, "failed"), Facts()
INTENTS = [
    ("lift the cube", NO_RUN, "start_run", {"request": "lift the cube"}),
    ("run put the apple in the bowl", FINISHED, "start_run", {"request": "put the apple in the bowl"}),
    ("lift the cube, stop after planning", NO_RUN, "start_run",
     {"request": "lift the cube", "stop_after": "decompose"}),
    ("pick up the cube and put it in the bowl", NO_RUN, "start_run",
     {"request": "pick up the cube and put it in the bowl"}),
    ("open the drawer and just check the scene", NO_RUN, "start_run",
     {"request": "open the drawer", "stop_after": "check"}),
    ("show me the scene", WAITING, "show", {}),
    ("status", WAITING, "status", {}),
    ("how is it going?", FINISHED, "status", {}),
    ("make the cube smaller", WAITING, "amend", {"text": "make the cube smaller"}),
    ("use the mug instead", WAITING, "amend", {"text": "use the mug instead"}),
    ("bigger", WAITING, "amend", {"text": "bigger"}),
    ("lift the ball instead", WAITING, "amend", {"text": "lift the ball instead"}),
    ("make the cube smaller", FINISHED, "amend", {"text": "make the cube smaller"}),
    ("Yes!", WAITING, "approve", {}),
    ("go ahead", WAITING, "approve", {}),
    ("why did it fail?", FINISHED, "explain", {}),
    ("retrain grasp with 20,000 steps", FINISHED, "retrain", {"subtask": "grasp", "budget": 20000}),
    ("retrain the grasp subtask for 5k steps from scratch", FINISHED, "retrain",
     {"subtask": "grasp", "budget": 5000, "from_scratch": True}),
    ("what do you remember about cubes", NO_RUN, "memory_search", {"query": "cubes"}),
    ("search memory for failures with the mug", NO_RUN, "memory_search",
     {"query": "failures with the mug", "kind": "failure"}),
    (f"status of {RUN}", NO_RUN, "status", {"run_id": RUN}),
]  # fmt: skip


@pytest.mark.parametrize(("text", "known", "tool", "args"), INTENTS, ids=[i[0] for i in INTENTS])
def test_offline_rules_read_the_persons_words(text, known, tool, args):
    intent = read_intent(text, known)
    assert (intent.tool, intent.args) == (tool, args)


def test_offline_rules_answer_in_words_when_no_tool_fits():
    assert "I can:" in (read_intent("hello", NO_RUN).reply or "")
    assert "did not understand" in (read_intent("blorp the flurb", NO_RUN).reply or "")
    assert "no scene waiting" in (read_intent("yes", NO_RUN).reply or "")
    assert "How many env steps" in (read_intent("retrain grasp", FINISHED).reply or "")
    assert tokens("Retrain GRASP, 20,000 steps!") == ["retrain", "grasp", "20000", "steps"]


def test_unknown_intents_and_missing_runs_get_helpful_answers(tmp_path):
    with ChatSession(ChatContext(root=tmp_path / "runs"), folder=tmp_path / "chat") as chat:
        assert "I can:" in chat.ask("what can you do") and "retrain grasp with 20000 steps" in chat.ask("help")
        assert "did not understand" in chat.ask("blorp the flurb")
        assert "no scene waiting" in chat.ask("yes")
        shown = list(chat.send("why did it fail"))
        assert tool_calls(shown) == [("explain", {})]
        assert results(shown)[0].status == "error" and "no run in this conversation" in answer(shown)
        missing = list(chat.send("status of 20991231-000000-nothing-here-0000"))
        assert "no run '20991231-000000-nothing-here-0000'" in str(results(missing)[0].content)
        log = [json.loads(line) for line in (tmp_path / "chat" / f"{chat.id}.jsonl").read_text().splitlines()]
        assert [(e["tool"], e["ok"]) for e in log] == [("explain", False), ("status", False)]


def test_the_conversation_survives_in_its_checkpoint(tmp_path):
    with ChatSession(ChatContext(root=tmp_path / "runs"), folder=tmp_path / "chat") as chat:
        chat.ask("hello")
        session = chat.id
    with ChatSession(ChatContext(root=tmp_path / "runs"), session, folder=tmp_path / "chat") as again:
        assert len(again.state["messages"]) == 2
        again.ask("what can you do")
        assert len(again.state["messages"]) == 4
    with pytest.raises(DexforgeError, match="no chat session 'nope'"):
        ChatSession(ChatContext(), "nope", folder=tmp_path / "chat")


def test_memory_search_says_what_the_store_holds(tmp_path, monkeypatch):
    from dexforge.memory.records import TaskMetrics, TaskRecord
    from dexforge.memory.store import ExperienceStore

    monkeypatch.setenv("DEXFORGE_MEMORY_DIR", str(tmp_path / "memory"))
    with ChatSession(ChatContext(root=tmp_path / "runs"), folder=tmp_path / "chat") as chat:
        assert "remember nothing about 'cubes'" in chat.ask("what do you remember about cubes")
        with ExperienceStore.open() as store:
            metrics = TaskMetrics(task_success_rate=0.0)
            store.add_task(
                TaskRecord(request="lift the cube", status="failed", reason="grasp never held it", metrics=metrics)
            )
        turn = list(chat.send("what do you remember about lifting the cube"))
    hits = results(turn)[0].artifact["hits"]
    assert hits[0]["kind"] == "task" and hits[0]["outcome"] == "failed, whole-task success 0%"
    assert -1.0 <= hits[0]["similarity"] <= 1.0
    assert "grasp never held it" in answer(turn)


def test_chat_help_and_a_session_on_the_command_line(monkeypatch):
    runner = CliRunner()
    help_text = runner.invoke(app, ["chat", "--help"]).output
    for phrase in ("make the cube smaller", "retrain grasp with 20000 steps", "DEXFORGE_CHAT_MODEL", "you> yes"):
        assert phrase in help_text
    out = runner.invoke(app, ["chat"], input="what can you do\nquit\n")
    assert out.exit_code == 0, out.output
    assert "offline reasoner" in out.output and "I can:" in out.output


def test_chat_settings_come_from_the_proposer_or_the_chat_variables():
    assert chat_settings({}).backend == "offline"
    env = {"DEXFORGE_BASE_URL": "http://h/v1", "DEXFORGE_MODEL": "m1", "DEXFORGE_PROPOSER_MODEL": "p1"}
    assert (chat_settings(env).model, chat_settings(env).vision) == ("p1", False)
    env |= {"DEXFORGE_CHAT_MODEL": "c1", "DEXFORGE_CHAT_VISION": "1"}
    assert (chat_settings(env).model, chat_settings(env).base_url, chat_settings(env).vision) == (
        "c1",
        "http://h/v1",
        True,
    )


# the model path through a real HTTP server --------------------------------------------------------------------
def model(server: ScriptedOpenAI, **kw) -> ModelSettings:
    return ModelSettings(backend="openai", base_url=server.base_url, model="scripted", max_retries=0, **kw)


def test_scripted_model_gets_validation_errors_and_malformed_calls_back_as_tool_messages(tmp_path):
    script = {
        "assistant": [
            {"tool_calls": [{"name": "start_run", "args": {"stop_after": "later"}}]},
            {"tool_calls": [{"name": "status", "args": '{"run_id": '}]},
            {"content": "Sorry, I could not do that."},
        ]
    }
    with ScriptedOpenAI(script) as server:
        ctx = ChatContext(root=tmp_path / "runs", model=model(server, stream=True))
        with ChatSession(ctx, folder=tmp_path / "chat") as chat:
            assert chat.ask("lift the cube") == "Sorry, I could not do that."
            assert "could not get an answer from the model" in chat.ask("and now?")  # script exhausted: HTTP 500
    first, second, third = server.for_role("assistant")[:3]
    assert first.messages[0]["content"].startswith("You are the dexforge assistant.\n")
    assert {t["function"]["name"] for t in first.body["tools"]} == {
        "start_run", "show", "status", "approve", "amend", "explain", "retrain", "memory_search"
    }  # fmt: skip
    invalid = second.messages[-1]
    assert invalid["role"] == "tool" and "request" in invalid["content"] and "Field required" in invalid["content"]
    assert "stop_after" in invalid["content"]
    assert not any(r.body.get("stream") for r in server.requests)  # whole answers: nothing repairs cut-off calls
    malformed = third.messages[-1]
    assert malformed["role"] == "tool" and "not valid JSON" in malformed["content"]
    assert malformed["tool_call_id"] == third.messages[-2]["tool_calls"][0]["id"]


def test_a_turn_ends_when_its_tool_budget_is_spent(tmp_path):
    call = {"tool_calls": [{"name": "memory_search", "args": {"query": "cubes"}}]}
    with ScriptedOpenAI({"assistant": [call, call, call, {"content": "never asked"}]}) as server:
        ctx = ChatContext(root=tmp_path / "runs", model=model(server), max_tool_calls=2)
        with ChatSession(ctx, folder=tmp_path / "chat") as chat:
            text = chat.ask("what do you remember about cubes")
            log = [json.loads(line) for line in (tmp_path / "chat" / f"{chat.id}.jsonl").read_text().splitlines()]
    assert text.startswith("I stopped after 2 tool calls in this turn")
    assert len(server.requests) == 2 and [e["kind"] for e in log] == ["tool_call", "tool_call", "budget"]


def test_only_the_latest_renders_are_sent_as_images():
    from langchain_core.messages import HumanMessage

    from dexforge.agents.chat.agent import RENDERS, for_model

    def renders(n: int) -> HumanMessage:
        parts = [{"type": "text", "text": f"renders {n}"}, {"type": "image_url", "image_url": {"url": "data:x"}}]
        return HumanMessage(content=parts, name=RENDERS)

    sent = for_model([HumanMessage(content="lift the cube"), renders(1), HumanMessage(content="bigger"), renders(2)])
    assert sent[1].content == "renders 1 (images not repeated; call show to see them again)"
    assert sent[3].content == renders(2).content and sent[0].content == "lift the cube"


@pytest.mark.genesis
def test_scripted_model_starts_a_run_and_sees_its_renders(tmp_path):
    script = {
        "assistant": [
            {"tool_calls": [{"name": "start_run", "args": {"request": "lift the cube", "stop_after": "check"}}]},
            {"content": "I checked a scene with one cube; it is ready."},
        ]
    }
    with ScriptedOpenAI(script) as server:
        ctx = ChatContext(
            run=AgentContext(**TINY, mode="chat"), root=tmp_path / "runs", model=model(server, vision=True)
        )
        with ChatSession(ctx, folder=tmp_path / "chat") as chat:
            turn = list(chat.send("please lift the cube, but only check the scene"))
            state = chat.state
    assert tool_calls(turn) == [("start_run", {"request": "lift the cube", "stop_after": "check"})]
    view = results(turn)[0].artifact
    assert view["status"] == "stopped" and view["critique"]["verdict"] == "accept" and len(view["renders"]) == 3
    assert answer(turn) == "I checked a scene with one cube; it is ready."
    assert state["run_id"] == view["run_id"] and state["requests"] == ["lift the cube"]
    second = server.for_role("assistant")[1]
    assert second.messages[-2]["role"] == "tool" and view["run_id"] in second.messages[-2]["content"]
    assert len(image_urls(second)) == 3  # the renders reached the vision model as images
    assert f"The current run is {view['run_id']}" in second.messages[0]["content"]


# the offline assistant drives one real run through its life ----------------------------------------------------
@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    """One offline chat: start (stop after planning), show, amend, status, retrain too early, approve, explain,
    retrain an unknown subtask, retrain approach, then grasp from approach's end states. Each turn's transcript."""
    root = tmp_path_factory.mktemp("chat")
    ctx = ChatContext(run=AgentContext(**TINY, mode="chat", memory=False), root=root / "runs")
    events: list[tuple[str, object]] = []
    turns: dict[str, list] = {}
    with ChatSession(ctx, folder=root / "chat") as chat:
        for text in (
            "lift the cube, stop after planning",
            "show",
            "make the cube bigger",
            "status",
            "retrain grasp with 1000 steps",
            "yes",
            "why did it fail?",
            "retrain hold with 1000 steps",
            "retrain approach with 1000 steps",
            "retrain grasp with 256 steps",
        ):
            turns[text] = list(chat.send(text, lambda mode, chunk: events.append((mode, chunk))))
        turns["_state"] = [chat.state]
    turns["_events"] = events
    return turns


@pytest.mark.genesis
def test_offline_chat_starts_a_run_that_waits_for_approval(conversation):
    turn = conversation["lift the cube, stop after planning"]
    assert tool_calls(turn) == [("start_run", {"request": "lift the cube", "stop_after": "decompose"})]
    view = results(turn)[0].artifact
    assert view["status"] == "waiting" and view["node_path"] == ["recall", "propose", "check"]
    assert "cube scale 1 " in view["scene"] and set(view["renders"]) == {"front", "side", "top"}
    assert "Answer yes to train it" in answer(turn)
    assert any(mode == "run" for mode, _ in conversation["_events"]), "the run's progress reached on_event"
    shown = results(conversation["show"])[0].artifact
    assert shown["run_id"] == view["run_id"] and shown["scene"] == view["scene"]


@pytest.mark.genesis
def test_offline_chat_amends_the_scene(conversation):
    before = results(conversation["show"])[0].artifact
    turn = conversation["make the cube bigger"]
    assert tool_calls(turn) == [("amend", {"text": "make the cube bigger"})]
    after = results(turn)[0].artifact
    assert after["status"] == "waiting" and after["node_path"][-3:] == ["approve", "propose", "check"]
    spec = lambda view: yaml.safe_load((Path(view["renders"]["front"]).parent.parent / "spec.yaml").read_text())  # noqa: E731
    assert spec(after)["objects"][0]["scale"] > spec(before)["objects"][0].get("scale", 1.0)
    status = conversation["status"]
    assert tool_calls(status) == [("status", {})] and "waiting for approval" in answer(status)


@pytest.mark.genesis
def test_offline_chat_approves_and_explains(conversation):
    early = conversation["retrain grasp with 1000 steps"]
    assert results(early)[0].status == "error" and "has not finished (it is waiting)" in answer(early)
    approved = conversation["yes"]
    assert tool_calls(approved) == [("approve", {})]
    view = results(approved)[0].artifact
    assert view["status"] == "stopped" and view["node_path"][-4:] == ["approve", "decompose", "archive", "report"]
    assert view["plan"][:2] == ["approach (motion_plan)", "grasp (rl)"] and Path(view["report"]).exists()
    explained = conversation["why did it fail?"]
    assert tool_calls(explained) == [("explain", {})]
    text = answer(explained)
    assert "stopped after planning" in text and "you asked for a change: 'make the cube bigger'" in text
    assert "grasp: not reached" in text


@pytest.mark.genesis
def test_offline_chat_retrains_subtasks_of_the_finished_run(conversation):
    unknown = conversation["retrain hold with 1000 steps"]
    assert "has no subtask 'hold'" in answer(unknown) and "'approach', 'grasp'" in answer(unknown)
    approach = results(conversation["retrain approach with 1000 steps"])[0].artifact
    assert approach["subtask"] == "approach" and approach["attempt"] == 0 and approach["success_rate"] > 0
    grasp = results(conversation["retrain grasp with 256 steps"])[0].artifact
    assert grasp["start_states"] == str(Path(approach["folder"]) / "end_states.pt"), "grasp starts where approach ended"
    assert (
        grasp["budget"] == 256 and 0 < grasp["env_steps"] <= 1024 and (Path(grasp["folder"]) / "stats.jsonl").exists()
    )
    run_dir = Path(grasp["run_dir"])
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [(e["subtask"], e["attempt"]) for e in events if e["kind"] == "retrain"] == [("approach", 0), ("grasp", 0)]
    assert "chat_tool" in {e["kind"] for e in events}
    assert conversation["_state"][0]["run_id"] == grasp["run_id"]
