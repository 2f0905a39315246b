"""Palm paths for motion-planned subtasks: rise, transit, descend; batched over envs, in torch.

A path moves the centre of the palm's surface in straight legs at a common speed:

1. **rise** vertically from where the palm is to a cruise height,
2. **transit** horizontally at that height to above the goal,
3. **descend** vertically to the goal.

The cruise height is the highest top among the objects that are not in the hand, plus a clearance,
plus how far a held object hangs below the palm; never lower than the start or the goal. When the
goal lies straight above or below the start (a lift, a pure descend) the path is one vertical leg.
The orientation (intrinsic X-Y-Z angles, the floating wrist's roll, pitch and yaw) moves linearly to
its goal during rise and transit, away from the object, or over the whole path when there is no
such leg. Every env follows its own waypoints; the legs' step counts are shared (set by the env that
has farthest to go), so all envs arrive together. Between legs the palm waits a few steps at the
corner: a PD lags a moving target, and the wait lets it arrive before the path turns.

On an arm mount, `solve_arm_path` turns a palm path into arm joint targets with Genesis's damped
least-squares IK, one solve per control step seeded with the previous one and without random
restarts, so the joints stay on one branch and move as continuously as the palm does. The IK knows
nothing of collisions: a path can run an arm link into the table (a palm-up approach to a cube from
the UR5e's home pose does; a palm-down `euler` goal does not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from dexforge.sim.rotations import quat_apply, quat_mul

VERTICAL_EPS = 0.005  # m: goals closer than this horizontally are reached by one vertical leg
MAX_ANGULAR_SPEED = 1.5  # rad/s per wrist angle
IK_JUMP = 0.5  # rad: a larger change of an arm joint between two control steps is a branch switch


class PlanningError(ValueError):
    """A motion goal that cannot be planned: outside the workspace, or out of the arm's reach."""


@dataclass(frozen=True)
class Leg:
    """One straight piece of a palm path: (N, 3) ends, reached in `steps` control steps."""

    name: str
    start: torch.Tensor
    end: torch.Tensor
    steps: int


@dataclass
class PalmPath:
    """Palm-centre positions and wrist angles for every control step of a plan, batched over N envs."""

    legs: list[Leg]
    rpy_start: torch.Tensor  # (N, 3) rad
    rpy_end: torch.Tensor  # (N, 3) rad
    rot_steps: int  # the orientation reaches rpy_end after this many steps
    _ends: list[int] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        total = 0
        for leg in self.legs:
            total += leg.steps
            self._ends.append(total)

    @property
    def steps(self) -> int:
        return self._ends[-1] if self._ends else 0

    @property
    def phases(self) -> list[tuple[str, int]]:
        """(leg name, steps) in order, e.g. [("rise", 5), ("transit", 150), ("descend", 37)]."""
        return [(leg.name, leg.steps) for leg in self.legs]

    @property
    def goal(self) -> torch.Tensor:
        """(N, 3) final palm position."""
        return self.legs[-1].end

    def at(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(palm position (N, 3), wrist angles (N, 3)) after control step `t` (0-based); held after the end."""
        rot = min(1.0, (t + 1) / max(self.rot_steps, 1))
        rpy = self.rpy_start + (self.rpy_end - self.rpy_start) * rot
        begin = 0
        for leg, end in zip(self.legs, self._ends, strict=True):
            if t < end:
                frac = (t - begin + 1) / leg.steps
                return leg.start + (leg.end - leg.start) * frac, rpy
            begin = end
        return self.goal, rpy


@dataclass
class WaypointPath:
    """A palm path given at every control step: positions (T, N, 3) and wrist angles (T, N, 3), e.g. an arc.

    Same interface as PalmPath (`steps`, `phases`, `goal`, `at`), so a controller follows either."""

    pos: torch.Tensor
    rpy: torch.Tensor
    name: str = "pull"

    @property
    def steps(self) -> int:
        return int(self.pos.shape[0])

    @property
    def phases(self) -> list[tuple[str, int]]:
        return [(self.name, self.steps)]

    @property
    def goal(self) -> torch.Tensor:
        return self.pos[-1]

    def at(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = min(t, self.steps - 1)
        return self.pos[i], self.rpy[i]


def joint_path(
    start: torch.Tensor,
    rpy_start: torch.Tensor,
    anchor: torch.Tensor,
    axis: torch.Tensor,
    delta: torch.Tensor,
    *,
    revolute: bool,
    step_length: float,
    angle_step: float,
) -> WaypointPath:
    """The palm carried with an articulation joint that moves by `delta` (N,) (m or rad) from where it is.

    start: (N, 3) palm centre; rpy_start: (N, 3) wrist angles; anchor, axis: (N, 3) a point on the joint's
    axis and its unit direction, world frame. Prismatic: the palm slides `delta` along the axis. Revolute:
    the palm turns `delta` around the axis through the anchor, and so does its orientation (the wrist
    angles follow the turned frame, each step's angles chosen next to the previous step's, so the wrist
    never spins through the other solution). The step count is set by the env that moves farthest, at
    most `step_length` (m) or `angle_step` (rad) a step.
    """
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    if revolute:
        radius = torch.linalg.cross(axis, start - anchor).norm(dim=-1)
        travel = float((delta.abs() * radius).max())
        steps = max(1, math.ceil(max(travel / step_length, float(delta.abs().max()) / angle_step) - 1e-3))
    else:
        steps = max(1, math.ceil(float(delta.abs().max()) / step_length - 1e-3))
    frac = torch.arange(1, steps + 1, dtype=start.dtype, device=start.device)[:, None] / steps  # (T, 1)
    amount = frac * delta[None, :]  # (T, N)
    if not revolute:
        pos = start[None] + amount[..., None] * axis[None]
        return WaypointPath(pos, rpy_start[None].expand(steps, -1, -1).clone())
    half = amount[..., None] / 2
    turn = torch.cat([torch.cos(half), torch.sin(half) * axis[None]], dim=-1)  # (T, N, 4) about the axis
    rel = (start - anchor)[None].expand(steps, -1, -1)
    pos = anchor[None] + quat_apply(turn, rel)
    wrist = quat_mul(turn, quat_from_rpy(rpy_start)[None].expand(steps, -1, -1))
    rpy, prev = [], rpy_start
    for t in range(steps):
        prev = _nearest_rpy(rpy_from_quat(wrist[t]), prev)
        rpy.append(prev)
    return WaypointPath(pos, torch.stack(rpy))


def _nearest_rpy(rpy: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """Of the two X-Y-Z angle triples of one rotation (and their 2 pi copies), the one nearest `prev`."""
    other = torch.stack([rpy[:, 0] + math.pi, math.pi - rpy[:, 1], rpy[:, 2] + math.pi], dim=-1)
    best = []
    for cand in (rpy, other):
        near = prev + torch.remainder(cand - prev + math.pi, 2 * math.pi) - math.pi
        best.append(near)
    dist = torch.stack([(b - prev).abs().sum(dim=-1) for b in best], dim=-1)
    return torch.where((dist[:, 0] <= dist[:, 1])[:, None], best[0], best[1])


def plan_palm_path(
    start: torch.Tensor,
    goal: torch.Tensor,
    cruise: torch.Tensor,
    rpy_start: torch.Tensor,
    rpy_end: torch.Tensor,
    *,
    step_length: float,
    angle_step: float,
    dwell_steps: int = 0,
) -> PalmPath:
    """Rise, transit and descend legs from `start` (N, 3) to `goal` (N, 3) at the `cruise` height (N,).

    `step_length` (m) and `angle_step` (rad) are the most one control step may move the palm or turn a
    wrist angle. Legs no env needs are left out; between two legs the palm waits `dwell_steps` at the
    corner (a PD lags a moving target; the wait lets it arrive before the path turns). The orientation
    turns during rise and transit.
    """
    direct = (goal[:, :2] - start[:, :2]).norm(dim=-1) < VERTICAL_EPS
    high = torch.maximum(start[:, 2], goal[:, 2])
    height = torch.where(direct, high, torch.maximum(cruise, high))
    above_start = torch.cat([start[:, :2], height[:, None]], dim=-1)
    above_goal = torch.cat([goal[:, :2], height[:, None]], dim=-1)
    legs: list[Leg] = []
    ends = (("rise", start, above_start), ("transit", above_start, above_goal), ("descend", above_goal, goal))
    for name, a, b in ends:
        steps = math.ceil(float((b - a).norm(dim=-1).max()) / step_length - 1e-3)  # float noise must not add a step
        if steps <= 0:
            continue
        if legs and dwell_steps:  # let the PD catch up at the corner before turning
            legs.append(Leg("dwell", a, a, dwell_steps))
        legs.append(Leg(name, a, b, steps))
    rot_needed = math.ceil(float((rpy_end - rpy_start).abs().max()) / angle_step - 1e-3)
    if not legs:
        legs.append(Leg("rotate", start, goal, max(rot_needed, 1)))
    descend = [i for i, leg in enumerate(legs) if leg.name == "descend"]
    window = list(range(descend[0] if descend and descend[0] > 0 else len(legs)))
    short = rot_needed - sum(legs[i].steps for i in window)
    if short > 0:  # slow the last moving leg of the window down until the turn fits the angular speed limit
        i = [i for i in window if legs[i].name != "dwell"][-1]
        legs[i] = Leg(legs[i].name, legs[i].start, legs[i].end, legs[i].steps + short)
    rot_steps = sum(legs[i].steps for i in window)
    return PalmPath(legs, rpy_start, rpy_end, rot_steps)


def quat_from_rpy(rpy: torch.Tensor) -> torch.Tensor:
    """(..., 3) intrinsic X-Y-Z angles (the floating wrist's roll, pitch, yaw) -> (..., 4) wxyz quaternions."""
    half = rpy / 2
    c, s = torch.cos(half), torch.sin(half)
    z = torch.zeros_like(c[..., 0])
    qx = torch.stack([c[..., 0], s[..., 0], z, z], dim=-1)
    qy = torch.stack([c[..., 1], z, s[..., 1], z], dim=-1)
    qz = torch.stack([c[..., 2], z, z, s[..., 2]], dim=-1)
    return quat_mul(quat_mul(qx, qy), qz)


def rpy_from_quat(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) wxyz quaternions -> (N, 3) intrinsic X-Y-Z angles (the inverse of `quat_from_rpy`)."""
    from scipy.spatial.transform import Rotation

    xyzw = q[:, [1, 2, 3, 0]].detach().cpu().double().numpy()
    angles = Rotation.from_quat(xyzw).as_euler("XYZ")
    return torch.as_tensor(angles, dtype=q.dtype, device=q.device)


def cruise_height(tops: torch.Tensor, held_below: torch.Tensor, clearance: float) -> torch.Tensor:
    """(N,) palm height that keeps the hand and what it holds `clearance` above every obstacle.

    tops: (N, K) top of each obstacle (-inf for objects in the hand); held_below: (N,) how far the
    lowest held object reaches below the palm (0 when nothing is held).
    """
    top = tops.max(dim=-1).values if tops.shape[-1] else torch.full_like(held_below, -math.inf)
    return top + clearance + held_below


def solve_arm_path(
    arm: Any,
    link: Any,
    path: PalmPath,
    link_quat: torch.Tensor,
    palm_in_link: torch.Tensor,
    q_start: torch.Tensor,
    limits: tuple[torch.Tensor, torch.Tensor],
    *,
    tolerance: float,
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Arm joint targets (T, N, n_arm) that put the palm on `path` at every control step.

    The hand hangs rigidly from `link` (the arm link it is attached to; its own wrist joints are frozen
    during a motion plan), so the palm is the fixed point `palm_in_link` (N, 3) of that link. With
    `rotation` None the link keeps `link_quat` (N, 4); otherwise the link turns with the path's wrist
    angles: link quat = quat_from_rpy(rpy) * rotation (N, 4). IK answers modulo a full turn: a solution
    2 pi away from the previous step's is brought next to it where the joint `limits` (lower, upper)
    allow. Raises PlanningError when IK leaves the palm more than `tolerance` (m) from the path, or
    jumps between solution branches.
    """
    reach = palm_in_link.norm(dim=-1)
    q_prev, out = q_start, []
    for t in range(path.steps):
        pos, rpy = path.at(t)
        q_link = link_quat if rotation is None else quat_mul(quat_from_rpy(rpy), rotation)
        q, err = arm.inverse_kinematics(
            link=link,
            pos=pos - quat_apply(q_link, palm_in_link),
            quat=q_link,
            init_qpos=q_prev,
            max_samples=1,  # no random restarts: stay on the branch the arm is on
            return_error=True,
        )
        q, err = torch.as_tensor(q).to(q_prev), torch.as_tensor(err).to(q_prev)
        near = q_prev + torch.remainder(q - q_prev + math.pi, 2 * math.pi) - math.pi
        q = torch.where((near >= limits[0]) & (near <= limits[1]), near, q)
        palm_err = err[:, :3].norm(dim=-1) + err[:, 3:].norm(dim=-1) * reach  # bound on the palm's miss
        if bool((palm_err > tolerance).any()):
            env = int(palm_err.argmax())
            where = [round(float(v), 3) for v in pos[env]]
            raise PlanningError(
                f"the arm cannot bring the palm to {where} (env {env}, step {t + 1} of {path.steps}, "
                f"{leg_at(path, t)} leg): IK stays {float(palm_err[env]) * 100:.1f} cm away "
                f"(tolerance {tolerance * 100:.1f} cm). Move the goal closer to the arm's base, "
                f"raise it, or use a floating mount."
            )
        jump = (q - q_prev).abs().max(dim=-1).values
        if t > 0 and bool((jump > IK_JUMP).any()):
            raise PlanningError(
                f"IK switched to another arm configuration at step {t + 1} of {path.steps} ({leg_at(path, t)} "
                f"leg, a {float(jump.max()):.2f} rad jump): the path passes a singularity or a joint limit. "
                f"Try another goal orientation or start pose."
            )
        out.append(q)
        q_prev = q
    return torch.stack(out) if out else q_start[None]


def leg_at(path: PalmPath, t: int) -> str:
    """Name of the leg that control step `t` belongs to."""
    begin = 0
    for name, steps in path.phases:
        if t < begin + steps:
            return name
        begin += steps
    return "final"
