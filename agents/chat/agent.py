"""`dexforge chat` as a conversation with a tool-calling agent (LangGraph's prebuilt agent pattern).

    START -> agent --tool calls--> tools (ToolNode) -> observe -> agent
               |---malformed calls only-----------> observe
               +---an answer in words-------------> END

`agent` is the model bound to the chat tools (`agents.chat.tools`): a ChatOpenAI for an OpenAI-compatible
endpoint, or the offline rules (`agents.chat.offline`). `tools` runs the calls; a tool's error and
arguments that fail validation come back as error tool messages. `observe` answers malformed calls (not
JSON) with an error tool message, takes the conversation's current run from the results, and, for a
model with vision, shows it the scene's renders as a user message with images. A turn may make at most
`ChatContext.max_tool_calls` calls; then the turn ends with a message that says so.

`ChatSession` keeps a conversation in a SQLite checkpointer ($DEXFORGE_HOME/chat/chat.sqlite, one thread
per session) and logs every tool call to $DEXFORGE_HOME/chat/<session>.jsonl.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import ToolException
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.prebuilt.tool_node import ToolInvocationError
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from dexforge.agents.chat.tools import TOOLS, ChatContext, OnEvent
from dexforge.agents.context import AgentContext, ModelSettings
from dexforge.agents.runs import log_event
from dexforge.home import DexforgeError, home

SYSTEM = """You are the dexforge assistant.
You help a person turn sentences such as "put the apple in the bowl" into simulated dexterous-hand tasks (a
Shadow hand in the Genesis simulator) and train them, by calling your tools.

How a run goes: start_run proposes a scene, checks it (physics and a critic) and waits for the person's
approval. While it waits you can show it, amend it with the person's change (the run revises the scene and
waits again) or approve it when the person says yes. After approval the run plans subtasks, writes reward
programs, trains policies (minutes to hours) and writes a report. stop_after ends a run early.

Rules:
- Call approve only after the person approved the scene. A reply to a waiting scene that is neither a yes
  nor another request is a change: call amend with the person's words.
- Leave run_id out to act on the current run. Never invent run ids; use only ids from tool results.
- explain says why a run failed or how it went; retrain trains one subtask of a finished run again;
  memory_search finds what was learnt in earlier runs; status says how a run stands; show shows the scene.
- After tool results answer briefly in plain words: the run id, its status, the numbers that matter, and
  what the person can do next. Do not paste whole tool outputs.
- A tool error ends with a hint: fix the arguments and call again, or tell the person what is needed.
- When asked for something no tool does, say what you can do."""

RENDERS = "renders"  # the name of the user message that shows a tool result's images to a vision model


class ChatState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    run_id: str | None  # the conversation's current run
    run_status: str | None  # its status when a tool last looked
    requests: list[str]  # requests of the runs started in this chat, oldest first (history for later runs)


def chat_settings(env: Mapping[str, str] | None = None) -> ModelSettings:
    """The assistant's model: the proposer's endpoint settings (`DEXFORGE_BASE_URL`, `DEXFORGE_MODEL`, ...) with
    `DEXFORGE_CHAT_BASE_URL` and `DEXFORGE_CHAT_MODEL` taking precedence; `DEXFORGE_CHAT_VISION=1` shows it the
    renders as images. Offline (the rules of agents/chat/offline.py) when no endpoint is set."""
    env = os.environ if env is None else env
    proposer = AgentContext.from_env(env).model_for("proposer")
    base_url = env.get("DEXFORGE_CHAT_BASE_URL") or proposer.base_url
    if not base_url:
        return ModelSettings()
    fields: dict[str, Any] = {
        **proposer.model_dump(),
        "backend": "openai",
        "base_url": base_url,
        "model": env.get("DEXFORGE_CHAT_MODEL") or (proposer.model if proposer.base_url else "gpt-4o-mini"),
        "api_key_env": env.get("DEXFORGE_API_KEY_ENV", proposer.api_key_env),
        "vision": env.get("DEXFORGE_CHAT_VISION", "0") == "1",
    }
    return ModelSettings(**fields)


@lru_cache(maxsize=4)
def _model(settings: ModelSettings) -> BaseChatModel:
    from dexforge.agents.chat.offline import OfflineChatModel
    from dexforge.agents.llm import chat_model

    if settings.backend == "offline":
        return OfflineChatModel()
    # whole answers even when the settings stream: langchain repairs a streamed tool call's cut-off arguments
    # by partial-JSON parsing ('{"request": "lift the cu' would start a run), a whole one arrives as written
    return chat_model(settings, streaming=False)


def system_prompt(state: ChatState) -> str:
    run = state.get("run_id")
    return SYSTEM + (
        f"\n\nThe current run is {run} ({state.get('run_status') or 'status unknown'})."
        if run
        else "\n\nThere is no run in this conversation yet."
    )


def _turn(messages: list[AnyMessage]) -> list[AnyMessage]:
    """The messages since the person last spoke."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, HumanMessage) and m.name != RENDERS:
            return messages[i + 1 :]
    return list(messages)


def calls_this_turn(messages: list[AnyMessage]) -> int:
    return sum(len(m.tool_calls) + len(m.invalid_tool_calls) for m in _turn(messages) if isinstance(m, AIMessage))


def for_model(messages: list[AnyMessage]) -> list[BaseMessage]:
    """The conversation as sent: only the latest renders keep their images (older ones would be resent every
    turn); the others keep their text."""
    latest = max((i for i, m in enumerate(messages) if m.name == RENDERS), default=-1)
    out: list[BaseMessage] = []
    for i, m in enumerate(messages):
        if m.name == RENDERS and i != latest and isinstance(m.content, list):
            text = " ".join(p.get("text", "") for p in m.content if isinstance(p, dict) and p.get("type") == "text")
            m = HumanMessage(content=f"{text} (images not repeated; call show to see them again)", name=RENDERS)
        out.append(m)
    return out


def agent(state: ChatState, runtime: Runtime[ChatContext]) -> dict:
    """The model's next move: tool calls, or an answer in words."""
    from dexforge.agents.llm import endpoint_failure

    ctx = runtime.context
    used = calls_this_turn(state["messages"])
    if used >= ctx.max_tool_calls:
        _log(ctx, {"kind": "budget", "tool_calls": used})
        text = (
            f"I stopped after {used} tool calls in this turn (the limit is {ctx.max_tool_calls}). Tell me how to go on."
        )
        return {"messages": [AIMessage(content=text)]}
    bound = _model(ctx.model).bind_tools(TOOLS)
    try:
        ai = bound.invoke([SystemMessage(content=system_prompt(state)), *for_model(state["messages"])])
    except (openai.APIConnectionError, openai.APIStatusError) as exc:
        why = endpoint_failure(exc, ctx.model)
        _log(ctx, {"kind": "model_failed", "error": why})
        return {"messages": [AIMessage(content=f"I could not get an answer from the model: {why}")]}
    return {"messages": [ai]}


def after_agent(state: ChatState) -> Literal["tools", "observe", "__end__"]:
    if tools_condition(state) == "tools":
        return "tools"
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.invalid_tool_calls:
        return "observe"
    return END


def observe(state: ChatState, runtime: Runtime[ChatContext]) -> dict:
    """After the tools: malformed calls answered, the current run taken from the results, renders shown."""
    from dexforge.agents.llm import user_content

    ctx = runtime.context
    messages = state["messages"]
    start = max(i for i, m in enumerate(messages) if isinstance(m, AIMessage))
    ai = messages[start]
    assert isinstance(ai, AIMessage)
    results = [m for m in messages[start + 1 :] if isinstance(m, ToolMessage)]
    answered = {m.tool_call_id for m in results}
    out: list[BaseMessage] = []
    for bad in ai.invalid_tool_calls:
        if bad.get("id") in answered:
            continue
        error = (
            f"the arguments of {bad.get('name')} are not valid JSON ({bad.get('error') or 'they cannot be parsed'}): "
            f"{bad.get('args')!r}. Call it again with one JSON object that matches its schema."
        )
        out.append(ToolMessage(content=error, tool_call_id=str(bad.get("id")), name=bad.get("name"), status="error"))
        _log(ctx, {"kind": "tool_call", "tool": bad.get("name"), "args": bad.get("args"), "ok": False, "error": error})
    update: dict[str, Any] = {}
    images: list[Path] = []
    for m in results:
        art = m.artifact if isinstance(m.artifact, dict) else {}
        if art.get("run_id"):
            update.update(run_id=art["run_id"], run_status=art.get("status"))
        if m.name == "start_run" and art.get("request"):
            update["requests"] = [*(update.get("requests") or state.get("requests") or []), art["request"]]
        images += [Path(p) for p in art.get("images") or [] if Path(p).exists()]
    if images and ctx.model.vision:
        text = "The renders of the scene in the tool result above (" + ", ".join(p.stem for p in images) + "):"
        out.append(HumanMessage(content=user_content(text, images, True), name=RENDERS))
    return {"messages": out, **update}


def tool_error(exc: Exception) -> str:
    """The tool message of a failed call (LangGraph's ToolNode calls this for every exception of a tool)."""
    if isinstance(exc, ToolInvocationError):
        return f"{exc.message} (the arguments must match the tool's schema: check names, types and allowed values)"
    if isinstance(exc, ToolException | DexforgeError):
        return f"error: {exc}"
    return (
        f"error: the tool failed unexpectedly ({type(exc).__name__}: {exc}); this is a fault in dexforge, not in "
        "the arguments: tell the person and do not retry"
    )


def _record(request: Any, execute: Any) -> Any:
    """ToolNode's wrapper of every call: run it, then log it (the chat log, and the run's events)."""
    t0 = time.perf_counter()
    message = execute(request)
    ctx = request.runtime.context
    call = request.tool_call
    ok = getattr(message, "status", "success") != "error"
    text = str(getattr(message, "content", ""))
    entry = {"kind": "tool_call", "tool": call["name"], "args": call.get("args"), "ok": ok}
    entry.update(summary=text[:400], seconds=round(time.perf_counter() - t0, 3))
    if isinstance(ctx, ChatContext):
        _log(ctx, entry)
    art = getattr(message, "artifact", None)
    if ok and isinstance(art, dict) and art.get("run_dir") and Path(art["run_dir"]).is_dir():
        log_event(art["run_dir"], "chat_tool", tool=call["name"], args=call.get("args"), seconds=entry["seconds"])
    return message


def _log(ctx: ChatContext, entry: dict) -> None:
    if ctx.log_path is None:
        return
    ctx.log_path.parent.mkdir(parents=True, exist_ok=True)
    with ctx.log_path.open("a") as f:
        f.write(json.dumps({"t": round(time.time(), 3), **entry}, default=str) + "\n")


builder = StateGraph(ChatState, context_schema=ChatContext)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode(TOOLS, handle_tool_errors=tool_error, wrap_tool_call=_record))
builder.add_node("observe", observe)
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", after_agent)
builder.add_edge("tools", "observe")
builder.add_edge("observe", "agent")
graph = builder.compile()  # for `langgraph dev`; a chat session compiles the builder with its checkpointer


# sessions ----------------------------------------------------------------------------------------------------
class ChatSession:
    """One conversation, kept in a SQLite checkpointer (thread = session id) so that it can be continued."""

    def __init__(self, ctx: ChatContext, session: str | None = None, folder: Path | None = None) -> None:
        self.folder = folder or home() / "chat"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.folder / "chat.sqlite", check_same_thread=False)
        self.graph = builder.compile(checkpointer=SqliteSaver(self._conn))
        if session is not None and session not in self.sessions():
            recent = self.sessions()[-5:]
            self.close()
            raise DexforgeError(f"no chat session '{session}' in {self.folder}; recent: {recent or 'none'}")
        self.id = session or f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        self.ctx = ctx.model_copy(update={"log_path": self.folder / f"{self.id}.jsonl"})
        self.config: dict = {"configurable": {"thread_id": self.id}, "recursion_limit": 4 * ctx.max_tool_calls + 20}

    def sessions(self) -> list[str]:
        """Ids of the sessions in this folder's database, oldest first."""
        try:
            rows = self._conn.execute("SELECT DISTINCT thread_id FROM checkpoints").fetchall()
        except sqlite3.OperationalError:  # no checkpoint written yet: the table does not exist
            return []
        return sorted(r[0] for r in rows)

    def send(self, text: str, on_event: OnEvent | None = None) -> Iterator[tuple[str, BaseMessage]]:
        """Say `text`; yields (node, message) as the agent works: its tool calls, the tool results, its answer.
        A run's progress (and a retrain's) goes to `on_event` as in `runner.start`."""
        ctx = self.ctx.model_copy(update={"on_event": on_event})
        stream = self.graph.stream(
            {"messages": [HumanMessage(content=text)]},
            self.config,
            context=ctx,
            stream_mode=["updates", "custom"],
        )
        for mode, chunk in stream:
            if mode == "custom":
                if on_event is not None:
                    on_event("custom", chunk)
                continue
            for node, update in chunk.items():
                for message in (update or {}).get("messages", []) if isinstance(update, dict) else []:
                    yield node, message

    def ask(self, text: str, on_event: OnEvent | None = None) -> str:
        """Say `text` and return the assistant's answer in words (the last message of the turn)."""
        answer = ""
        for node, message in self.send(text, on_event):
            if node == "agent" and isinstance(message, AIMessage) and message.content:
                answer = str(message.content)
        return answer

    @property
    def state(self) -> dict:
        return dict(self.graph.get_state(self.config).values)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
