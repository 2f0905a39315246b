"""The offline reasoner as a tool-calling chat model: it runs in the same loop as a language model.

`OfflineToolModel(role, brief)` reads the conversation so far (its own earlier calls and the tool
messages that answered them, artifacts included) and makes the next move deterministically: some tool
calls, or a call of the answer tool with the role's answer. What each role looks up:

- proposer: find_assets for every object the request names, then validate_spec and static_checks on
  its spec, then the TaskProposal; a request it cannot ground ends the loop (GaveUp) after it has looked
  the unknown words up.
- critic: physics_findings and a measurement of each object against the table, then the Critique built
  from those findings.
- decomposer: controllers (is DexGen trained?), then validate_plan on its plan, then the Decomposition.
- reward-writer: on a retry training_stats of the failed attempt first (its per-component means tune the
  weights); then dry_run_reward on its program; if that fails, the template's plain weights are dry-run
  instead; then the RewardDraft.

A rejected answer comes back as the answer tool's error; the next answer is made with that error in the
brief (as a model would read it). An eval suite's `malformed_reply` fault turns the first answers into
answer calls with broken JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict

from dexforge.agents.faults import INJECTED

BROKEN = '{"reasoning": "cut off here'


@dataclass
class Step:
    """One tool call of the conversation and its answer."""

    name: str
    args: dict
    ok: bool
    content: str
    artifact: Any


def history(messages: list[BaseMessage]) -> list[Step]:
    """Every tool call made so far, with the tool message that answered it (in call order)."""
    replies = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    steps: list[Step] = []
    for m in messages:
        if not isinstance(m, AIMessage):
            continue
        for c in [*m.tool_calls, *m.invalid_tool_calls]:
            reply = replies.get(str(c.get("id")))
            if reply is None:
                continue
            args = c.get("args") if isinstance(c.get("args"), dict) else {}
            steps.append(Step(c["name"], args, reply.status != "error", str(reply.content), reply.artifact))
    return steps


Move = list[tuple[str, dict]] | BaseModel


class OfflineToolModel(BaseChatModel):
    """The offline reasoner behind one role's loop (no network, deterministic)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    role: str
    brief: Any
    malformed: int = 0
    answer_name: str = ""
    forced: bool = False

    @property
    def _llm_type(self) -> str:
        return "dexforge-offline"

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> OfflineToolModel:  # type: ignore[override]
        names = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        return self.model_copy(update={"answer_name": names[-1] if names else "", "forced": tool_choice is not None})

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        from dexforge.agents.offline import moves

        steps = history(messages)
        answers = [s for s in steps if s.name == self.answer_name]
        n = len([m for m in messages if isinstance(m, AIMessage)])
        if len(answers) < self.malformed:  # an injected fault: this answer arrives as broken JSON
            call = {
                "name": self.answer_name,
                "args": BROKEN,
                "id": f"offline_{n}",
                "error": INJECTED,
                "type": "invalid_tool_call",
            }
            return _result(AIMessage(content="", invalid_tool_calls=[call]))
        error = answers[-1].content if answers and not answers[-1].ok else None
        move = moves.next_move(self.role, self.brief, steps, error, self.forced)
        calls = [(self.answer_name, json.loads(move.model_dump_json()))] if isinstance(move, BaseModel) else move
        tool_calls = [
            {"name": name, "args": args, "id": f"offline_{n}_{i}", "type": "tool_call"}
            for i, (name, args) in enumerate(calls)
        ]
        return _result(AIMessage(content="", tool_calls=tool_calls))


def _result(message: AIMessage) -> ChatResult:
    message.usage_metadata = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return ChatResult(generations=[ChatGeneration(message=message)])
