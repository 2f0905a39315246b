"""Controllers that drive a HandEnv through one subtask, and `run_episode` that measures them.

A controller plans for all envs at once in `begin(env)` (from the env's current state and metrics:
after a reset, or after `set_state` with the previous subtask's end states) and then advances every
env one control step per `step(env)`. `steps_needed` is the length of its planned schedule, so a
runner can size the episode.

- `MotionPlanController`: the palm along a rise-transit-descend path (see `dexforge.policies.motion`)
  to a `MotionGoal`; the hand's own joints hold their targets.
- `ScriptedController`: a hand synergy (open, close, power grasp, hold); the wrist holds its targets.
- `PolicyController`: a trained policy, observations in, actions out.

Shapes: N = num_envs, D = robot joints, A = active joints, O = observation size, T = steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch

from dexforge.policies.motion import (
    MAX_ANGULAR_SPEED,
    PalmPath,
    PlanningError,
    WaypointPath,
    cruise_height,
    joint_path,
    plan_palm_path,
    quat_from_rpy,
    rpy_from_quat,
    solve_arm_path,
)
from dexforge.policies.subtask import MotionGoal
from dexforge.sim import hand as H
from dexforge.sim.env import EnvState, HandEnv, Metrics, StepResult
from dexforge.sim.predicates import compile_predicates
from dexforge.sim.rotations import quat_apply, quat_conj, quat_mul, twist_angle
from dexforge.sim.spec import Predicate

__all__ = [
    "CLOSE_HAND",
    "Controller",
    "EpisodeResult",
    "MotionPlanController",
    "PlanningError",
    "PolicyController",
    "Script",
    "ScriptedController",
    "run_episode",
]

Script = Literal["open_hand", "close_hand", "power_grasp", "hold"]
# Fist: every flexion joint at 1.4 rad, fingers side by side, the thumb turned across the palm.
CLOSE_HAND: dict[str, float] = {
    **{f"{f}_finger_joint{k}": 1.4 for f in ("index", "middle", "ring") for k in (2, 3, 4)},
    **{f"little_finger_joint{k}": 1.4 for k in (3, 4, 5)},
    "thumb_joint1": 0.6,
    "thumb_joint2": 1.2,
    "thumb_joint3": 0.0,
    "thumb_joint4": 0.5,
    "thumb_joint5": 0.8,
}


@runtime_checkable
class Controller(Protocol):
    """Drives all envs of a HandEnv through one subtask."""

    steps_needed: int
    """Length of the planned schedule in control steps (set by `begin`)."""

    def begin(self, env: HandEnv) -> None:
        """Plan for all envs from their current state and metrics."""
        ...

    def step(self, env: HandEnv) -> StepResult:
        """Advance every env by one control step."""
        ...


class MotionPlanController:
    """Moves the palm centre to `goal` along rise -> transit -> descend, batched over envs.

    Each env's goal is its own object's position at `begin` plus `goal.offset` (world frame), or the
    offset itself as a world point, or (`goal.lift`) the palm's position raised by that much, or
    (`goal.pull`) the palm carried with an articulated object's joint along or around its axis (read from
    the simulator: `joint_path`), for a hand that holds or hooks the handle. The
    palm keeps `goal.clearance` above every object not in the hand; the orientation turns linearly to
    `goal.euler` (degrees, extrinsic x-y-z as in a TaskSpec pose) or is kept. Finger and hand-wrist
    targets are frozen. The path waits `dwell_s` at its corners and, at its end, holds the final
    targets for `settle_s` (both part of `steps_needed`): the PD lags a moving target by about
    speed x kv / kp (1.5 cm at 0.3 m/s), and the waits let it arrive.

    Floating mount: the wrist joints are the palm centre's position and intrinsic roll/pitch/yaw, so
    the path is the targets. Arm mount: one IK solve per step on the arm link the hand is attached to,
    with the palm as a fixed point of that link measured at `begin` (exact while the hand-wrist joints
    hold, which they do here); `euler` there means the palm link's orientation in the floating mount's
    convention. Raises PlanningError when the goal is out of the workspace or IK misses by more than
    `ik_tolerance`.
    """

    def __init__(
        self,
        goal: MotionGoal,
        *,
        settle_s: float = 0.3,
        dwell_s: float = 0.1,
        ik_tolerance: float = 0.02,
    ):
        self.goal = goal
        self.settle_s = settle_s
        self.dwell_s = dwell_s
        self.ik_tolerance = ik_tolerance
        self.steps_needed = 0
        self.path: PalmPath | WaypointPath | None = None
        self._turns = False
        self._t = 0
        self._base = torch.zeros(0)
        self._cols: list[int] = []
        self._arm_q: torch.Tensor | None = None
        self._offset = torch.zeros(0)

    @property
    def phases(self) -> list[tuple[str, int]]:
        """The planned legs and the final settle, as (name, steps); e.g. for checking a transit height."""
        if self.path is None:
            return []
        return [*self.path.phases, ("settle", self.steps_needed - self.path.steps)]

    def begin(self, env: HandEnv) -> None:
        m = env.metrics
        self._t = 0
        self._base = env.targets.clone()
        if self.goal.grip:  # squeeze a held object harder, within the joints' ranges
            cols = [env.joint_names.index(j) for j in H.FLEXION_JOINTS if j in env.joint_names]
            lo, hi = env.lower[cols], env.upper[cols]
            self._base[:, cols] = torch.minimum(torch.maximum(self._base[:, cols] + self.goal.grip, lo), hi)
        floating = env.built.arm is None
        palm_frame = m["palm_quat"]  # replaced below on an arm mount
        if floating:
            self._cols = [env.joint_names.index(j) for j in H.WRIST_JOINTS]
            q = m["joint_pos"][:, self._cols]
            rpy_start = self._base[:, self._cols[3:]]
            # the palm centre in the wrist frame: zero unless the hand's own wrist joints are bent
            self._offset = quat_apply(quat_conj(quat_from_rpy(q[:, 3:])), m["palm_pos"] - q[:, :3])
            start = self._base[:, self._cols[:3]] + quat_apply(quat_from_rpy(rpy_start), self._offset)
        else:
            palm_frame = quat_mul(m["palm_quat"], quat_conj(_mount_quat(env)))
            rpy_start = rpy_from_quat(palm_frame)
            start = m["palm_pos"].clone()
        rpy_end = rpy_start.clone()
        if self.goal.euler is not None:
            rpy_end[:] = torch.as_tensor(H.wrist_qpos_from_pose((0.0, 0.0, 0.0), self.goal.euler)[3:]).to(rpy_end)
        self._yaw = None
        if self.goal.align_yaw and self.goal.relative_to in env.objects and self.goal.lift is None:
            # the object's yaw modulo a quarter turn (box-like symmetry): the smallest turn that lines up
            z = torch.tensor([0.0, 0.0, 1.0], dtype=start.dtype, device=start.device)
            yaw = twist_angle(m[f"{self.goal.relative_to}.quat"], z)
            self._yaw = torch.remainder(yaw + math.pi / 4, math.pi / 2) - math.pi / 4
            rpy_end[:, 2] = rpy_end[:, 2] + self._yaw
        self._turns = False
        if self.goal.pull is not None:
            self.path = self._joint_path(env, start, rpy_start)
            if floating:
                self._check_workspace(env, self.path.goal, self.path.pos[..., 2].amax(dim=0))
            settle = max(1, round(self.settle_s / env.dt))
            self.steps_needed = self.path.steps + settle
            self._arm_q = None if floating else self._solve_arm(env, palm_frame)
            return
        goal = self._goal_point(env, start)
        cruise = self._cruise(env)
        if floating:
            self._check_workspace(env, goal, cruise)
        self.path = plan_palm_path(
            start,
            goal,
            cruise,
            rpy_start,
            rpy_end,
            step_length=self.goal.speed * env.dt,
            angle_step=MAX_ANGULAR_SPEED * env.dt,
            dwell_steps=round(self.dwell_s / env.dt),
        )
        settle = max(1, round(self.settle_s / env.dt))
        self.steps_needed = self.path.steps + settle
        self._arm_q = None if floating else self._solve_arm(env, palm_frame)

    def step(self, env: HandEnv) -> StepResult:
        if self.path is None:
            raise RuntimeError("MotionPlanController.step before begin(env): call begin to plan first")
        t = min(self._t, max(self.path.steps - 1, 0))
        self._t += 1
        targets = self._base.clone()
        if self._arm_q is not None:
            targets[:, : self._arm_q.shape[-1]] = self._arm_q[t]
        else:
            pos, rpy = self.path.at(t)
            targets[:, self._cols[:3]] = pos - quat_apply(quat_from_rpy(rpy), self._offset)
            targets[:, self._cols[3:]] = rpy
        return env.step_targets(targets)

    # planning ----------------------------------------------------------------------------------------
    def _goal_point(self, env: HandEnv, start: torch.Tensor) -> torch.Tensor:
        g = self.goal
        if g.lift is not None:  # from where the palm is (a grasp may have pushed it off its target)
            goal = start.clone()
            goal[:, 2] = env.metrics["palm_pos"][:, 2] + g.lift
            return goal
        offset = torch.tensor(g.offset, dtype=start.dtype, device=start.device)
        if g.relative_to is None:
            return offset.expand_as(start).clone()
        if g.relative_to not in env.objects:
            names = env.object_names
            raise PlanningError(f"motion goal relative to {g.relative_to!r}: no such object; objects: {names}")
        offset = offset.expand_as(start)
        if self._yaw is not None:  # turn the offset with the object
            c, s = torch.cos(self._yaw), torch.sin(self._yaw)
            offset = torch.stack(
                [c * offset[:, 0] - s * offset[:, 1], s * offset[:, 0] + c * offset[:, 1], offset[:, 2]], -1
            )
        return env.metrics[f"{g.relative_to}.pos"] + offset

    def _joint_path(self, env: HandEnv, start: torch.Tensor, rpy_start: torch.Tensor) -> WaypointPath:
        """The palm carried with the joint of `goal.relative_to` to `goal.pull` of its range (see MotionGoal)."""
        g = self.goal
        name = g.relative_to
        asset = env.built.assets.get(name) if name in env.objects else None
        if asset is None or not asset.articulation:
            raise PlanningError(f"a pull goal needs an articulated object; {name!r} is not one of {env.object_names}")
        joints = [j.name for j in asset.articulation]
        if g.joint is not None and g.joint not in joints:
            raise PlanningError(f"pull goal: {name!r} has no joint {g.joint!r}; joints: {joints}")
        i = joints.index(g.joint) if g.joint else 0
        art = asset.articulation[i]
        lo, hi = art.range_at(env.spec.object_spec(name).scale)
        gj = env.objects[name].get_joint(art.name)
        anchor = torch.as_tensor(gj.get_anchor_pos()).to(start).reshape(-1, 3).expand_as(start)
        axis = torch.as_tensor(gj.get_anchor_axis()).to(start).reshape(-1, 3).expand_as(start)
        q = env.metrics[f"{name}.joint_pos"][:, i]
        delta = lo + g.pull * (hi - lo) - q
        self._turns = art.kind == "revolute"
        return joint_path(
            start,
            rpy_start,
            anchor,
            axis,
            delta,
            revolute=self._turns,
            step_length=g.speed * env.dt,
            angle_step=MAX_ANGULAR_SPEED * env.dt,
        )

    def _cruise(self, env: HandEnv) -> torch.Tensor:
        """(N,) transit height of the palm: above every object not in the hand, held objects included."""
        m = env.metrics
        palm_z = m["palm_pos"][:, 2]
        tops, below = [], torch.zeros_like(palm_z)
        for name, entity in env.objects.items():
            box = torch.as_tensor(entity.get_AABB()).to(palm_z)  # (N, 2, 3) world-frame bounds
            held = m[f"{name}.grasped"]
            tops.append(torch.where(held, -torch.inf, box[:, 1, 2]))
            below = torch.where(held, torch.maximum(below, palm_z - box[:, 0, 2]), below)
        stacked = torch.stack(tops, dim=-1) if tops else palm_z[:, None][:, :0]
        return cruise_height(stacked, below, self.goal.clearance)

    def _check_workspace(self, env: HandEnv, goal: torch.Tensor, cruise: torch.Tensor) -> None:
        lo, hi = env.lower[self._cols[:3]], env.upper[self._cols[:3]]
        outside = ((goal < lo) | (goal > hi)).any(dim=-1)
        if bool(outside.any()):
            i = int(outside.nonzero()[0])
            raise PlanningError(
                f"motion goal {[round(float(v), 3) for v in goal[i]]} (env {i}) lies outside the floating wrist's "
                f"workspace x, y in [{float(lo[0])}, {float(hi[0])}], z in [{float(lo[2])}, {float(hi[2])}] m; "
                f"move the goal or its object"
            )
        if bool((cruise > hi[2]).any()):
            raise PlanningError(
                f"clearing the objects needs a palm height of {float(cruise.max()):.2f} m, above the wrist's "
                f"{float(hi[2]):.2f} m; lower `clearance` or move the tall object"
            )

    def _solve_arm(self, env: HandEnv, palm_frame: torch.Tensor) -> torch.Tensor:
        from dexforge.sim.scene import ARM_MOUNTS

        assert self.path is not None
        arm = env.built.arm
        link = arm.get_link(ARM_MOUNTS[env.spec.hand.mount]["link"])
        link_pos = torch.as_tensor(arm.get_links_pos(links_idx_local=[link.idx_local]))[:, 0].to(self._base)
        link_quat = torch.as_tensor(arm.get_links_quat(links_idx_local=[link.idx_local]))[:, 0].to(self._base)
        palm_in_link = quat_apply(quat_conj(link_quat), env.metrics["palm_pos"] - link_pos)
        turns = self.goal.euler is not None or self._turns
        rotation = quat_mul(quat_conj(palm_frame), link_quat) if turns else None
        n_arm = len(env.built.arm_joints)
        return solve_arm_path(
            arm,
            link,
            self.path,
            link_quat,
            palm_in_link,
            env.metrics["joint_pos"][:, :n_arm],
            (env.lower[:n_arm], env.upper[:n_arm]),
            tolerance=self.ik_tolerance,
            rotation=rotation,
        )


def _mount_quat(env: HandEnv) -> torch.Tensor:
    """The floating mount's hand-root rotation, wxyz: the palm link's orientation at zero wrist angles."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(H.MOUNT_ROTATION).as_quat()
    return torch.tensor([w, x, y, z], dtype=torch.float32, device=env.device)


class ScriptedController:
    """A hand synergy: the finger targets jump to the script's pose in one step and are held.

    `open_hand`: every finger joint to 0 (inside its limits); `close_hand`: a fist (CLOSE_HAND);
    `power_grasp`: sim.hand.POWER_GRASP, the grasp the demo lifts a cube with; `hold`: keep all targets.
    A fast close wraps an object before the first finger pushes it away. The wrist (or arm) and the
    joints the script does not name keep their targets. `steps_needed` = `steps` (0.8 s at dt 0.01: time
    for the thumb, the slowest, to arrive).
    """

    def __init__(self, script: Script, *, steps: int = 80):
        if script not in ("open_hand", "close_hand", "power_grasp", "hold"):
            raise ValueError(f"unknown script {script!r}; scripts: open_hand, close_hand, power_grasp, hold")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.script = script
        self.steps_needed = steps
        self._targets = torch.zeros(0)

    def pose(self) -> dict[str, float]:
        """Joint name -> target (rad) the script sets."""
        if self.script == "open_hand":
            return {j: 0.0 for f in H.FINGERS for j in H.FINGER_JOINTS[f]}
        if self.script == "close_hand":
            return {**{j: 0.0 for f in H.FINGERS for j in H.FINGER_JOINTS[f]}, **CLOSE_HAND}
        if self.script == "power_grasp":
            return dict(H.POWER_GRASP)
        return {}

    def begin(self, env: HandEnv) -> None:
        targets = env.targets.clone()
        for joint, value in self.pose().items():
            targets[:, env.joint_names.index(joint)] = value
        self._targets = torch.maximum(torch.minimum(targets, env.upper), env.lower)

    def step(self, env: HandEnv) -> StepResult:
        if self._targets.numel() == 0:
            raise RuntimeError("ScriptedController.step before begin(env)")
        return env.step_targets(self._targets)


class PolicyController:
    """A trained policy: `act(obs (N, O)) -> actions (N, A)`, applied with `env.step` (the env's action mode).

    `steps_needed` is `steps`, or the env's episode length when None.
    """

    def __init__(
        self,
        act: Callable[[torch.Tensor], torch.Tensor],
        *,
        steps: int | None = None,
        pre_step: Callable[[HandEnv], None] | None = None,
    ):
        self.act = act
        self.steps = steps
        self.steps_needed = steps or 0
        self.pre_step = pre_step  # e.g. a subtask's scripted lift test, applied as in training

    def begin(self, env: HandEnv) -> None:
        self.steps_needed = self.steps or env.episode_length

    def step(self, env: HandEnv) -> StepResult:
        with torch.no_grad():
            actions = self.act(env.observations())
        if self.pre_step is not None:
            self.pre_step(env)
        return env.step(actions)


@dataclass
class EpisodeResult:
    """What one batched episode did, per env."""

    success_any: torch.Tensor  # (N,) bool: success held after some step
    success_final: torch.Tensor  # (N,) bool: success held after the last step
    steps_to_success: torch.Tensor  # (N,) long: steps taken when success first held; -1 if never
    failed: torch.Tensor  # (N,) bool: the env's state turned non-finite (its success is false from then on)
    end_state: EnvState  # after the last step
    steps: int  # control steps taken
    trajectory: dict[str, torch.Tensor] | None = None
    """With record=True: obs (T, N, O) before each step, actions (T, N, A), targets (T, N, D) and
    success (T, N) after each step, palm_pos (T, N, 3) after each step."""

    @property
    def success_rate(self) -> float:
        return float(self.success_final.float().mean())


def run_episode(
    env: HandEnv,
    controller: Controller,
    steps: int | None = None,
    *,
    success: list[Predicate] | None = None,
    record: bool = False,
    watch: Callable[[int, StepResult], None] | None = None,
) -> EpisodeResult:
    """Run `controller` on all envs from their current state (reset or `set_state` first) for `steps`
    control steps (default: `controller.steps_needed` after `begin`).

    Success is the env's own predicates, or `success` (predicate models, as in a TaskSpec) evaluated on
    the metrics: that checks a subtask without `env.configure`, which would reset the envs. The env's
    auto-reset is switched off for the episode and restored after it, so no env restarts mid-episode
    (an env that succeeds, times out or turns non-finite keeps its state; non-finite ones are marked
    `failed`). The end states can seed the next subtask through `env.set_state(result.end_state)`.
    `watch(t, result)`, when given, sees every step's result (for logging, progress or checks).
    """
    check = _success_fn(env, success)
    saved = env.auto_reset
    env.configure(auto_reset=False, reset=False)
    try:
        controller.begin(env)
        n_steps = controller.steps_needed if steps is None else steps
        n = env.num_envs
        ever = torch.zeros(n, dtype=torch.bool, device=env.device)
        failed = torch.zeros_like(ever)
        first = torch.full((n,), -1, dtype=torch.long, device=env.device)
        now = torch.zeros_like(ever)
        rec: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "actions", "targets", "success", "palm_pos")}
        for t in range(n_steps):
            if record:
                rec["obs"].append(env.observations())
            result = controller.step(env)
            failed |= result.reset  # with auto-reset off, `reset` marks the non-finite envs
            now = (result.success if check is None else check(result.metrics)) & ~failed
            first = torch.where(now & ~ever, t + 1, first)
            ever |= now
            if watch is not None:
                watch(t, result)
            if record:
                rec["actions"].append(env.actions.clone())
                rec["targets"].append(env.targets.clone())
                rec["success"].append(now.clone())
                rec["palm_pos"].append(result.metrics["palm_pos"].clone())
    finally:
        env.configure(auto_reset=saved, reset=False)
    trajectory = {k: torch.stack(v) for k, v in rec.items()} if record and n_steps else None
    return EpisodeResult(ever, now, first, failed, env.get_state(), n_steps, trajectory)


def _success_fn(env: HandEnv, success: list[Predicate] | None) -> Callable[[Metrics], torch.Tensor] | None:
    if success is None:
        return None
    for pred in success:
        for ref in (pred.object, getattr(pred, "container", None), getattr(pred, "surface", None)):
            if ref is not None and ref not in env.objects:
                raise ValueError(f"success predicate {pred.kind!r} names {ref!r}; objects: {env.object_names}")
    fns = compile_predicates(env.spec.model_copy(update={"success": list(success)}))
    if not fns:
        return lambda m: torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    return lambda m: torch.stack([fn(m) for fn in fns], dim=-1).all(dim=-1)
