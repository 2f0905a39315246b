"""Physics checks a critic can use: each returns findings with the numbers behind them.

- interpenetration: pairs of bodies overlapping in the initial layout, with their depth;
- settling: objects that move, tip over or fall in the first second with the hand holding still;
- reach: objects to be manipulated that the palm cannot get within grasp distance of;
- scale: graspable objects too small, too large or too heavy for the hand;
- workspace: objects outside the table area.

`run_checks(spec)` builds one env and runs them all; the geometric ones (reach, scale, workspace)
also run without a simulator through `static_checks(spec)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from dexforge.sim import hand as H
from dexforge.sim.catalog import Catalog, default_catalog
from dexforge.sim.spec import TaskSpec

Check = Literal["interpenetration", "settling", "reach", "scale", "workspace"]
Severity = Literal["error", "warning", "info"]

PENETRATION_TOL = 0.003  # m: deeper overlaps than this are findings (resting contacts sit at ~0-1 mm)
SETTLE_TIME = 1.0  # s
MOVE_TOL = 0.02  # m
TILT_TOL = 20.0  # degrees
GRASP_DISTANCE = 0.06  # m between the palm's centre and an object's centre
MIN_GRASP_WIDTH = 0.012  # m: thinner than a Shadow finger cannot be picked up
MAX_GRASP_WIDTH = 0.13  # m: wider than the Shadow hand's thumb-finger span
MAX_MASS = 1.5  # kg: the Shadow's finger efforts (4 N m) cannot lift more in a hold
WORKSPACE_XY = 0.6  # m: half-size of the table area
ARM_REACH = {"ur5e": 0.85, "panda": 0.855}  # m, from the shoulder


class Finding(BaseModel):
    check: Check = Field(description="Which check found it.")
    severity: Severity = Field(description="error: the task cannot work as laid out; warning: it may not.")
    subject: str = Field(description="The object, or the pair 'a <-> b'.")
    message: str = Field(description="What is wrong, with numbers, and what would fix it.")
    values: dict[str, float] = Field(default_factory=dict, description="The numbers behind the message (SI units).")


class CheckReport(BaseModel):
    spec: str
    findings: list[Finding] = Field(default_factory=list)
    checks_run: list[Check] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def by_check(self, check: Check) -> list[Finding]:
        return [f for f in self.findings if f.check == check]


def _manipulated(spec: TaskSpec) -> list[str]:
    names = {p.object for p in spec.success}
    return [o.key for o in spec.objects if o.key in names] or [o.key for o in spec.objects]


def static_checks(spec: TaskSpec, catalog: Catalog | None = None) -> list[Finding]:
    """Reach, scale and workspace: geometry only, no simulator."""
    catalog = catalog or default_catalog()
    findings: list[Finding] = []
    manipulated = set(_manipulated(spec))
    for obj in spec.objects:
        asset = catalog.object(obj.asset)
        pos = np.asarray(obj.pose.pos, dtype=float)
        ext = np.asarray(asset.size) * obj.scale
        name = obj.key
        off = max(abs(pos[0]), abs(pos[1])) - WORKSPACE_XY
        if off > 0 or pos[2] < -0.01:
            findings.append(
                Finding(
                    check="workspace",
                    severity="error",
                    subject=name,
                    message=f"{name} at ({pos[0]:.2f}, {pos[1]:.2f}, {pos[2]:.2f}) m is outside the table area "
                    f"(|x|, |y| <= {WORKSPACE_XY} m, z >= 0); move it towards the origin",
                    values={"x": pos[0], "y": pos[1], "z": pos[2], "outside_by": max(off, -pos[2])},
                )
            )
        if name in manipulated:
            gap = _reach_gap(spec, pos)
            if gap > 0:
                findings.append(
                    Finding(
                        check="reach",
                        severity="error",
                        subject=name,
                        message=f"the palm cannot get within {GRASP_DISTANCE} m of {name}: it stays {gap:.3f} m "
                        f"short; move {name} closer to the hand's workspace",
                        values={"gap": gap, "grasp_distance": GRASP_DISTANCE},
                    )
                )
        if name in manipulated and asset.graspable:
            findings += _scale_findings(name, ext, (asset.mass or 0.0) * obj.scale**3)
    return findings


def _reach_gap(spec: TaskSpec, pos: np.ndarray) -> float:
    """How far (m) the closest palm position stays beyond grasp distance of `pos`; <= 0 when reachable."""
    if spec.hand.mount == "floating":
        lo = np.array([H.WRIST_LIMITS[j][0] for j in H.WRIST_JOINTS[:3]])
        hi = np.array([H.WRIST_LIMITS[j][1] for j in H.WRIST_JOINTS[:3]])
        closest = np.clip(pos, lo, hi)
        return float(np.linalg.norm(pos - closest) - GRASP_DISTANCE)
    shoulder = np.asarray(spec.hand.arm_base) + np.array([0.0, 0.0, 0.16])
    hand_length = 0.2
    return float(np.linalg.norm(pos - shoulder) - ARM_REACH[spec.hand.mount] - hand_length - GRASP_DISTANCE)


def _scale_findings(name: str, ext: np.ndarray, mass: float) -> list[Finding]:
    out = []
    width = float(np.sort(ext)[0])  # the thinnest side is the one fingers close on
    span = float(np.sort(ext)[1])  # a grasp must wrap at least the two thinnest sides
    if width < MIN_GRASP_WIDTH:
        out.append(
            Finding(
                check="scale",
                severity="error",
                subject=name,
                message=f"{name} is {width * 100:.1f} cm thin, under the {MIN_GRASP_WIDTH * 100:.1f} cm the "
                f"fingers can close on; scale it up by at least {MIN_GRASP_WIDTH / width:.1f}x",
                values={"width": width, "min_width": MIN_GRASP_WIDTH},
            )
        )
    if width > MAX_GRASP_WIDTH or span > 2 * MAX_GRASP_WIDTH:
        out.append(
            Finding(
                check="scale",
                severity="error",
                subject=name,
                message=f"{name} is {width * 100:.1f} cm across at its thinnest, wider than the hand's "
                f"{MAX_GRASP_WIDTH * 100:.0f} cm span; scale it down by at least {width / MAX_GRASP_WIDTH:.1f}x",
                values={"width": width, "max_width": MAX_GRASP_WIDTH},
            )
        )
    if mass > MAX_MASS:
        out.append(
            Finding(
                check="scale",
                severity="warning",
                subject=name,
                message=f"{name} weighs {mass:.2f} kg, more than the {MAX_MASS} kg the fingers can hold",
                values={"mass": mass, "max_mass": MAX_MASS},
            )
        )
    return out


def interpenetration(env) -> list[Finding]:
    """Overlaps in the initial layout: one physics step from it and read the contacts' depths."""
    from dexforge.sim.env import EnvState

    state: EnvState = env.get_state()
    env.step_targets(env.targets.clone())
    data = env.built.scene.rigid_solver.collider.get_contacts(as_tensor=True, to_torch=True, is_padded=True)
    n = int(data["n_contacts"].reshape(-1)[0])
    names = _link_names(env)
    worst: dict[tuple[str, str], float] = {}
    for i in range(n):  # read before restoring: the contact tensors are views of the solver's buffers
        depth = float(data["penetration"][0, i])
        a, b = names[int(data["link_a"][0, i])], names[int(data["link_b"][0, i])]
        if a == b or depth <= PENETRATION_TOL:
            continue
        key = tuple(sorted((a, b)))
        worst[key] = max(worst.get(key, 0.0), depth)
    env.set_state(state)
    findings = []
    for (a, b), depth in sorted(worst.items(), key=lambda kv: -kv[1]):
        findings.append(
            Finding(
                check="interpenetration",
                severity="error",
                subject=f"{a} <-> {b}",
                message=f"{a} and {b} overlap by {depth * 1000:.1f} mm at the start; move one of them apart "
                f"by at least {depth * 1000 + 5:.0f} mm",
                values={"depth": depth},
            )
        )
    return findings


def _link_names(env) -> dict[int, str]:
    """Global link index -> 'hand', 'ground' or the object's name."""
    names = {}
    b = env.built
    entities = [("hand", b.hand), ("ground", b.ground), *b.objects.items()]
    if b.arm is not None:
        entities.append(("arm", b.arm))
    for name, entity in entities:
        for i in range(entity.link_start, entity.link_end):
            names[i] = name
    names[-1] = "?"
    return names


def settling(env, seconds: float = SETTLE_TIME, on_settled: Callable | None = None) -> list[Finding]:
    """Objects that move, tip or fall in the first `seconds` with the hand holding its pose. `on_settled(env)`
    sees the settled scene before the start state is put back (the scene check records its boxes there)."""
    from dexforge.sim.rotations import tilt_angle

    state = env.get_state()
    free = [k for k in env.objects if env.free[k]]
    start = {k: (env.metrics[f"{k}.pos"][0].clone(), env.metrics[f"{k}.quat"][0].clone()) for k in free}
    targets = env.targets.clone()
    for _ in range(max(1, round(seconds / env.dt))):
        env.step_targets(targets)
    if on_settled is not None:
        on_settled(env)
    m = env.metrics
    findings = []
    for k in free:
        p0, q0 = start[k]
        p1, q1 = m[f"{k}.pos"][0], m[f"{k}.quat"][0]
        moved = float((p1 - p0).norm())
        drop = float(p0[2] - p1[2])
        tilt = math.degrees(float(tilt_angle(q1[None], q0[None])[0]))
        speed = float(m[f"{k}.linvel"][0].norm())
        values = {"moved": moved, "drop": drop, "tilt_deg": tilt, "final_speed": speed}
        fell_off = float(p1[2]) < -0.02 or max(abs(float(p1[0])), abs(float(p1[1]))) > WORKSPACE_XY + 0.1
        if fell_off:
            msg, sev = f"{k} fell off the table within {seconds:.1f} s", "error"
        elif drop > MOVE_TOL:
            msg, sev = (
                f"{k} fell {drop * 100:.1f} cm within {seconds:.1f} s: it starts in mid-air; lower it to rest",
                "error",
            )
        elif tilt > TILT_TOL:
            msg, sev = f"{k} tipped {tilt:.0f} degrees within {seconds:.1f} s; give it a stable pose", "error"
        elif moved > MOVE_TOL:
            msg, sev = (
                f"{k} slid {moved * 100:.1f} cm within {seconds:.1f} s; it rests on something unstable",
                "warning",
            )
        else:
            continue
        findings.append(Finding(check="settling", severity=sev, subject=k, message=msg, values=values))
    env.set_state(state)
    return findings


def run_checks(spec: TaskSpec, env=None, on_settled: Callable | None = None) -> CheckReport:
    """All checks on one env of `spec` (built here unless `env` is given); `on_settled`: see `settling`."""
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.scene import SceneConfig

    report = CheckReport(spec=spec.name, checks_run=["workspace", "reach", "scale"])
    report.findings += static_checks(spec)
    if env is None:
        env = HandEnv(spec, EnvConfig(randomize=False, auto_reset=False), SceneConfig(n_envs=1))
    import torch  # here, not at the top: the agent process runs the static checks without torch

    with torch.no_grad():
        report.findings = interpenetration(env) + report.findings
        report.findings += settling(env, on_settled=on_settled)
    report.checks_run = ["interpenetration", "settling", *report.checks_run]
    return report
