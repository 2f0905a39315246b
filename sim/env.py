"""HandEnv: the batched dexterous-hand environment over a Genesis scene built from a TaskSpec.

Actions are position targets for the *active* joints (the rest are frozen: they hold the target they
had when the episode started). Every step publishes a metrics dict (documented in
`dexforge.sim.metrics`) that rewards and predicates read. Finished envs reset themselves inside
`step` (skrl's trainer never calls `reset` with several envs), so `StepResult.metrics` describes the
step that just happened while `StepResult.obs` is already the first observation of the new episode
for the envs in `StepResult.reset`. An env whose state turns non-finite is reset and counted.

Shapes: N = num_envs, A = num_actions (active joints), D = robot joints, O = observation size.
"""

from __future__ import annotations

import torch

from dexforge.sim import hand as H
from dexforge.sim.contacts import ContactReader
from dexforge.sim.env_types import EnvConfig, EnvState, Metrics, StepResult
from dexforge.sim.predicates import compile_predicates, evaluate
from dexforge.sim.rotations import quat_apply, quat_conj, quat_from_yaw, quat_mul
from dexforge.sim.scene import BuiltScene, SceneConfig, build_scene, initial_robot_qpos
from dexforge.sim.spec import TaskSpec

__all__ = ["EnvConfig", "EnvState", "HandEnv", "Metrics", "StepResult"]


class HandEnv:
    """Batched environment: `reset()`, `step(actions)`, `metrics`, `get_state()` / `set_state()`."""

    def __init__(self, spec: TaskSpec, config: EnvConfig | None = None, scene: SceneConfig | BuiltScene | None = None):
        self.spec = spec
        self.config = config or EnvConfig()
        self.built = scene if isinstance(scene, BuiltScene) else build_scene(spec, scene or SceneConfig())
        b = self.built
        self.num_envs = b.n_envs
        self.device = torch.device("cpu") if b.config.backend == "cpu" else _genesis_device()
        self.dt = spec.dt
        self.joint_names = b.robot_joints
        self.joint_groups = H.joint_groups(b.arm_joints)
        self._set_active(self.config.active)
        self.episode_length = spec.episode_length
        self.auto_reset = self.config.auto_reset
        self.action_mode = self.config.action_mode
        self.terminate_on_success = self.config.terminate_on_success
        self._n_arm = len(b.arm_joints)
        lo, hi = self._limits()
        self.lower, self.upper = lo, hi
        self._step_size = torch.tensor([self._step_of(j) for j in self.joint_names], device=self.device)
        self._flex = torch.tensor([self.joint_names.index(j) for j in H.FLEXION_JOINTS], device=self.device)
        self._flex_span = (self.upper - self.lower)[self._flex].clamp(min=1e-6)
        self._init_q = torch.as_tensor(initial_robot_qpos(b), dtype=torch.float32, device=self.device)
        self._predicates = compile_predicates(spec)
        self.success_spec = list(spec.success)
        self._rng = torch.Generator(device="cpu").manual_seed(spec.seed)
        self._start: EnvState | None = None
        self._setup_objects()
        self._contact_reader = ContactReader(self.built, list(self.objects.values()), self.device)
        n, d = self.num_envs, len(self.joint_names)
        self.targets = self._init_q.repeat(n, 1)
        self.actions = torch.zeros(n, self.num_actions, device=self.device)
        self.prev_actions = torch.zeros_like(self.actions)
        self.episode_step = torch.zeros(n, dtype=torch.long, device=self.device)
        self.nan_resets = 0
        self.nan_resets_per_env = torch.zeros(n, dtype=torch.long, device=self.device)
        self._grasp_time = {k: torch.zeros(n, device=self.device) for k in self.objects}
        self._start_pos = {k: torch.zeros(n, 3, device=self.device) for k in self.objects}
        self._start_quat = {k: torch.zeros(n, 4, device=self.device) for k in self.objects}
        reader = self._contact_reader
        self._contacts, self._forces, self._ground = reader.contacts, reader.forces, reader.ground
        self.metrics: Metrics = {}
        del d
        self.reset()

    def configure(
        self,
        *,
        active: tuple[str, ...] | list[str] | None = None,
        success: list | None = None,
        episode_length: int | None = None,
        auto_reset: bool | None = None,
        terminate_on_success: bool | None = None,
        action_mode: str | None = None,
        reset: bool = True,
    ) -> None:
        """Re-purpose the env for another subtask on the same scene: which joints the actions drive, which
        predicates count as success (sim.spec predicate models), how long an episode lasts, whether finished
        envs reset themselves. Resets all envs unless `reset=False` (chaining keeps the state)."""
        if active is not None:
            self._set_active(tuple(active))
            self.actions = torch.zeros(self.num_envs, self.num_actions, device=self.device)
            self.prev_actions = torch.zeros_like(self.actions)
        if success is not None:
            spec = self.spec.model_copy(update={"success": list(success)})
            TaskSpec.model_validate(spec.model_dump())  # names must refer to this scene's objects
            self._predicates = compile_predicates(spec)
            self.success_spec = list(success)
        if episode_length is not None:
            if episode_length < 1:
                raise ValueError(f"episode_length must be >= 1, got {episode_length}")
            self.episode_length = int(episode_length)
        if auto_reset is not None:
            self.auto_reset = auto_reset
        if terminate_on_success is not None:
            self.terminate_on_success = terminate_on_success
        if action_mode is not None:
            if action_mode not in ("delta", "absolute"):
                raise ValueError(f"action_mode must be 'delta' or 'absolute', got {action_mode!r}")
            self.action_mode = action_mode
        if reset:
            self.reset()

    # setup -------------------------------------------------------------------------------------
    def _set_active(self, names: tuple[str, ...]) -> None:
        try:
            self.active_joints = H.resolve_joints(names, self.joint_names, self.joint_groups)
        except ValueError as exc:
            raise ValueError(f"active joints: {exc}") from None
        self.active_idx = torch.tensor([self.joint_names.index(j) for j in self.active_joints], device=self.device)
        self.num_actions = len(self.active_joints)

    def _step_of(self, joint: str) -> float:
        if joint in H.WRIST_JOINTS[:3]:
            return self.config.translation_step
        if joint in H.WRIST_JOINTS[3:] or joint in self.built.arm_joints:
            return self.config.rotation_step
        return self.config.finger_step

    def _robots(self):
        return [e for e in (self.built.arm, self.built.hand) if e is not None]

    def _limits(self) -> tuple[torch.Tensor, torch.Tensor]:
        lows, highs = [], []
        for e in self._robots():
            lo, hi = e.get_dofs_limit()
            lows.append(torch.as_tensor(lo, dtype=torch.float32).reshape(-1, e.n_dofs)[0])
            highs.append(torch.as_tensor(hi, dtype=torch.float32).reshape(-1, e.n_dofs)[0])
        lo, hi = torch.cat(lows).to(self.device), torch.cat(highs).to(self.device)
        return lo.clamp(min=-10.0), hi.clamp(max=10.0)

    def _setup_objects(self) -> None:
        b = self.built
        self.objects = dict(b.objects)
        self.object_names = list(self.objects)
        self.free = {k: not e.base_link.is_fixed for k, e in self.objects.items()}
        # An object's pose is its bounding-box centre in its own frame. Genesis's body frame may differ
        # (mesh origins; URDF bodies are re-based at their centre of mass and principal axes), so the
        # centre's offset and the rotation between the object's frame and the body frame are measured
        # once on the built scene, where each object stands as its spec says; poses go through them.
        from dexforge.sim.rotations import quat_from_euler

        self._offset, self._rot = {}, {}
        for name, obj in b.spec_objects():
            e = self.objects[name]
            base_pos, base_q = self._base_pose(name, e)
            q_spec = quat_from_euler(obj.pose.euler, device=base_q.device)
            self._rot[name] = quat_mul(quat_conj(q_spec), base_q[0]).to(self.device)
            centre = e.get_AABB()[:1].mean(dim=1)
            self._offset[name] = quat_apply(quat_conj(base_q[:1]), centre - base_pos[:1])[0].to(self.device)
        identity = torch.tensor([1.0, 0.0, 0.0, 0.0], device=self.device)
        self._trivial_frame = {
            k
            for k in self.objects
            if self._offset[k].abs().max() < 1e-6 and (self._rot[k] - identity).abs().max() < 1e-6
        }
        self._joint_dofs: dict[str, list[int]] = {}
        self._joint_range: dict[str, tuple[float, float]] = {}
        for name, obj in b.spec_objects():
            asset, entity = b.assets[name], self.objects[name]
            if asset.articulation:
                self._joint_dofs[name] = [entity.get_joint(j.name).dofs_idx_local[0] for j in asset.articulation]
                self._joint_range[name] = asset.articulation[0].range_at(obj.scale)
        self._nominal: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        from dexforge.sim.rotations import quat_from_euler

        for name, obj in b.spec_objects():
            self._nominal[name] = (
                torch.tensor(obj.pose.pos, dtype=torch.float32, device=self.device),
                quat_from_euler(obj.pose.euler, device=self.device),
            )
        hand = b.hand
        self._tip_links = [hand.get_link(n).idx_local for n in H.FINGERTIP_LINKS]
        self._palm_link = hand.get_link("palm").idx_local
        self._metric_links = [*self._tip_links, self._palm_link]
        vectors = [*H.FINGERTIP_OFFSETS.tolist(), H.PALM_OFFSET.tolist(), [0.0, -1.0, 0.0]]
        self._link_vectors = torch.tensor(vectors, dtype=torch.float32, device=self.device)

    def _base_pose(self, name: str, entity) -> tuple[torch.Tensor, torch.Tensor]:
        """Body frame of an object: its free joint's pose, or the base link's pose when it is fixed."""
        if self.free[name]:
            qpos = entity.get_qpos()
            return qpos[:, :3], qpos[:, 3:7]
        return entity.get_pos(), entity.get_quat()

    def _pose(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(centre (N, 3), quat (N, 4)) of an object, in the object's own frame."""
        pos, quat = self._base_pose(name, self.objects[name])
        if name in self._trivial_frame:  # primitives: the body frame is the object's frame
            return pos, quat
        centre = pos + quat_apply(quat, self._offset[name].expand_as(pos))
        return centre, quat_mul(quat, quat_conj(self._rot[name]).expand_as(quat))

    # reading the simulator -----------------------------------------------------------------------
    def _robot_q(self) -> torch.Tensor:
        return torch.cat([e.get_dofs_position() for e in self._robots()], dim=-1)

    def _robot_v(self) -> torch.Tensor:
        return torch.cat([e.get_dofs_velocity() for e in self._robots()], dim=-1)

    def _control(self, targets: torch.Tensor) -> None:
        if self.built.arm is not None:
            self.built.arm.control_dofs_position(targets[:, : self._n_arm])
        self.built.hand.control_dofs_position(targets[:, self._n_arm :])

    def _compute_metrics(self) -> Metrics:
        hand = self.built.hand
        links_pos = hand.get_links_pos(links_idx_local=self._metric_links)  # 5 fingertip links, then the palm
        links_quat = hand.get_links_quat(links_idx_local=self._metric_links)
        palm_q = links_quat[:, 5]
        # one batched rotation: tip offsets, the palm-centre offset and the palm normal
        rotated = quat_apply(
            torch.cat([links_quat, palm_q[:, None]], 1), self._link_vectors.expand(self.num_envs, 7, 3)
        )
        tips = links_pos[:, :5] + rotated[:, :5]
        palm = links_pos[:, 5] + rotated[:, 5]
        normal = rotated[:, 6]
        palm_w = hand.get_links_ang(links_idx_local=[self._palm_link])[:, 0]
        palm_inv = quat_conj(palm_q)
        q = self._robot_q()
        m: Metrics = {
            "fingertip_pos": tips,
            "palm_pos": palm,
            "palm_quat": palm_q,
            "palm_normal": normal,
            "palm_angvel": palm_w,
            "joint_pos": q,
            "joint_vel": self._robot_v(),
            "hand_closure": ((q[:, self._flex] - self.lower[self._flex]) / self._flex_span).mean(-1),
            "targets": self.targets.clone(),
            "actions": self.actions.clone(),
            "prev_actions": self.prev_actions.clone(),
            "step": self.episode_step.clone(),
            "time": self.episode_step.float() * self.dt,
        }
        for k, (name, entity) in enumerate(self.objects.items()):
            pos, quat = self._pose(name)
            contacts = self._contacts[:, k]
            grasped = (contacts[:, 0] | contacts[:, 5]) & contacts[:, 1:5].any(dim=-1)
            m[f"{name}.pos"] = pos
            m[f"{name}.quat"] = quat
            m[f"{name}.linvel"] = entity.get_vel() if self.free[name] else torch.zeros_like(pos)
            angvel = entity.get_ang() if self.free[name] else torch.zeros_like(pos)
            m[f"{name}.angvel"] = angvel
            m[f"{name}.angvel_in_palm"] = quat_apply(palm_inv, angvel - palm_w)
            m[f"{name}.start_pos"] = self._start_pos[name]
            m[f"{name}.start_quat"] = self._start_quat[name]
            m[f"{name}.lift"] = pos[:, 2] - self._start_pos[name][:, 2]
            m[f"{name}.palm_dist"] = (pos - palm).norm(dim=-1)
            m[f"{name}.fingertip_dist"] = (tips - pos[:, None]).norm(dim=-1)
            m[f"{name}.contacts"] = contacts.clone()
            m[f"{name}.contact_force"] = self._forces[:, k].clone()
            m[f"{name}.n_contacts"] = contacts.sum(dim=-1)
            m[f"{name}.on_ground"] = self._ground[:, k].clone()
            m[f"{name}.grasped"] = grasped
            m[f"{name}.grasp_time"] = self._grasp_time[name].clone()
            if name in self._joint_dofs:
                jq = entity.get_dofs_position(dofs_idx_local=self._joint_dofs[name])
                lo, hi = self._joint_range[name]
                m[f"{name}.joint_pos"] = jq
                m[f"{name}.open_fraction"] = (jq[:, 0] - lo) / (hi - lo)
        success, parts = evaluate(self._predicates, m, self.num_envs)
        m["success"], m["success_parts"] = success, parts.to(self.device)
        return m

    # episodes --------------------------------------------------------------------------------------
    def set_start_states(self, state: EnvState | None) -> None:
        """Resets draw their start from these saved states (one per reset env, drawn at random) instead of
        the spec's initial layout. `None` returns to the spec."""
        self._start = state

    @property
    def start_states(self) -> EnvState | None:
        """The saved states resets draw from (`set_start_states`), or None for the spec's layout."""
        return self._start

    def reset(self, envs_idx: torch.Tensor | None = None) -> torch.Tensor:
        """Reset the given envs (all by default); returns the observations of all envs (N, O)."""
        idx = torch.arange(self.num_envs, device=self.device) if envs_idx is None else envs_idx.to(self.device)
        if idx.numel() == 0:
            return self.observations()
        if self._start is not None:
            pick = torch.randint(0, self._start.n, (idx.numel(),), generator=self._rng).to(self.device)
            self._apply_state(self._start.select(pick), idx)
            self.episode_step[idx] = 0
        else:
            self._reset_to_spec(idx)
        self.actions[idx] = 0.0
        self.prev_actions[idx] = 0.0
        for name in self.objects:
            self._grasp_time[name][idx] = 0.0
        self._mark_start(idx)
        self.metrics = self._compute_metrics()
        return self.observations()

    def _reset_to_spec(self, idx: torch.Tensor) -> None:
        n = idx.numel()
        q = self._init_q.repeat(n, 1)
        for e, sl in self._robot_slices():
            e.set_dofs_position(q[:, sl], envs_idx=idx, zero_velocity=True)
        self.targets[idx] = q
        for name, entity in self.objects.items():
            obj = self.spec.object_spec(name)
            pos, quat = self._nominal[name]
            pos, quat = pos.repeat(n, 1), quat.repeat(n, 1)
            if self.config.randomize and self.free[name]:
                noise = obj.randomize
                u = torch.rand(n, 3, generator=self._rng).to(self.device) * 2 - 1
                pos[:, :2] += u[:, :2] * noise.xy
                quat = quat_mul(quat_from_yaw(u[:, 2] * noise.yaw * torch.pi / 180), quat)
            if self.free[name]:
                body_q = quat_mul(quat, self._rot[name].expand_as(quat))
                base = pos - quat_apply(body_q, self._offset[name].expand_as(pos))
                quat = body_q
                entity.set_qpos(torch.cat([base, quat], dim=-1), envs_idx=idx, zero_velocity=True)
            if name in self._joint_dofs:
                init = [obj.joints.get(j.name, 0.0) for j in self.built.assets[name].articulation]
                entity.set_dofs_position(
                    torch.tensor(init, device=self.device).repeat(n, 1),
                    dofs_idx_local=self._joint_dofs[name],
                    envs_idx=idx,
                    zero_velocity=True,
                )
        self.episode_step[idx] = 0

    def _mark_start(self, idx: torch.Tensor) -> None:
        for name in self.objects:
            pos, quat = self._pose(name)
            self._start_pos[name][idx] = pos[idx]
            self._start_quat[name][idx] = quat[idx]

    def _robot_slices(self):
        out, start = [], 0
        for e in self._robots():
            out.append((e, slice(start, start + e.n_dofs)))
            start += e.n_dofs
        return out

    def step(self, actions: torch.Tensor) -> StepResult:
        """Advance every env by one control step. `actions`: (N, A) in [-1, 1]."""
        actions = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        if actions.shape != (self.num_envs, self.num_actions):
            raise ValueError(f"actions must have shape {(self.num_envs, self.num_actions)}, got {tuple(actions.shape)}")
        actions = torch.nan_to_num(actions, nan=0.0).clamp(-1.0, 1.0)
        self.prev_actions = self.actions
        self.actions = actions
        self.targets = self._targets_from(actions)
        return self._advance()

    def targets_for(self, actions: torch.Tensor) -> torch.Tensor:
        """(N, D) the joint targets `step(actions)` would set (actions clamped to [-1, 1]), without stepping."""
        actions = torch.nan_to_num(torch.as_tensor(actions, dtype=torch.float32, device=self.device), nan=0.0)
        return self._targets_from(actions.clamp(-1.0, 1.0))

    def _targets_from(self, actions: torch.Tensor) -> torch.Tensor:
        """The targets for finite actions already in [-1, 1] (step has checked and clamped them)."""
        cols = self.active_idx
        if self.action_mode == "delta":
            new = self.targets[:, cols] + actions * self._step_size[cols]
        else:
            lo, hi = self.lower[cols], self.upper[cols]
            new = lo + (actions + 1.0) * 0.5 * (hi - lo)
        targets = self.targets.clone()
        targets[:, cols] = torch.maximum(torch.minimum(new, self.upper[cols]), self.lower[cols])
        return targets

    def step_targets(self, targets: torch.Tensor) -> StepResult:
        """Advance with absolute targets for all robot joints (N, D): for planned and scripted controllers."""
        targets = torch.as_tensor(targets, dtype=torch.float32, device=self.device)
        self.prev_actions = self.actions
        self.actions = torch.zeros_like(self.actions)
        self.targets = torch.maximum(torch.minimum(targets, self.upper), self.lower).clone()
        return self._advance()

    def _advance(self) -> StepResult:
        self._control(self.targets)
        self.built.scene.step()
        self.episode_step += 1
        self._contact_reader.read()
        for k, name in enumerate(self.objects):
            held = (self._contacts[:, k, 0] | self._contacts[:, k, 5]) & self._contacts[:, k, 1:5].any(-1)
            held &= ~self._ground[:, k]
            self._grasp_time[name] = torch.where(held, self._grasp_time[name] + self.dt, 0.0)
        m = self._compute_metrics()
        bad = self._non_finite(m)
        success = m["success"] & ~bad
        terminated = success & self.terminate_on_success
        truncated = (self.episode_step >= self.episode_length) & ~terminated
        done = terminated | truncated | bad
        if bad.any():
            self.nan_resets += int(bad.sum())
            self.nan_resets_per_env += bad.long()
            m = {k: torch.nan_to_num(v.float() if v.is_floating_point() else v) for k, v in m.items()}
        self.metrics = m
        if self.auto_reset and done.any():
            obs = self._reset_keep_metrics(done.nonzero().flatten())
        else:
            obs = self.observations()
        return StepResult(obs, m, success, terminated, truncated, done if self.auto_reset else bad)

    def _reset_keep_metrics(self, idx: torch.Tensor) -> torch.Tensor:
        step_metrics = self.metrics
        obs = self.reset(idx)
        self.metrics = step_metrics
        return obs

    def _non_finite(self, m: Metrics) -> torch.Tensor:
        bad = ~torch.isfinite(m["joint_pos"]).all(-1)
        for name in self.objects:
            bad |= ~torch.isfinite(m[f"{name}.pos"]).all(-1) | (m[f"{name}.pos"].abs() > 100).any(-1)
        return bad

    # observations ----------------------------------------------------------------------------------
    def observations(self) -> torch.Tensor:
        """(N, O): normalised joint positions and velocities, palm pose, fingertips and objects relative
        to the palm, per-object contacts, episode progress and the previous actions."""
        m = self.metrics
        span = (self.upper - self.lower).clamp(min=1e-6)
        palm = m["palm_pos"]
        parts = [
            2 * (m["joint_pos"] - self.lower) / span - 1,
            0.1 * m["joint_vel"],
            palm,
            m["palm_quat"],
            (m["fingertip_pos"] - palm[:, None]).flatten(1),
        ]
        for name in self.objects:
            parts += [
                m[f"{name}.pos"] - palm,
                m[f"{name}.quat"],
                m[f"{name}.linvel"],
                m[f"{name}.contacts"].float(),
            ]
        parts += [(self.episode_step.float() / self.episode_length)[:, None], self.actions]
        return torch.cat(parts, dim=-1).nan_to_num()

    @property
    def num_obs(self) -> int:
        return self.observations().shape[-1]

    # state -----------------------------------------------------------------------------------------
    def get_state(self, envs_idx: torch.Tensor | None = None) -> EnvState:
        """The physical state and episode progress of the given envs (all by default)."""
        idx = slice(None) if envs_idx is None else envs_idx
        return EnvState(
            robot_q=self._robot_q()[idx].clone(),
            robot_v=self._robot_v()[idx].clone(),
            targets=self.targets[idx].clone(),
            objects_q={k: e.get_qpos()[idx].clone() for k, e in self.objects.items() if e.n_qs},
            objects_v={k: e.get_dofs_velocity()[idx].clone() for k, e in self.objects.items() if e.n_dofs},
            step=self.episode_step[idx].clone(),
        )

    def set_state(self, state: EnvState, envs_idx: torch.Tensor | None = None) -> None:
        """Put `state` (one row per env in `envs_idx`) back exactly; episode progress included."""
        idx = torch.arange(self.num_envs, device=self.device) if envs_idx is None else envs_idx.to(self.device)
        if state.n != idx.numel():
            raise ValueError(f"state holds {state.n} envs, {idx.numel()} were given")
        self._apply_state(state, idx)
        self.episode_step[idx] = state.step.to(self.device)
        self._contact_reader.read()
        self.metrics = self._compute_metrics()

    def _apply_state(self, state: EnvState, idx: torch.Tensor) -> None:
        for e, sl in self._robot_slices():
            e.set_dofs_position(state.robot_q[:, sl], envs_idx=idx)
            e.set_dofs_velocity(state.robot_v[:, sl], envs_idx=idx)
        self.targets[idx] = state.targets.to(self.device)
        for name, entity in self.objects.items():
            if name in state.objects_q:
                entity.set_qpos(state.objects_q[name], envs_idx=idx, zero_velocity=False)
            if name in state.objects_v:
                entity.set_dofs_velocity(state.objects_v[name], envs_idx=idx)

    def close(self) -> None:
        self.built.scene.destroy() if hasattr(self.built.scene, "destroy") else None


def _genesis_device() -> torch.device:
    from dexforge.sim.genesis_init import torch_device

    return torch_device()
