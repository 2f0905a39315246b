"""`MotionPlanController`: the palm along a planned path to a `MotionGoal` (see `dexforge.policies.motion`),
on a floating mount by the wrist joints' targets and on an arm by IK; the hand's own joints hold. One of the
controllers of `dexforge.policies.controllers`, which `run_episode` measures.

Shapes: N = num_envs, D = robot joints, T = steps.
"""

from __future__ import annotations

import math

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
from dexforge.sim.env import HandEnv, StepResult
from dexforge.sim.rotations import quat_apply, quat_conj, quat_mul, twist_angle

# m past the carried object's half-diagonal within which its centre counts as in the hand (a Shadow hand's palm
# centre to a fingertip is about 0.1 m; a held 8 cm apple's centre lies 6 cm from the palm's, one a failed grasp
# left on the table 16 cm)
HAND_REACH = 0.05


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
        for name in (g.relative_to, g.carried):
            if name is not None and name not in env.objects:
                raise PlanningError(f"motion goal: no object {name!r}; objects: {env.object_names}")
        if g.relative_to is None:
            point = offset.expand_as(start).clone()
        else:
            offset = offset.expand_as(start)
            if self._yaw is not None:  # turn the offset with the object
                c, s = torch.cos(self._yaw), torch.sin(self._yaw)
                offset = torch.stack(
                    [c * offset[:, 0] - s * offset[:, 1], s * offset[:, 0] + c * offset[:, 1], offset[:, 2]], -1
                )
            point = env.metrics[f"{g.relative_to}.pos"] + offset
        if g.carried is None:
            return point
        # the object's centre to `point`: the palm keeps the hold's offset, as measured now. Where the object is
        # out of the hand's reach (a grasp that failed earlier in a chain left it on the table), the palm itself
        # goes to `point`: the offset to an object lying elsewhere would send it off the table, stretch every
        # env's shared legs and can leave the workspace. Reach, not the contacts: after a reset from saved
        # states the contacts are those of the last physics step, not of the restored state.
        hold = env.metrics[f"{g.carried}.pos"] - env.metrics["palm_pos"]
        box = torch.as_tensor(env.objects[g.carried].get_AABB()).to(hold)  # (N, 2, 3)
        in_hand = hold.norm(dim=-1) < (box[:, 1] - box[:, 0]).norm(dim=-1) / 2 + HAND_REACH
        return point - torch.where(in_hand[:, None], hold, torch.zeros_like(hold))

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
