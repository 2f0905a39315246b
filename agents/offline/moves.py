"""The offline reasoner's next move in a role's tool loop: tool calls to make, or the answer.

Each role looks up what a careful model would (see `toolmodel`), then answers with the same rules the
offline reasoner always used, fed by what the tools returned. `forced` means the budget is spent: answer.
"""

from __future__ import annotations

from pydantic import BaseModel

from dexforge.agents.offline.toolmodel import Move, Step
from dexforge.agents.schemas import CritiqueBrief, DecomposeBrief, ProposeBrief, RewardBrief


def next_move(role: str, brief: BaseModel, steps: list[Step], error: str | None, forced: bool) -> Move:
    if role == "proposer":
        assert isinstance(brief, ProposeBrief)
        return proposer(brief, steps, error, forced)
    if role == "critic":
        assert isinstance(brief, CritiqueBrief)
        return critic(brief, steps, forced)
    if role == "decomposer":
        assert isinstance(brief, DecomposeBrief)
        return decomposer(brief, steps, error, forced)
    if role == "reward_writer":
        assert isinstance(brief, RewardBrief)
        return reward_writer(brief, steps, error, forced)
    raise ValueError(f"the offline reasoner has no role {role!r}")


def _called(steps: list[Step], name: str, **args) -> list[Step]:
    return [s for s in steps if s.name == name and all(s.args.get(k) == v for k, v in args.items())]


def _reasoner():
    from dexforge.agents.offline import OfflineReasoner

    return OfflineReasoner()


# proposer ---------------------------------------------------------------------------------------------------
def object_words(text: str, catalog) -> list[str]:
    """What the request names as objects: catalog mentions as said, then the words no vocabulary knows."""
    from dexforge.agents.offline import words as W
    from dexforge.agents.offline.understand import find_mentions, unknown_words

    tokens = W.tokenize(text)
    mentions = find_mentions(tokens, catalog)
    out = [m.said for m in mentions]
    out += [w for w in unknown_words(tokens, mentions) if w not in out]
    return out[:4]


def proposer(brief: ProposeBrief, steps: list[Step], error: str | None, forced: bool) -> Move:
    from dexforge.agents.offline.understand import GroundingError
    from dexforge.agents.toolloop import GaveUp

    reasoner = _reasoner()
    text = brief.amendment if brief.previous is not None and brief.amendment else brief.request
    if not forced and not _called(steps, "find_assets"):
        queries = object_words(text, reasoner.catalog)
        if queries:
            return [("find_assets", {"query": q}) for q in queries]
    if error:
        brief = brief.model_copy(update={"error": error})
    try:
        proposal = reasoner.propose(brief)
    except GroundingError as exc:
        raise GaveUp(str(exc)) from None
    spec_yaml = proposal.spec.to_yaml()
    if not forced and not _called(steps, "validate_spec", spec_yaml=spec_yaml):
        return [("validate_spec", {"spec_yaml": spec_yaml}), ("static_checks", {"spec_yaml": spec_yaml})]
    looked = [s.artifact for s in _called(steps, "find_assets") if s.ok and isinstance(s.artifact, dict)]
    found = sorted({m["id"] for a in looked for m in a.get("matches", [])[:1]})
    if found:
        note = f" Catalog entries found with find_assets: {', '.join(found)}."
        proposal = proposal.model_copy(update={"reasoning": proposal.reasoning + note})
    return proposal


# critic -----------------------------------------------------------------------------------------------------
def critic(brief: CritiqueBrief, steps: list[Step], forced: bool) -> Move:
    from dexforge.agents.offline.critic import critique

    if not forced and not _called(steps, "physics_findings"):
        return [("physics_findings", {})] + [("measure", {"a": o.key, "b": "table"}) for o in brief.spec.objects]
    got = [s.artifact for s in _called(steps, "physics_findings") if s.ok and isinstance(s.artifact, dict)]
    findings = got[-1]["findings"] if got else brief.findings
    answer = critique(brief.model_copy(update={"findings": findings}), _reasoner().catalog)
    overhangs = [
        f"{s.args.get('a')} reaches {s.artifact['overhang_m']:.3f} m past the table edge"
        for s in _called(steps, "measure")
        if s.ok and isinstance(s.artifact, dict) and (s.artifact.get("overhang_m") or 0.0) > 0.0
    ]
    if overhangs:
        answer = answer.model_copy(update={"findings": [*answer.findings, *overhangs]})
    return answer


# decomposer -------------------------------------------------------------------------------------------------
def decomposer(brief: DecomposeBrief, steps: list[Step], error: str | None, forced: bool) -> Move:
    if not forced and not _called(steps, "controllers"):
        return [("controllers", {})]
    if error:
        brief = brief.model_copy(update={"error": error})
    answer = _reasoner().decompose(brief)
    plan_yaml = answer.plan.to_yaml()
    if not forced and not _called(steps, "validate_plan", plan_yaml=plan_yaml):
        return [("validate_plan", {"plan_yaml": plan_yaml})]
    return answer


# reward-writer ----------------------------------------------------------------------------------------------
def reward_writer(brief: RewardBrief, steps: list[Step], error: str | None, forced: bool) -> Move:
    from dexforge.agents.offline.rewards import write_reward

    name = brief.subtask.name
    if brief.attempt > 0 and not forced and not _called(steps, "training_stats"):
        return [("training_stats", {"subtask": name, "attempt": -1})]
    read = [s.artifact for s in _called(steps, "training_stats") if s.ok and isinstance(s.artifact, dict)]
    if read and read[-1].get("final"):
        stats = {**read[-1]["final"], "_training_success_best": read[-1].get("training_success_best") or 0.0}
        brief = brief.model_copy(update={"stats": stats})
    if error:
        brief = brief.model_copy(update={"error": error})
    draft = write_reward(brief)
    if forced:
        return draft
    tried = _called(steps, "dry_run_reward", source=draft.source)
    if not tried:
        return [("dry_run_reward", {"source": draft.source})]
    if tried[-1].ok:
        return draft
    plain = write_reward(brief.model_copy(update={"stats": None, "previous": None, "examples": []}))
    again = _called(steps, "dry_run_reward", source=plain.source)
    if plain.source != draft.source and not again:
        return [("dry_run_reward", {"source": plain.source})]
    if again and again[-1].ok:
        why = f" The tuned program failed its dry run ({tried[-1].content}); this is the template's plain weighting."
        return plain.model_copy(update={"reasoning": plain.reasoning + why})
    return draft
