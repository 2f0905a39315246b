"""DexGen as a safety filter: any policy's actions, or coarse keypoint commands, turned into finger targets
that stay within what the data showed to be safe.

Each step, for a policy `act(obs) -> actions`: the actions give the joint targets the env would set
(`HandEnv.targets_for`); the change of the finger targets gives a keypoint-motion command through DexGen's
forward kinematics; DexGen samples a motion guided toward that command (`strength`: 0 ignores the policy,
large values follow it) and its inverse dynamics gives the finger targets, which the env executes with the
other joints as the policy (or a wrist hook) set them. `DexGenController` does this as a plan controller
(begin/step); `commands` lets a plan give keypoint offsets directly instead of a policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from dexforge.policies.dexgen.checkpoint import DexGen
from dexforge.policies.dexgen.keypoints import HandReader
from dexforge.policies.dexgen.processing import make_state
from dexforge.sim.env import HandEnv, StepResult

Act = Callable[[torch.Tensor], torch.Tensor]


class DexGenAssist:
    """Filters `act`'s actions through `bundle` on `env`; call `begin(env)` at the start of every rollout."""

    def __init__(
        self,
        bundle: DexGen,
        act: Act | None = None,
        *,
        strength: float | None = None,
        mode: int = 0,
        steps: int | None = None,
        pre_step: Callable[[HandEnv], None] | None = None,
        seed: int = 0,
    ) -> None:
        self.bundle, self.act, self.mode, self.steps, self.pre_step = bundle, act, mode, steps, pre_step
        self.strength = bundle.cfg.guidance if strength is None else strength
        self.seed = seed
        self.gen = torch.Generator().manual_seed(seed)
        self.latency_s: list[float] = []
        """Wall time of each DexGen call (sampling + inverse dynamics), for the whole batch."""
        self._history: list[torch.Tensor] = []

    def begin(self, env: HandEnv) -> None:
        if self.bundle.device != env.device:  # e.g. a GPU scene: DexGen runs where the states are
            self.bundle.to(env.device)
        if self.gen.device != env.device:
            self.gen = torch.Generator(device=env.device).manual_seed(self.seed)
        self.reader = HandReader(env)
        if self.reader.n_joints != self.bundle.cfg.n_joints:
            raise ValueError(f"DexGen model has {self.bundle.cfg.n_joints} joints, this hand {self.reader.n_joints}")
        state = self._state(env, self.reader.targets())
        self._history = [state] * self.bundle.cfg.history

    def _state(self, env: HandEnv, prev_targets: torch.Tensor) -> torch.Tensor:
        m = env.metrics
        return make_state(self.reader.keypoints(m), self.reader.joint_pos(m), prev_targets).float()

    @torch.no_grad()
    def step(self, env: HandEnv, command: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> StepResult:
        """One control step: the policy's actions (or `command`, keypoint offsets (N, motion_dim) in m) through
        DexGen. Restarted envs (after an auto-reset) get their history refilled."""
        if not self._history:
            self.begin(env)
        if self.pre_step is not None:
            self.pre_step(env)
        cols = self.reader.finger_cols
        before = env.targets[:, cols].clone()
        full = env.targets.clone()
        if self.act is not None:
            full = env.targets_for(self.act(env.observations()))
            if command is None:
                command = self.bundle.implied_motion(before, full[:, cols])
        cond = torch.cat(self._history, dim=-1)
        if mask is not None:
            mask = mask.to(cond.device)
        t0 = time.perf_counter()
        targets, _ = self.bundle.act(
            cond,
            self.mode,
            command=command,
            command_mask=mask,
            strength=self.strength if command is not None else 0.0,
            steps=self.steps,
            generator=self.gen,
        )
        self.latency_s.append(time.perf_counter() - t0)
        full[:, cols] = targets.to(full)
        result = env.step_targets(full)
        state = self._state(env, env.targets[:, cols])
        restarted = env.episode_step == 0
        self._history = [*self._history[1:], state]
        if restarted.any():
            fresh = self._state(env, env.targets[:, cols])
            for h in self._history:
                h[restarted] = fresh[restarted]
        return result


class DexGenController:
    """A plan controller (`policies.controllers.Controller`) for a `dexgen` subtask: DexGen holds and moves the
    fingers by itself (`strength` 0) or after keypoint offsets per step from `command(env, t)`."""

    def __init__(
        self,
        bundle: DexGen,
        *,
        steps: int,
        mode: int = 0,
        strength: float | None = None,
        command: Callable[[HandEnv, int], torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        self.assist = DexGenAssist(bundle, None, mode=mode, strength=strength)
        self.steps_needed, self.command, self.mask, self._t = steps, command, mask, 0

    def begin(self, env: HandEnv) -> None:
        self._t = 0
        self.assist.begin(env)

    def step(self, env: HandEnv) -> StepResult:
        cmd = self.command(env, self._t) if self.command is not None else None
        self._t += 1
        return self.assist.step(env, cmd, self.mask if cmd is not None else None)


def default_model() -> Path:
    from dexforge.home import home

    return home() / "dexgen" / "default" / "dexgen.pt"


def _bundle(use, what: str) -> DexGen:
    from dexforge.home import DexforgeError

    path = Path(use.model) if use.model else default_model()
    if not path.is_file():
        raise DexforgeError(
            f"{what} needs a trained DexGen model, and there is none at {path}; run "
            f"`dexforge dexgen collect {path.parent}` and `dexforge dexgen train {path.parent}` first"
        )
    return DexGen.load(path)


class FilteredController:
    """A plan controller for an rl subtask with a `safety_filter`: the trained policy's actions through DexGen
    (`DexGenAssist`), for the subtask's episode length; `pre_step` (e.g. its lift test) runs before each step."""

    def __init__(self, assist: DexGenAssist) -> None:
        self.assist, self.steps_needed = assist, 0

    def begin(self, env: HandEnv) -> None:
        self.steps_needed = env.episode_length
        self.assist.begin(env)

    def step(self, env: HandEnv) -> StepResult:
        return self.assist.step(env)


def filtered_controller(use, act: Act, *, pre_step: Callable[[HandEnv], None] | None = None) -> FilteredController:
    """The controller of an rl subtask whose policy runs through DexGen (`SubtaskSpec.safety_filter`)."""
    from dexforge.policies.dexgen.skills import MODES

    bundle = _bundle(use, "a safety_filter")
    return FilteredController(DexGenAssist(bundle, act, strength=use.strength, mode=MODES[use.mode], pre_step=pre_step))


def dexgen_controller(use, *, steps: int) -> DexGenController:
    """The controller of a plan's `dexgen` subtask (`policies.subtask.DexGenUse`)."""
    from dexforge.policies.dexgen.skills import MODES

    bundle = _bundle(use, "a dexgen subtask")
    command, mask = None, None
    if use.fingertip_offset is not None:
        cfg = bundle.cfg
        per_step = torch.zeros(cfg.horizon, cfg.n_keypoints, 3)
        per_step[:, :5] = torch.tensor(use.fingertip_offset)  # keypoints 0-4 are the fingertips
        per_step *= torch.arange(1, cfg.horizon + 1).float()[:, None, None]  # offsets from now, per future step
        flat = per_step.flatten()
        mask = torch.zeros(cfg.horizon, cfg.n_keypoints, 3)
        mask[:, :5] = 1.0  # only the fingertips are commanded; the middle joints follow the data
        mask = mask.flatten()

        def command(env: HandEnv, _t: int) -> torch.Tensor:
            return flat.to(env.device).expand(env.num_envs, -1)

    return DexGenController(
        bundle, steps=steps, mode=MODES[use.mode], strength=use.strength, command=command, mask=mask
    )
