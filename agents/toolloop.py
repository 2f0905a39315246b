"""A role as a bounded tool-calling loop: a small LangGraph subgraph that runs inside the role's node.

    START -> model --tool calls--> tools (ToolNode) -> looked -> model
               |----answer call--> answer --valid--> END
               |                          --invalid--> model      (the error comes back as the tool message)
               |----over budget--> refuse -> model                (not run; asked for the answer instead)
               +----no call------> nudge  -> model

The model is bound to the role's toolbox (`tools.toolboxes`) and to one answer tool whose arguments are
the role's schema (TaskProposal, Critique, Decomposition, RewardDraft; the tool is named after it). It may
call several tools at once (ToolNode runs them side by side); every result comes back as a tool message
(a tool error, malformed arguments and an unknown tool included), and the images a tool made follow as
one user message when the model has vision. When the tool budget is spent, the model is asked for its
answer (the answer tool is forced); calls past the budget are not run. Invalid answers, calls past the
budget and turns without any call count against `max_invalid`; the loop then ends with a failure that
says why. The offline reasoner runs in the same loop as a chat model (`agents.offline.toolmodel`).

Every model turn leaves a record (tokens, cost, latency, kind: answer | tools | text); every tool call an
event `tool_call` in the run's events.jsonl (role, tool, arguments, result summary, seconds, error,
images); the loop's end an event `role_loop`.
"""

from __future__ import annotations

import operator
import secrets
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel, ValidationError
from typing_extensions import TypedDict

from dexforge.agents.runs import log_event
from dexforge.home import DexforgeError
from dexforge.tools.base import short

ImageContent = Callable[[str, Sequence[Path], bool], Any]


class GaveUp(DexforgeError):
    """The model itself says the question cannot be answered (the offline reasoner on a request it cannot
    ground): the loop ends at once with this reason."""


class LoopState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    used: int  # tool calls run
    strikes: int  # invalid answers, refused calls, turns without a call
    answer: Any
    failure: str | None
    records: Annotated[list[dict], operator.add]


@dataclass
class RoleLoop:
    """One question to one role: its model, tools, answer schema and bounds."""

    role: str
    model: BaseChatModel
    tools: list
    schema: type[BaseModel]
    run_dir: str
    backend: str
    model_name: str
    budget: int = 8
    max_invalid: int = 3
    validate: Callable[[Any], None] | None = None
    vision: bool = False
    image_content: ImageContent | None = None
    settings: Any = None  # the ModelSettings of an endpoint (for error texts), None offline
    loop_id: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def answer_name(self) -> str:
        return self.schema.__name__

    # the graph --------------------------------------------------------------------------------------------
    def graph(self):
        builder = StateGraph(LoopState)
        builder.add_node("model", self._model)
        builder.add_node("tools", ToolNode(self.tools, handle_tool_errors=True, wrap_tool_call=self._log))
        builder.add_node("looked", self._looked)
        builder.add_node("answer", self._answer)
        builder.add_node("refuse", self._refuse)
        builder.add_node("nudge", self._nudge)
        builder.add_edge(START, "model")
        builder.add_conditional_edges("model", self._route)
        builder.add_edge("tools", "looked")
        for node in ("looked", "answer", "refuse", "nudge"):
            builder.add_conditional_edges(node, _go_on)
        return builder.compile(checkpointer=False, name=f"{self.role}_loop")

    def run(self, messages: list[BaseMessage]) -> tuple[BaseModel | None, str | None, list[dict], int]:
        """(answer, failure, records, tool calls used); exactly one of answer and failure is set."""
        names = [getattr(t, "name", "") for t in self.tools]
        log_event(self.run_dir, "role_start", role=self.role, loop=self.loop_id, tools=names, budget=self.budget)
        limit = 4 * (self.budget + self.max_invalid) + 10
        with warnings.catch_warnings():
            # the loop keeps no checkpoints of its own (it reruns whole after a crash); a parent graph's
            # durability="sync" must not reach it (LangGraph 1.2 fails on it), hence "exit" and no warning
            warnings.simplefilter("ignore", UserWarning)
            out = self.graph().invoke(
                {"messages": messages, "used": 0, "strikes": 0, "answer": None, "failure": None, "records": []},
                {"recursion_limit": limit},
                durability="exit",
            )
        answer, failure = out.get("answer"), out.get("failure")
        if answer is None and failure is None:  # pragma: no cover - every path ends in one of them
            failure = "the loop ended without an answer"
        log_event(
            self.run_dir,
            "role_loop",
            role=self.role,
            loop=self.loop_id,
            ok=answer is not None,
            tool_calls=out.get("used", 0),
            turns=len(out.get("records", [])),
            failure=failure,
        )
        return answer, failure, out.get("records", []), out.get("used", 0)

    # nodes ------------------------------------------------------------------------------------------------
    def _model(self, state: LoopState) -> dict:
        forced = state.get("used", 0) >= self.budget
        bound = self.model.bind_tools([*self.tools, self.schema], tool_choice=self.answer_name if forced else None)
        start = time.perf_counter()
        try:
            ai = bound.invoke(state["messages"])
        except GaveUp as exc:
            record = self._record(None, "answer", False, str(exc), time.perf_counter() - start)
            return {"failure": str(exc), "records": [record]}
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            from dexforge.agents.llm import endpoint_failure

            why = endpoint_failure(exc, self.settings) if self.settings is not None else str(exc)
            record = self._record(None, "answer", False, why, time.perf_counter() - start)
            return {"failure": why, "records": [record]}
        assert isinstance(ai, AIMessage)
        ai.response_metadata = {**(ai.response_metadata or {}), "latency_s": round(time.perf_counter() - start, 4)}
        return {"messages": [ai]}

    def _route(self, state: LoopState) -> Literal["tools", "looked", "answer", "refuse", "nudge", "__end__"]:
        if state.get("failure"):
            return END
        ai = state["messages"][-1]
        assert isinstance(ai, AIMessage)
        calls = [*ai.tool_calls, *ai.invalid_tool_calls]
        if any(c.get("name") == self.answer_name for c in calls):
            return "answer"
        if not calls:
            return "nudge"
        if state.get("used", 0) + len(ai.tool_calls) > self.budget:
            return "refuse"
        return "tools" if ai.tool_calls else "looked"

    def _log(self, request, execute):
        """ToolNode's wrapper of every call: run it, then record it in the run's event log."""
        from dexforge.tools.common import progress

        progress(event="tool", role=self.role, name=request.tool_call["name"])
        start = time.perf_counter()
        message = execute(request)
        call = request.tool_call
        failed = getattr(message, "status", "success") == "error"
        artifact = getattr(message, "artifact", None) if isinstance(message, ToolMessage) else None
        images = (artifact or {}).get("_images", []) if isinstance(artifact, dict) else []
        text = str(getattr(message, "content", ""))
        log_event(
            self.run_dir,
            "tool_call",
            role=self.role,
            loop=self.loop_id,
            name=call["name"],
            call_id=call.get("id"),
            args=short(call.get("args") or {}),
            ok=not failed,
            error=text[:800] if failed else None,
            summary=None if failed else text[:1500],
            seconds=round(time.perf_counter() - start, 3),
            images=images,
        )
        return message

    def _looked(self, state: LoopState) -> dict:
        """After the tools ran: malformed calls answered, the budget counted, images shown, the end announced."""
        ai = _last_ai(state["messages"])
        out: list[BaseMessage] = []
        for bad in ai.invalid_tool_calls:
            error = f"the arguments of {bad.get('name')} are not valid JSON: {bad.get('args')!r}; call it again"
            out.append(ToolMessage(content=error, tool_call_id=str(bad.get("id")), status="error"))
            log_event(
                self.run_dir, "tool_call", role=self.role, loop=self.loop_id, name=bad.get("name"),
                call_id=bad.get("id"), args={"_raw": short(str(bad.get("args")))}, ok=False, error=error,
                summary=None, seconds=0.0, images=[],
            )  # fmt: skip
        used = state.get("used", 0) + len(ai.tool_calls) + len(ai.invalid_tool_calls)
        images = self._images(state["messages"], ai)
        if images and self.vision and self.image_content is not None:
            out.append(HumanMessage(content=self.image_content("The images your tools made:", images, True)))
        if used >= self.budget:
            out.append(HumanMessage(content=self._last_call_text()))
        return {"messages": out, "used": used, "records": [self._record(ai, "tools", True, None)]}

    def _answer(self, state: LoopState) -> dict:
        ai = _last_ai(state["messages"])
        calls = [*ai.tool_calls, *ai.invalid_tool_calls]
        mine = next(c for c in calls if c.get("name") == self.answer_name)
        error = None
        answer = None
        if (ai.response_metadata or {}).get("finish_reason") == "length":
            error = "the answer was cut off at the output token limit; give a shorter, complete answer"
        elif mine in ai.invalid_tool_calls:
            error = f"the arguments of {self.answer_name} are not valid JSON: {mine.get('args')!r}"
        else:
            try:
                answer = self.schema.model_validate(mine.get("args") or {})
                if self.validate is not None:
                    self.validate(answer)
            except ValidationError as exc:
                from dexforge.sim.spec import describe_validation_error

                error, answer = " ".join(describe_validation_error(exc).split()), None
            except (ValueError, DexforgeError) as exc:
                error, answer = " ".join(str(exc).split()) or type(exc).__name__, None
        record = self._record(ai, "answer", error is None, error)
        if error is None:
            log_event(self.run_dir, "role_answer", role=self.role, loop=self.loop_id, ok=True)
            return {"answer": answer, "records": [record]}
        log_event(self.run_dir, "role_answer", role=self.role, loop=self.loop_id, ok=False, error=error)
        strikes = state.get("strikes", 0) + 1
        replies = [
            ToolMessage(
                content=f"Your last answer was rejected: {error}. Call {self.answer_name} again with the whole "
                "corrected answer."
                if c is mine
                else f"Not run: {c.get('name')} was called together with your answer; call tools in their own turn.",
                tool_call_id=str(c.get("id")),
                status="error",
            )
            for c in calls
        ]
        failure = None
        if strikes >= self.max_invalid:
            failure = f"no valid answer after {strikes} invalid answer(s); the last: {error}"
        return {"messages": replies, "strikes": strikes, "records": [record], "failure": failure}

    def _refuse(self, state: LoopState) -> dict:
        ai = _last_ai(state["messages"])
        left = max(0, self.budget - state.get("used", 0))
        why = (
            f"Not run: the tool budget of {self.budget} calls is spent; answer now by calling {self.answer_name}."
            if left == 0
            else f"Not run: {len(ai.tool_calls)} calls at once, but only {left} of the budget of {self.budget} "
            "remain; call fewer tools."
        )
        replies = [ToolMessage(content=why, tool_call_id=str(c.get("id")), status="error") for c in ai.tool_calls]
        replies += [
            ToolMessage(content=why, tool_call_id=str(c.get("id")), status="error") for c in ai.invalid_tool_calls
        ]
        strikes = state.get("strikes", 0) + 1
        failure = None
        if strikes >= self.max_invalid:
            failure = (
                f"stopped at its budget of {self.budget} tool calls without an answer "
                f"({strikes} more call(s) refused); it never called {self.answer_name}"
            )
        return {
            "messages": replies,
            "strikes": strikes,
            "records": [self._record(ai, "tools", False, why, ran=False)],
            "failure": failure,
        }

    def _nudge(self, state: LoopState) -> dict:
        ai = _last_ai(state["messages"])
        strikes = state.get("strikes", 0) + 1
        text = f"Call a tool, or answer by calling {self.answer_name} with the whole answer as its arguments."
        failure = None
        if strikes >= self.max_invalid:
            failure = f"answered in words {strikes} time(s) and never called {self.answer_name}"
        record = self._record(ai, "text", False, "no tool call")
        return {"messages": [HumanMessage(content=text)], "strikes": strikes, "records": [record], "failure": failure}

    # helpers ----------------------------------------------------------------------------------------------
    def _last_call_text(self) -> str:
        return f"You have used all {self.budget} tool calls. Answer now by calling {self.answer_name}."

    def _images(self, messages: list[AnyMessage], ai: AIMessage) -> list[Path]:
        ids = {c.get("id") for c in ai.tool_calls}
        found: list[Path] = []
        for m in messages:
            if isinstance(m, ToolMessage) and m.tool_call_id in ids and isinstance(m.artifact, dict):
                found += [Path(p) for p in m.artifact.get("_images", []) if Path(p).exists()]
        return found

    def _record(
        self,
        ai: AIMessage | None,
        kind: str,
        ok: bool,
        error: str | None,
        latency: float | None = None,
        ran: bool = True,
    ) -> dict:
        usage = (ai.usage_metadata if ai is not None else None) or {}
        tin, tout = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        if latency is None and ai is not None:
            latency = float((ai.response_metadata or {}).get("latency_s", 0.0))
        return {
            "role": self.role,
            "backend": self.backend,
            "model": self.model_name,
            "kind": kind,
            "ok": ok,
            "error": error,
            "input_tokens": tin,
            "output_tokens": tout,
            "cost_usd": self._cost(tin, tout),
            "latency_s": round(latency or 0.0, 4),
            "tool_calls": [c.get("name") for c in ai.tool_calls] if ai is not None and ran else [],
            "refused": [c.get("name") for c in ai.tool_calls] if ai is not None and not ran else [],
        }

    def _cost(self, tin: int, tout: int) -> float:
        if self.settings is None:
            return 0.0
        return (tin * self.settings.price_in_per_mtok + tout * self.settings.price_out_per_mtok) / 1e6


def _go_on(state: LoopState) -> Literal["model", "__end__"]:
    return END if state.get("failure") or state.get("answer") is not None else "model"


def _last_ai(messages: list[AnyMessage]) -> AIMessage:
    return next(m for m in reversed(messages) if isinstance(m, AIMessage))


def opening(system: str, user: Any) -> list[BaseMessage]:
    return [SystemMessage(content=system), HumanMessage(content=user)]
