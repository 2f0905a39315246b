"""Controllers that drive a HandEnv through one subtask, and `run_episode` that measures them.

A controller plans for all envs at once in `begin(env)` (from the env's current state and metrics:
after a reset, or after `set_state` with the previous subtask's end states) and then advances every
env one control step per `step(env)`. `steps_needed` is the length of its planned schedule, so a
runner can size the episode.

- `MotionPlanController` (in `dexforge.policies.motion_controller`): the palm along a rise-transit-descend
  path (see `dexforge.policies.motion`) to a `MotionGoal`; the hand's own joints hold their targets.
- `ScriptedController`: a hand synergy (open, close, power grasp, hold); the wrist holds its targets.
- `PolicyController`: a trained policy, observations in, actions out.

Shapes: N = num_envs, D = robot joints, A = active joints, O = observation size, T = steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch

from dexforge.policies.motion import PlanningError
from dexforge.policies.motion_controller import MotionPlanController
from dexforge.sim import hand as H
from dexforge.sim.env import EnvState, HandEnv, Metrics, StepResult
from dexforge.sim.predicates import compile_predicates
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
