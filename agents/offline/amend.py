"""Revising a proposal: read the intent back from a spec, then apply the user's change in words.

`intent_from_spec(spec)` recovers what a laid-out spec asks for (family, objects, scales, numbers) and how
far its objects stand from the default layout (`nudge`), so a change of size or object keeps the moves
made earlier. `amend(intent, text)` understands "make the cube smaller", "use the mug instead", "move the
bowl further away", "bigger", "lift it 5 cm higher", "open it fully", "now put it on the plate".
"""

from __future__ import annotations

import math
from dataclasses import replace

from dexforge.agents.offline import words as W
from dexforge.agents.offline.layout import default_xy, normalise
from dexforge.agents.offline.understand import (
    GroundingError,
    Intent,
    find_mentions,
    parse_request,
    read_numbers,
    size_mention,
)
from dexforge.sim.catalog import Catalog
from dexforge.sim.spec import Inside, Lifted, Moved, On, Opened, Rotated, TaskSpec

STEP = 0.05  # m: how far "further", "closer", "to the left" move an object when no distance is given
AWAY = {"further", "farther", "away"}
NEAR = {"closer", "nearer", "toward", "towards"}
MOVES = {"left", "right", "forward", "forwards", "back", "backward", "backwards"}
UNDERSTOOD = (
    "I understand changes such as: make the cube smaller / bigger; use the mug instead; replace the cube "
    "with the ball; move the bowl further away / closer / to the left; lift it 5 cm higher; turn it 45 "
    'degrees; open it fully; push it further; or a new request ("now put it on the plate")'
)


def intent_from_spec(spec: TaskSpec, catalog: Catalog) -> Intent:
    """What a spec laid out by the offline reasoner asks for; GroundingError for any other spec."""
    preds = {p.kind: p for p in spec.success}

    def asset(key: str) -> str:
        return catalog.object(spec.object_spec(key).asset).id

    def xy(key: str) -> tuple[float, float]:
        pos = spec.object_spec(key).pose.pos
        return pos[0], pos[1]

    obj_key = next(iter(p.object for p in spec.success), None)
    if obj_key is None:
        raise GroundingError(f"the current task {spec.name!r} has no success predicate to revise")
    base = Intent(family="lift", obj=asset(obj_key), scale=spec.object_spec(obj_key).scale)
    target_key: str | None = None
    if isinstance(p := preds.get("opened"), Opened):
        intent = replace(base, family="open", fraction=p.fraction)
    elif isinstance(p := preds.get("rotated"), Rotated):
        intent = replace(base, family="rotate", angle=p.angle, axis=p.axis)
    elif isinstance(p := preds.get("moved"), Moved):
        dx, dy = p.offset[0], p.offset[1]
        dist = math.hypot(dx, dy)
        direction = (round(dx / dist, 4) + 0.0, round(dy / dist, 4) + 0.0) if dist > 0 else (1.0, 0.0)
        intent = replace(base, family="push", direction=direction, distance=round(dist, 4))
    elif isinstance(p := preds.get("inside") or preds.get("on"), Inside | On):
        target_key = p.container if isinstance(p, Inside) else p.surface
        intent = replace(
            base, family="place", target=asset(target_key), target_scale=spec.object_spec(target_key).scale
        )
    elif isinstance(p := preds.get("lifted"), Lifted):
        intent = replace(base, height=p.height)
    else:
        raise GroundingError(f"the current task {spec.name!r} is not one the offline reasoner can revise")
    laid, _ = normalise(intent, catalog)
    (dx, dy), target_xy = default_xy(laid, catalog)
    ox, oy = xy(obj_key)
    intent = replace(intent, nudge=(round(ox - dx, 4), round(oy - dy, 4)))
    if target_key is not None and target_xy is not None:
        tx, ty = xy(target_key)
        intent = replace(intent, target_nudge=(round(tx - target_xy[0], 4), round(ty - target_xy[1], 4)))
    return intent


def amend(prev: Intent, text: str, catalog: Catalog) -> Intent:
    """The intent after the user's change; GroundingError when the change is not understood."""
    tokens = W.tokenize(text)
    toks = set(tokens)
    mentions = find_mentions(tokens, catalog)
    new = [m for m in mentions if m.asset not in (prev.obj, prev.target)]
    verb = next((W.VERBS[t] for t in tokens if t in W.VERBS), None)
    if verb in ("lift", "place", "rotate", "open", "push", "pull") and (verb != prev.family or new):
        return parse_request(text, catalog, context=prev)  # a new request about the same things
    notes: list[str] = []
    amount = next((q.value for q in W.quantities(tokens) if q.kind == "length"), None)
    old = {m.asset for m in mentions} & {prev.obj, prev.target}
    role = "target" if prev.target in old and prev.obj not in old else "obj"
    if toks & (AWAY | NEAR | MOVES) and not new:
        if prev.family == "push" and role == "obj" and "move" not in toks:
            return _push_change(prev, tokens, amount)
        return _nudge(prev, role, tokens, amount, catalog)
    intent = prev
    if new:
        intent = _replace(prev, new[-1].asset, [m.asset for m in mentions if m not in new], catalog)
        notes.append(f"now the {new[-1].asset}")
        role = "target" if intent.target == new[-1].asset and intent.obj != new[-1].asset else "obj"
    for i, tok in enumerate(tokens):
        if tok in W.SIZES and not (tok == "little" and (i and tokens[i - 1] == "a")):
            field = "target_scale" if role == "target" else "scale"
            intent = replace(intent, **{field: round(getattr(intent, field) * W.SIZES[tok], 4)})
            notes.append(f"{tok}: scale x{W.SIZES[tok]:g}")
    rest = list(tokens)
    for q in W.quantities(tokens):
        m = size_mention(tokens, q, mentions) if q.kind == "length" else None
        if m is None and q.kind == "length" and "make" in toks and mentions:
            m = mentions[-1]  # "make the cube 4 cm"
        if m is not None:
            field = "target_scale" if m.asset == intent.target and m.asset != intent.obj else "scale"
            intent = replace(intent, **{field: round(q.value / max(catalog.objects[m.asset].size), 4)})
            notes.append(f"the {m.asset} {q.value * 100:g} cm")
            rest[q.start] = "_"
    if intent.family == "lift" and toks & {"higher", "lower"}:
        step = (amount or STEP) * (1 if "higher" in toks else -1)
        intent = replace(intent, height=round(intent.height + step, 4))
        notes.append(f"lift height {step * 100:+g} cm")
    else:
        intent = read_numbers(intent, rest, mentions, catalog, notes)
    if intent == prev:
        raise GroundingError(f'I did not understand the change "{text}". {UNDERSTOOD}', [], catalog)
    return replace(intent, notes=tuple(notes))


def _replace(prev: Intent, asset_id: str, old: list[str], catalog: Catalog) -> Intent:
    """Swap the object, or the container/surface when the new thing is one and the old target was named."""
    new = catalog.objects[asset_id]
    tags = set(new.tags)
    wants_target = prev.family == "place" and (
        prev.target in old or (bool({"container", "surface"} & tags) and prev.obj not in old)
    )
    if wants_target and not {"container", "surface"} & tags:
        wants_target = False
    if wants_target:
        return replace(prev, target=asset_id, target_scale=1.0)
    return replace(prev, obj=asset_id, scale=1.0)


def _nudge(prev: Intent, role: str, tokens: list[str], amount: float | None, catalog: Catalog) -> Intent:
    """Move the object or the target by `amount` (default 5 cm) in the direction the words give."""
    step = amount or STEP
    toks = set(tokens)
    laid, _ = normalise(prev, catalog)
    (ox, oy), target = default_xy(laid, catalog)
    ox, oy = ox + prev.nudge[0], oy + prev.nudge[1]
    if toks & (AWAY | NEAR):
        if target is not None:
            tx, ty = target[0] + prev.target_nudge[0], target[1] + prev.target_nudge[1]
            vx, vy = (tx - ox, ty - oy) if role == "target" else (ox - tx, oy - ty)
            norm = math.hypot(vx, vy) or 1.0
            vec = (vx / norm, vy / norm)
        else:
            vec = (1.0, 0.0)
        sign = 1.0 if toks & AWAY else -1.0
        vec = (sign * vec[0], sign * vec[1])
    else:
        vec = next(W.DIRECTIONS[t] for t in tokens if t in W.DIRECTIONS)
    field = "target_nudge" if role == "target" else "nudge"
    cur = getattr(prev, field)
    moved = (round(cur[0] + vec[0] * step, 4), round(cur[1] + vec[1] * step, 4))
    name = prev.target if role == "target" else prev.obj
    return replace(
        prev, **{field: moved}, notes=(f"the {name} moved {step * 100:g} cm by ({vec[0]:.2f}, {vec[1]:.2f})",)
    )


def _push_change(prev: Intent, tokens: list[str], amount: float | None) -> Intent:
    toks = set(tokens)
    if toks & AWAY or (toks & NEAR and not toks & {"left", "right"}):
        step = (amount or STEP) * (1 if toks & AWAY else -1)
        return replace(prev, distance=round(prev.distance + step, 4), notes=(f"push distance {step:+g} m",))
    direction = next(W.DIRECTIONS[t] for t in tokens if t in W.DIRECTIONS)
    return replace(prev, direction=direction, distance=amount or prev.distance, notes=("new push direction",))
