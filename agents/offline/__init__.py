"""The offline reasoner: every role without a language model, deterministic and without network access.

It grounds requests in the asset catalog (`understand`, `amend`), lays scenes out like the working
examples (`layout`), turns physics-check findings into typed corrections (`critic`), plans subtasks by
task family (`decompose`) and renders reward templates with tuned weights (`rewards`). It answers with
the same schemas as a model would (`dexforge.agents.schemas`), and never imports Genesis.
"""

from __future__ import annotations

from dexforge.agents.offline.amend import amend, intent_from_spec
from dexforge.agents.offline.critic import critique
from dexforge.agents.offline.decompose import decompose
from dexforge.agents.offline.layout import layout, relation
from dexforge.agents.offline.rewards import write_reward
from dexforge.agents.offline.understand import GroundingError, Intent, parse_request
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
from dexforge.sim.catalog import Catalog, default_catalog
from dexforge.sim.checks import static_checks

__all__ = ["GroundingError", "OfflineReasoner"]


class OfflineReasoner:
    """The four roles on rules and templates. `catalog` defaults to the default catalog (specs validate
    against that one, so a custom catalog should hold only assets it also has)."""

    label = "offline reasoner"

    def __init__(self, catalog: Catalog | None = None):
        self.catalog = catalog or default_catalog()

    def propose(self, brief: ProposeBrief) -> TaskProposal:
        """A grounded, laid-out task for the request (or the amended previous proposal)."""
        lines: list[str] = []
        if brief.previous is not None and brief.amendment:
            before = intent_from_spec(brief.previous, self.catalog)
            intent = amend(before, brief.amendment, self.catalog)
            lines.append(f'Revised "{brief.previous.name}" as asked ("{brief.amendment.strip()}").')
        else:
            context = self._context(brief.history, lines)
            intent = parse_request(brief.request, self.catalog, context)
            article = "an" if intent.family == "open" else "a"
            lines.append(f'Understood "{brief.request.strip()}" as {article} {intent.family} task.')
        spec, laid, adjusted = layout(intent, self.catalog)
        lines.append(_summary(laid, relation(laid, self.catalog)))
        notes = [*intent.notes, *adjusted]
        if notes:
            lines.append("Notes: " + "; ".join(notes) + ".")
        obj = spec.objects[0]
        lines.append(
            f"Layout: {obj.key} at {obj.pose.pos} (yaw {obj.pose.euler[2]:g}), palm starting at "
            f"{spec.hand.pose.pos}; others: "
            + (", ".join(f"{o.key} at {o.pose.pos}" for o in spec.objects[1:]) or "none")
            + f"; episode {spec.episode_length} steps."
        )
        found = static_checks(spec, self.catalog)
        lines.append(
            "Static checks (reach, scale, workspace): "
            + ("; ".join(f"{f.severity} {f.check} {f.subject}: {f.message}" for f in found) or "nothing found")
            + "."
        )
        if brief.error:
            lines.append(f"The last answer was rejected ({brief.error.strip()}); this one is laid out afresh.")
        return TaskProposal(reasoning=" ".join(lines), family=laid.family, spec=spec)  # type: ignore[arg-type]

    def _context(self, history: list[str], lines: list[str]) -> Intent | None:
        """The intent of the latest earlier request that grounds, each read in the light of the one before."""
        context: Intent | None = None
        for past in history:
            try:
                context = parse_request(past, self.catalog, context)
            except GroundingError:
                continue
        if context is not None:
            lines.append(f"Earlier in this conversation: {context.family} the {context.obj}.")
        return context

    def critique(self, brief: CritiqueBrief) -> Critique:
        return critique(brief, self.catalog)

    def decompose(self, brief: DecomposeBrief) -> Decomposition:
        return decompose(brief, self.catalog)

    def write_reward(self, brief: RewardBrief) -> RewardDraft:
        return write_reward(brief)

    def invent(self, brief: InventBrief) -> Invention:
        from dexforge.agents.offline.invent import invent

        def groundable(text: str) -> bool:
            try:
                parse_request(text, self.catalog, None)
            except GroundingError:
                return False
            return True

        return invent(brief, self.catalog, groundable)


def _summary(intent: Intent, rel: str) -> str:
    scale = f" at scale {intent.scale:g}" if intent.scale != 1.0 else ""
    if intent.family == "lift":
        return f"Object: {intent.obj}{scale}; goal: lift {intent.height * 100:g} cm and hold 0.5 s."
    if intent.family == "place":
        return f"Object: {intent.obj}{scale}; goal: put it {rel} the {intent.target} (scale {intent.target_scale:g})."
    if intent.family == "rotate":
        return f"Object: {intent.obj}{scale}; goal: turn it {intent.angle:g} degrees about {intent.axis} in the hand."
    if intent.family == "open":
        return f"Object: {intent.obj}{scale}; goal: open it to {intent.fraction:g} of its joint's range."
    return (
        f"Object: {intent.obj}{scale}; goal: push it {intent.distance * 100:g} cm along "
        f"({intent.direction[0]:g}, {intent.direction[1]:g}) from where it starts."
    )
