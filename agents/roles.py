"""One entry point for the four roles, whichever backend runs them.

`ask_role(role, brief, ctx)` returns the role's validated answer and the records of the calls it took.
A model behind an OpenAI-compatible endpoint gets the brief rendered by `prompts.py` and sees its own
invalid answers come back with the error (bounded by `ctx.max_invalid`); the offline reasoner gets
the brief itself, and an answer of its that fails validation is re-asked with the error in the brief.
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
    images: Sequence[Path] = (),
    validate: Callable[[BaseModel], None] | None = None,
) -> tuple[BaseModel, list[dict]]:
    """The role's answer to `brief` (validated by the schema and by `validate`) and the call records."""
    settings = ctx.model_for(role)
    if settings.backend == "offline":
        return _offline(role, brief, validate, ctx.max_invalid, malformed_replies(ctx.faults, role))
    from dexforge.agents import llm, prompts

    schema = Invention if isinstance(brief, InventBrief) else SCHEMAS[role][1]
    system = {
        "proposer": prompts.INVENTOR if isinstance(brief, InventBrief) else prompts.PROPOSER,
        "critic": prompts.CRITIC,
        "decomposer": prompts.DECOMPOSER,
        "reward_writer": prompts.REWARD_WRITER,
    }[role]
    try:
        answer, records = llm.ask(
            settings,
            role,
            system,
            prompts.render_brief(brief),
            schema,
            images=images,
            validate=validate,
            max_invalid=ctx.max_invalid,
        )
    except llm.RoleFailed as exc:
        raise RoleError(role, str(exc), [r.model_dump() for r in getattr(exc, "records", [])]) from None
    return answer, [r.model_dump() if hasattr(r, "model_dump") else dict(r) for r in records]
