"""Success predicates, batched over envs, reading only the metrics dict.

`compile_predicates(spec)` turns the spec's predicate list into functions `m -> (N,) bool`. The
static facts a predicate needs (a container's cavity, an object's height, a joint's range) come
from the catalog at compile time; everything that changes comes from the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from dexforge.sim import hand as H
from dexforge.sim.catalog import Catalog, default_catalog
from dexforge.sim.rotations import quat_apply, quat_conj, quat_mul, twist_angle
from dexforge.sim.spec import Held, Inside, Lifted, Moved, On, Opened, Reached, Rotated, TaskSpec, Touching

Metrics = dict[str, torch.Tensor]
PredicateFn = Callable[[Metrics], torch.Tensor]
RESTING_SPEED = 0.15  # m/s: slower than this counts as resting (inside / on)
AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def _extents(spec: TaskSpec, name: str, catalog: Catalog) -> tuple[float, float, float]:
    obj = spec.object_spec(name)
    asset = catalog.object(obj.asset)
    return tuple(s * obj.scale for s in asset.size)


def lifted(obj: str, height: float) -> PredicateFn:
    return lambda m: m[f"{obj}.lift"] >= height


def inside(obj: str, container: str, cavity: tuple[float, float, float], outer_h: float) -> PredicateFn:
    half_x, half_y = cavity[0] / 2, cavity[1] / 2

    def fn(m: Metrics) -> torch.Tensor:
        rel = quat_apply(quat_conj(m[f"{container}.quat"]), m[f"{obj}.pos"] - m[f"{container}.pos"])
        within = (rel[:, 0].abs() < half_x) & (rel[:, 1].abs() < half_y)
        below_rim = (rel[:, 2] > -outer_h / 2) & (rel[:, 2] < outer_h / 2 + 0.02)
        resting = m[f"{obj}.linvel"].norm(dim=-1) < RESTING_SPEED
        return within & below_rim & resting

    return fn


def on(obj: str, surface: str, surface_ext, obj_h: float) -> PredicateFn:
    def fn(m: Metrics) -> torch.Tensor:
        rel = quat_apply(quat_conj(m[f"{surface}.quat"]), m[f"{obj}.pos"] - m[f"{surface}.pos"])
        within = (rel[:, 0].abs() < surface_ext[0] / 2) & (rel[:, 1].abs() < surface_ext[1] / 2)
        gap = rel[:, 2] - surface_ext[2] / 2
        above = (gap > 0.0) & (gap < obj_h + 0.01)
        resting = m[f"{obj}.linvel"].norm(dim=-1) < RESTING_SPEED
        return within & above & resting

    return fn


def rotated(obj: str, axis: str, angle_deg: float, tol_deg: float) -> PredicateFn:
    target = math.radians(angle_deg)
    tol = math.radians(tol_deg)

    def fn(m: Metrics) -> torch.Tensor:
        q_rel = quat_mul(m[f"{obj}.quat"], quat_conj(m[f"{obj}.start_quat"]))
        ax = torch.tensor(AXES[axis], device=q_rel.device)
        err = torch.remainder(twist_angle(q_rel, ax) - target + math.pi, 2 * math.pi) - math.pi
        return err.abs() <= tol

    return fn


def opened(obj: str, joint_index: int, lower: float, upper: float, fraction: float) -> PredicateFn:
    def fn(m: Metrics) -> torch.Tensor:
        q = m[f"{obj}.joint_pos"][:, joint_index]
        return (q - lower) / (upper - lower) >= fraction

    return fn


def touching(obj: str, min_fingers: int, parts: list[int] | None = None) -> PredicateFn:
    """At least `min_fingers` hand parts touch `obj`, and every part in `parts` (indices into the
    contacts table: thumb, index, middle, ring, little, palm) is among them."""
    if not parts:
        return lambda m: m[f"{obj}.n_contacts"] >= min_fingers
    return lambda m: (m[f"{obj}.n_contacts"] >= min_fingers) & m[f"{obj}.contacts"][:, parts].all(dim=-1)


def held(obj: str, duration: float) -> PredicateFn:
    return lambda m: m[f"{obj}.grasp_time"] >= duration - 1e-6


def reached(obj: str, offset, tolerance: float) -> PredicateFn:
    def fn(m: Metrics) -> torch.Tensor:
        goal = m[f"{obj}.pos"] + torch.tensor(offset, dtype=m["palm_pos"].dtype, device=m["palm_pos"].device)
        return (m["palm_pos"] - goal).norm(dim=-1) <= tolerance

    return fn


def moved(obj: str, offset, tolerance: float) -> PredicateFn:
    """The object's centre moved by `offset` (x, y; z ignored) since the episode began, within `tolerance` m."""

    def fn(m: Metrics) -> torch.Tensor:
        pos = m[f"{obj}.pos"]
        goal = torch.tensor(offset[:2], dtype=pos.dtype, device=pos.device)
        return (pos[:, :2] - m[f"{obj}.start_pos"][:, :2] - goal).norm(dim=-1) <= tolerance

    return fn


def compile_predicates(spec: TaskSpec, catalog: Catalog | None = None) -> list[PredicateFn]:
    """One batched function per success predicate of `spec`, in order."""
    catalog = catalog or default_catalog()
    fns: list[PredicateFn] = []
    for pred in spec.success:
        if isinstance(pred, Lifted):
            fns.append(lifted(pred.object, pred.height))
        elif isinstance(pred, Inside):
            c_spec = spec.object_spec(pred.container)
            c_asset = catalog.object(c_spec.asset)
            outer = _extents(spec, pred.container, catalog)
            cavity = tuple(s * c_spec.scale for s in (c_asset.inner or c_asset.size))
            fns.append(inside(pred.object, pred.container, cavity, outer[2]))
        elif isinstance(pred, On):
            obj_h = _extents(spec, pred.object, catalog)[2]
            fns.append(on(pred.object, pred.surface, _extents(spec, pred.surface, catalog), obj_h))
        elif isinstance(pred, Rotated):
            fns.append(rotated(pred.object, pred.axis, pred.angle, pred.tolerance))
        elif isinstance(pred, Opened):
            asset = spec.asset_of(pred.object, catalog)
            names = [j.name for j in asset.articulation]
            i = names.index(pred.joint) if pred.joint else 0
            lower, upper = asset.articulation[i].range_at(spec.object_spec(pred.object).scale)
            fns.append(opened(pred.object, i, lower, upper, pred.fraction))
        elif isinstance(pred, Touching):
            parts = [H.CONTACT_PARTS.index(p) for p in pred.parts]
            fns.append(touching(pred.object, max(pred.min_fingers, len(parts)), parts))
        elif isinstance(pred, Held):
            fns.append(held(pred.object, pred.duration))
        elif isinstance(pred, Reached):
            fns.append(reached(pred.object, pred.offset, pred.tolerance))
        elif isinstance(pred, Moved):
            fns.append(moved(pred.object, pred.offset, pred.tolerance))
        else:  # pragma: no cover - the spec's union is closed
            raise TypeError(f"no batched form for predicate {pred!r}")
    return fns


def evaluate(fns: list[PredicateFn], m: Metrics, n_envs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(success (N,), parts (N, P)); a task without predicates never succeeds."""
    device = next(iter(m.values())).device
    if not fns:
        empty = torch.zeros(n_envs, 0, dtype=torch.bool, device=device)
        return torch.zeros(n_envs, dtype=torch.bool, device=device), empty
    parts = torch.stack([fn(m) for fn in fns], dim=-1)
    return parts.all(dim=-1), parts
