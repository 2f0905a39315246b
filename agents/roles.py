"""One entry point for the four roles, whichever backend runs them.

`ask_role(role, brief, ctx, scope=...)` runs the role as a bounded tool-calling loop (agents.toolloop)
and returns its validated answer and the records of its turns. A model behind an OpenAI-compatible
endpoint gets the brief rendered by `prompts.py`, its toolbox and an answer tool; the offline reasoner
runs in the same loop as a chat model that calls the same tools (agents.offline.toolmodel). Invalid
answers come back to the role with the error, bounded by `ctx.max_invalid`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from dexforge.agents.context import AgentContext
from dexforge.agents.faults import INJECTED, malformed_replies
from dexforge.agents.schemas import (
    Critique,
    CritiqueBrief,
    DecomposeBrief,
    Decomposition,
    InventBrief,
    Invention,
    ProposeBrief,
    RewardBrief,
    RewardDraft,
    TaskProposal,
)
from dexforge.home import DexforgeError
from dexforge.tools.base import Scope

T = TypeVar("T", bound=BaseModel)

SCHEMAS: dict[str, tuple[type[BaseModel], type[BaseModel], str]] = {
    "proposer": (ProposeBrief, TaskProposal, "propose"),
    "critic": (CritiqueBrief, Critique, "critique"),
    "decomposer": (DecomposeBrief, Decomposition, "decompose"),
    "reward_writer": (RewardBrief, RewardDraft, "write_reward"),
}


class RoleError(DexforgeError):
    """A role could not give a valid answer within its bound."""

    def __init__(self, role: str, reason: str, records: list[dict] | None = None):
        super().__init__(f"{role}: {reason}")
        self.role, self.reason, self.records = role, reason, records or []


def _offline(
    role: str, brief: BaseModel, validate, max_invalid: int, malformed: int = 0
) -> tuple[BaseModel, list[dict]]:
    from dexforge.agents.offline import GroundingError, OfflineReasoner

    reasoner = OfflineReasoner()
    method = getattr(reasoner, "invent" if isinstance(brief, InventBrief) else SCHEMAS[role][2])
    records: list[dict] = []
    error = None
    for attempt in range(max_invalid):
        t0 = time.time()
        if attempt < malformed:  # an injected fault: this answer arrives as broken JSON
            error = f"{INJECTED} the reply is not valid JSON: Expecting ',' delimiter: line 1 column 42"
            records.append(_record(role, attempt, t0, error))
            if "error" in type(brief).model_fields:
                brief = brief.model_copy(update={"error": error})
            continue
        try:
            answer = method(brief)
            if validate is not None:
                validate(answer)
        except (DexforgeError, ValidationError, ValueError) as exc:
            error = str(exc)
            records.append(_record(role, attempt, t0, error))
            if isinstance(exc, GroundingError) or "error" not in type(brief).model_fields:
                break  # the request itself is the problem: asking again cannot help
            brief = brief.model_copy(update={"error": error})
            continue
        records.append(_record(role, attempt, t0, None))
        return answer, records
    raise RoleError(role, f"no valid answer after {len(records)} attempt(s): {error}", records)


def _record(role: str, attempt: int, t0: float, error: str | None) -> dict:
    return {
        "role": role,
        "backend": "offline",
        "model": "offline reasoner",
        "ok": error is None,
        "error": error,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "latency_s": round(time.time() - t0, 4),
        "attempt": attempt,
    }


def ask_role(
    role: str,
    brief: BaseModel,
    ctx: AgentContext,
    *,
    scope: Scope | None = None,
    images: Sequence[Path] = (),
    validate: Callable[[BaseModel], None] | None = None,
) -> tuple[BaseModel, list[dict]]:
    """The role's answer to `brief` (validated by the schema and by `validate`) and the records of its turns.

    The role runs as a bounded tool-calling loop (agents.toolloop) over its toolbox bound to `scope`, on
    the configured model or on the offline reasoner. Inventing overnight tasks (an InventBrief) needs no
    tools and is one structured answer. Raises RoleError when the loop ends without a valid answer."""
    if isinstance(brief, InventBrief):
        return _invent(brief, ctx)
    if scope is None:
        raise ValueError("a role's tool loop needs a scope (its run folder at least)")
    from dexforge.agents import llm, prompts
    from dexforge.agents.offline.toolmodel import OfflineToolModel
    from dexforge.agents.toolloop import RoleLoop, opening
    from dexforge.tools.toolboxes import toolbox

    settings = ctx.model_for(role)
    system = SYSTEMS[role]()
    text = prompts.render_brief(brief)
    if settings.backend == "offline":
        model = OfflineToolModel(role=role, brief=brief, malformed=malformed_replies(ctx.faults, role))
        messages = opening(system, text)
    else:
        model = llm.chat_model(settings, **({"streaming": True} if settings.stream else {}))
        messages = opening(system, llm.user_content(text, images, settings.vision))
    loop = RoleLoop(
        role=role,
        model=model,
        tools=toolbox(role, scope),
        schema=SCHEMAS[role][1],
        run_dir=scope.run_dir,
        backend=settings.backend,
        model_name=settings.label,
        budget=ctx.tool_budget(role),
        max_invalid=ctx.max_invalid,
        validate=validate,
        vision=settings.vision,
        image_content=llm.user_content,
        settings=None if settings.backend == "offline" else settings,
    )
    answer, failure, records, _ = loop.run(messages)
    if answer is None:
        raise RoleError(role, failure or "no answer", records)
    return answer, records


def _invent(brief: InventBrief, ctx: AgentContext) -> tuple[BaseModel, list[dict]]:
    """Overnight: new requests from the proposer, in one structured answer (no tools)."""
    settings = ctx.model_for("proposer")
    if settings.backend == "offline":
        return _offline("proposer", brief, None, ctx.max_invalid, malformed_replies(ctx.faults, "proposer"))
    from dexforge.agents import llm, prompts

    try:
        answer, records = llm.ask(
            settings, "proposer", prompts.INVENTOR, prompts.render_brief(brief), Invention, max_invalid=ctx.max_invalid
        )
    except llm.RoleFailed as exc:
        raise RoleError("proposer", str(exc), [r.model_dump() for r in getattr(exc, "records", [])]) from None
    return answer, [r.model_dump() for r in records]


def _system(name: str) -> Callable[[], str]:
    def get() -> str:
        from dexforge.agents import prompts

        return getattr(prompts, name)

    return get


SYSTEMS: dict[str, Callable[[], str]] = {
    "proposer": _system("PROPOSER"),
    "critic": _system("CRITIC"),
    "decomposer": _system("DECOMPOSER"),
    "reward_writer": _system("REWARD_WRITER"),
}
