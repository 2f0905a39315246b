"""The offline proposer inventing tasks for an overnight batch: requests drawn from the catalog.

Every family the reasoner understands gets a few phrasings; objects come from the catalog by tag
(graspable things to lift, rotate and push; containers and surfaces to place into and onto; articulated
furniture to open), with heights, angles and distances. A draw is kept only when the reasoner can
ground it, and it is not too close to what the store already holds or to what this batch already has
(`brief.avoid`, checked by the batch with the memory embedder). Seeded: the same seed, the same ideas.
"""

from __future__ import annotations

import random

from dexforge.agents.schemas import InventBrief, Invention
from dexforge.sim.catalog import Catalog

LIFT = ["pick up the {obj}", "lift the {obj} {cm} cm", "raise the {obj} off the table", "grab the {obj}"]
PLACE = ["put the {obj} in the {container}", "place the {obj} into the {container}", "put the {obj} on the {surface}"]
ROTATE = ["rotate the {obj} {deg} degrees in the hand", "spin the {obj} {deg} degrees about z"]
PUSH = ["push the {obj} {cm} cm to the {side}", "slide the {obj} {cm} cm forward", "nudge the {obj} to the {side}"]
OPEN = ["open the {furniture}", "open the {furniture} halfway", "pull open the {furniture}"]
FAMILIES = {"lift": LIFT, "place": PLACE, "rotate": ROTATE, "push": PUSH, "open": OPEN}


def _names(catalog: Catalog, tag: str) -> list[str]:
    return sorted(o.id.replace("_", " ") for o in catalog.with_tag(tag))


def draw(rng: random.Random, catalog: Catalog, family: str | None = None) -> str:
    """One request of `family` (or a random family) with its blanks filled from the catalog."""
    family = family or rng.choice(sorted(FAMILIES))
    template = rng.choice(FAMILIES[family])
    graspable = _names(catalog, "graspable")
    if family == "rotate":  # small enough to turn in the palm
        graspable = [n for n in graspable if catalog.object(n.replace(" ", "_")).size[0] <= 0.09] or graspable
    values = {
        "obj": rng.choice(graspable),
        "container": rng.choice(_names(catalog, "container") or ["bowl"]),
        "surface": rng.choice(_names(catalog, "surface") or ["plate"]),
        "furniture": rng.choice(["drawer", "cabinet door", "cabinet drawer"]),
        "cm": rng.choice([5, 8, 10, 12, 15, 20]),
        "deg": rng.choice([30, 45, 60, 90, 120, 180]),
        "side": rng.choice(["left", "right"]),
    }
    return template.format(**values)


def invent(brief: InventBrief, catalog: Catalog, groundable) -> Invention:
    """`brief.count` new requests, each groundable (`groundable(text) -> bool`) and not in `brief.avoid`."""
    rng = random.Random(brief.seed)
    taken = {a.lower() for a in brief.avoid}
    families = sorted(FAMILIES)
    out: list[str] = []
    tries = 0
    while len(out) < brief.count and tries < 50 * brief.count:
        family = families[(brief.seed + len(out) + tries) % len(families)]  # round-robin: a diverse batch
        tries += 1
        text = draw(rng, catalog, family)
        if text.lower() in taken or not groundable(text):
            continue
        taken.add(text.lower())
        out.append(text)
    why = (
        f"{len(out)} request(s) drawn round-robin over {', '.join(families)} from the catalog (seed {brief.seed}), "
        f"skipping {len(brief.avoid)} already held in memory or this batch."
    )
    return Invention(reasoning=why, requests=out)
