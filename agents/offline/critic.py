"""The offline critic: physics-check findings become sentences (numbers first) and typed corrections.

Each error finding gets the smallest change that fixes it, preferring moves over anything else:
interpenetration moves one of the pair (the one no predicate manipulates, else the free one) apart along
the line between their centres, far enough that their boxes clear, or lifts an object out of the ground;
settling puts a fallen object back to rest on the ground and a tipped one upright; reach and workspace
findings move the object towards the hand and into the table area; scale findings rescale into the
graspable range (and re-rest the object). Every correction is applied to a working copy as it is made, so
later ones see earlier ones, and the final list is applied once more to the input spec to prove it valid.
Warnings alone, or no finding, mean accept; so does a scene still wrong after `MAX_ROUNDS` rounds.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import ValidationError

from dexforge.agents.corrections import CorrectionError, apply_corrections
from dexforge.agents.offline.layout import aabb
from dexforge.agents.schemas import Correction, Critique, CritiqueBrief, Move, Rotate, Scale
from dexforge.sim.catalog import Catalog
from dexforge.sim.checks import (
    MAX_GRASP_WIDTH,
    MIN_GRASP_WIDTH,
    MOVE_TOL,
    TILT_TOL,
    WORKSPACE_XY,
    Finding,
    static_checks,
)
from dexforge.sim.spec import TaskSpec

MAX_ROUNDS = 3
MARGIN = 0.005  # m added to every separation
EDGE = 0.02  # m kept between an object and the edge of the table area
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def critique(brief: CritiqueBrief, catalog: Catalog) -> Critique:
    spec = brief.spec
    findings, unreadable = _findings(brief, spec, catalog)
    sentences = [sentence(f) for f in findings] + unreadable
    working, fixes, problems = spec, {}, []
    for f in findings:
        if f.severity != "error":
            continue
        try:
            for c in fix(f, working, catalog):
                working = apply_corrections(working, [c])
                fixes[(c.object, c.kind)] = c
        except (CorrectionError, KeyError, ValueError) as exc:
            problems.append(f"no correction for {f.check} of {f.subject}: {exc}")
    corrections: list[Correction] = list(fixes.values())
    try:
        apply_corrections(spec, corrections)
    except CorrectionError as exc:  # pragma: no cover - each one was applied above
        problems.append(f"the corrections together do not apply ({exc}); proposing none")
        corrections = []
    errors = [f for f in findings if f.severity == "error"]
    if errors and corrections:
        left = [g for g in static_checks(working, catalog) if g.severity == "error"]
        problems += [f"after the corrections still: {sentence(g)}" for g in left]
    revise = bool(errors) and bool(corrections) and brief.round < MAX_ROUNDS
    if errors and not revise:
        why = f"after {brief.round} rounds" if brief.round >= MAX_ROUNDS else "no typed correction fixes them"
        problems.append(f"{len(errors)} error finding(s) remain; accepting {why}, training will tell")
    return Critique(
        findings=sentences + problems,
        corrections=corrections if revise else [],
        verdict="revise" if revise else "accept",
    )


def _findings(brief: CritiqueBrief, spec: TaskSpec, catalog: Catalog) -> tuple[list[Finding], list[str]]:
    """The brief's findings plus the static checks it lacks, errors first."""
    found: list[Finding] = []
    unreadable: list[str] = []
    for raw in brief.findings:
        try:
            found.append(Finding.model_validate(raw))
        except ValidationError:
            unreadable.append(f"a finding could not be read and was ignored: {raw!r}"[:300])
    seen = {(f.check, f.subject) for f in found}
    found += [f for f in static_checks(spec, catalog) if (f.check, f.subject) not in seen]
    return sorted(found, key=lambda f: SEVERITY_ORDER[f.severity]), unreadable


def sentence(f: Finding) -> str:
    """One finding, its numbers first."""
    v = f.values
    if f.check == "interpenetration":
        lead = f"{v.get('depth', 0.0) * 1000:.1f} mm overlap"
    elif f.check == "settling":
        lead = (
            f"{v.get('drop', 0.0) * 100:.1f} cm drop, {v.get('tilt_deg', 0.0):.0f} deg tilt, "
            f"{v.get('moved', 0.0) * 100:.1f} cm moved in the first second"
        )
    elif f.check == "reach":
        lead = f"{v.get('gap', 0.0) * 100:.1f} cm out of grasp distance"
    elif f.check == "workspace":
        lead = f"{v.get('outside_by', 0.0) * 100:.1f} cm outside the table area"
    elif "mass" in v:
        lead = f"{v['mass']:.2f} kg (limit {v.get('max_mass', 0.0):g} kg)"
    else:
        limit = v.get("min_width", v.get("max_width", 0.0))
        lead = f"{v.get('width', 0.0) * 100:.1f} cm thinnest side (limit {limit * 100:.1f} cm)"
    return f"{lead}: {f.subject} ({f.check}, {f.severity}): {f.message}"


def fix(f: Finding, spec: TaskSpec, catalog: Catalog) -> list[Correction]:
    """Corrections that fix one error finding on `spec` (empty when no typed correction can)."""
    if f.check == "interpenetration":
        return _separate(f, spec, catalog)
    names = {o.key for o in spec.objects}
    if f.subject not in names:
        return []
    obj = spec.object_spec(f.subject)
    ext = aabb(catalog.object(obj.asset), obj.scale, obj.pose.euler)
    x, y, z = obj.pose.pos
    if f.check == "settling":
        out: list[Correction] = []
        euler = obj.pose.euler
        if f.values.get("tilt_deg", 0.0) > TILT_TOL:
            euler = (0.0, 0.0, euler[2])
            out.append(Rotate(object=f.subject, euler=euler))
        if f.values.get("drop", 0.0) > MOVE_TOL or out:
            rest = aabb(catalog.object(obj.asset), obj.scale, euler)
            x, y = _inside_table(x, y, rest)
            out.append(Move(object=f.subject, pos=_r(x, y, rest[2] / 2)))
        return out
    if f.check == "workspace":
        x, y = _inside_table(x, y, ext)
        return [Move(object=f.subject, pos=_r(x, y, max(z, ext[2] / 2)))]
    if f.check == "reach":
        goal = spec.hand.pose.pos if spec.hand.mount == "floating" else spec.hand.arm_base
        dx, dy = goal[0] - x, goal[1] - y
        dist = math.hypot(dx, dy)
        step = min(dist, f.values.get("gap", 0.0) + 0.02)
        if dist > 1e-6:
            x, y = x + dx / dist * step, y + dy / dist * step
        x, y = _inside_table(x, y, ext)
        return [Move(object=f.subject, pos=_r(x, y, ext[2] / 2))]
    if f.check == "scale" and "width" in f.values and f.values["width"] > 0:
        width = f.values["width"]
        goal = MIN_GRASP_WIDTH * 1.25 if "min_width" in f.values else MAX_GRASP_WIDTH * 0.9
        scale = round(min(max(obj.scale * goal / width, 1e-3), 10.0), 4)
        rest = aabb(catalog.object(obj.asset), scale, obj.pose.euler)
        return [Scale(object=f.subject, scale=scale), Move(object=f.subject, pos=_r(x, y, rest[2] / 2))]
    return []


def _separate(f: Finding, spec: TaskSpec, catalog: Catalog) -> list[Correction]:
    """Move one of an overlapping pair apart (or out of the ground) by the depth and a margin at least."""
    a, _, b = f.subject.partition(" <-> ")
    names = {o.key for o in spec.objects}
    depth = f.values.get("depth", 0.0)
    pair = [n for n in (a, b) if n in names]
    if not pair:
        return []
    other = b if pair[0] == a else a
    if len(pair) == 2:
        manipulated = {p.object for p in spec.success}
        pair.sort(key=lambda n: (n in manipulated, bool(_fixed(spec, n, catalog)), n != b))
    mover = spec.object_spec(pair[0])
    ext = aabb(catalog.object(mover.asset), mover.scale, mover.pose.euler)
    x, y, z = mover.pose.pos
    if other == "ground":
        return [Move(object=mover.key, pos=_r(x, y, max(z + depth + MARGIN, ext[2] / 2)))]
    if other in names:
        o = spec.object_spec(other)
        o_pos, o_ext = o.pose.pos, aabb(catalog.object(o.asset), o.scale, o.pose.euler)
    else:  # the hand (or arm): its footprint reaches from the palm towards the fingertips (+x)
        o_pos, o_ext = spec.hand.pose.pos, np.array([0.0, 0.0, 0.0])
        o_pos = (o_pos[0] + 0.05, o_pos[1], o_pos[2])
    ux, uy = x - o_pos[0], y - o_pos[1]
    norm = math.hypot(ux, uy)
    ux, uy = (ux / norm, uy / norm) if norm > 1e-6 else (0.0, 1.0)
    step = max(depth, _box_clearance(ux, uy, (x - o_pos[0], y - o_pos[1]), (ext + o_ext) / 2)) + MARGIN
    nx, ny = _inside_table(x + ux * step, y + uy * step, ext)
    return [Move(object=mover.key, pos=_r(nx, ny, z))]


def _box_clearance(ux: float, uy: float, rel: tuple[float, float], half: np.ndarray) -> float:
    """How far along (ux, uy) the relative offset must grow until the two boxes no longer overlap in xy."""
    need = []
    for d, u, h in ((rel[0], ux, half[0]), (rel[1], uy, half[1])):
        if abs(d) >= h:
            return 0.0  # already apart along this axis
        if abs(u) > 1e-6:
            need.append((math.copysign(h, u) - d) / u)
    return max(0.0, min(need)) if need else 0.0


def _fixed(spec: TaskSpec, name: str, catalog: Catalog) -> bool:
    obj = spec.object_spec(name)
    return obj.fixed if obj.fixed is not None else catalog.object(obj.asset).fixed


def _inside_table(x: float, y: float, ext: np.ndarray) -> tuple[float, float]:
    lim_x = max(WORKSPACE_XY - EDGE - ext[0] / 2, 0.0)
    lim_y = max(WORKSPACE_XY - EDGE - ext[1] / 2, 0.0)
    return min(max(x, -lim_x), lim_x), min(max(y, -lim_y), lim_y)


def _r(x: float, y: float, z: float) -> tuple[float, float, float]:
    return (round(float(x), 4), round(float(y), 4), round(float(z), 4))
