"""Running plan segments: the controller of a subtask, one segment on every env, the successes of a trained
policy, and the whole task chained from the initial layout through every subtask (saving the successful
episodes). Training (`policies.train`), the worker jobs, probes and env-group workers all run segments so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dexforge.policies.subtask import Plan, SubtaskSpec
from dexforge.sim.env import HandEnv
from dexforge.sim.predicates import compile_predicates, evaluate
from dexforge.sim.spec import TaskSpec


@dataclass
class ChainResult:
    """Whole-task success over chained episodes from the initial layout, and where the chain lost them."""

    success_rate: float
    episodes: int
    dataset: Path | None
    kept_after: dict[str, float]


def make_controller(sub: SubtaskSpec, act=None):
    from dexforge.policies.controllers import MotionPlanController, PolicyController, ScriptedController

    if sub.controller == "motion_plan":
        return MotionPlanController(sub.goal)
    if sub.controller == "scripted":
        return ScriptedController(sub.script)
    if sub.controller == "dexgen":
        from dexforge.policies.dexgen.assist import dexgen_controller
        from dexforge.policies.subtask import DexGenUse

        return dexgen_controller(sub.dexgen or DexGenUse(), steps=sub.episode_length)
    if act is None:
        raise ValueError(f"subtask '{sub.name}' is rl: it needs a trained policy")
    if sub.safety_filter is not None:
        from dexforge.policies.dexgen.assist import filtered_controller

        return filtered_controller(sub.safety_filter, act, pre_step=lift_test_hook(sub))
    return PolicyController(act, pre_step=lift_test_hook(sub))


def lift_test_hook(sub: SubtaskSpec) -> LiftTest | None:
    """The scripted lift test of an rl subtask (None without one); see LiftTest."""
    if not sub.lift_test:
        return None
    return LiftTest(sub.name, sub.lift_test, sub.lift_test_steps, sub.lift_test_hold, sub.lift_test_shift)


@dataclass(frozen=True)
class LiftTest:
    """A pre-step hook: the palm's height target rises `height` over `steps` steps that end `hold` steps
    before the episode does, then stays up; with a `shift`, the palm then moves that far sideways (world x,
    y) over the next `steps` steps, as a carry to a container will. A plain object, so that env groups in
    worker processes get it."""

    subtask: str
    height: float
    steps: int
    hold: int
    shift: tuple[float, float] | None = None

    def __call__(self, env: HandEnv) -> None:
        if "wrist_z" not in env.joint_names:
            raise ValueError(f"subtask '{self.subtask}': a lift test needs the floating wrist (wrist_z)")
        if "wrist_z" in env.active_joints:
            raise ValueError(f"subtask '{self.subtask}': a lift test needs the wrist frozen, but wrist_z is active")
        end = env.episode_length - self.hold
        rising = (env.episode_step >= end - self.steps) & (env.episode_step < end)
        col = env.joint_names.index("wrist_z")
        env.targets[rising, col] = env.targets[rising, col] + self.height / self.steps
        if not self.shift:
            return
        moving = (env.episode_step >= end) & (env.episode_step < end + self.steps)
        for joint, dist in zip(("wrist_x", "wrist_y"), self.shift, strict=True):
            if joint in env.active_joints:
                raise ValueError(f"subtask '{self.subtask}': a lift test's shift needs {joint} frozen; it is active")
            col = env.joint_names.index(joint)
            env.targets[moving, col] = env.targets[moving, col] + dist / self.steps


def policy_successes(env: HandEnv, sub: SubtaskSpec, checkpoint: Path, deterministic: bool) -> torch.Tensor:
    """(N,) bool: which of one batch of `sub`'s episodes from the env's start states the policy at
    `checkpoint` (sampled or mean actions) brought to success."""
    from dexforge.policies.policy_files import load_policy

    segment(env, sub, reset=True)
    act = load_policy(env, checkpoint, deterministic=deterministic)
    segment(env, sub, reset=True)
    with torch.no_grad():
        ok, _ = run_segment(env, make_controller(sub, act), sub)
    return ok


def segment(env: HandEnv, sub: SubtaskSpec, *, reset: bool) -> None:
    """Configure `env` for subtask `sub` (its joints, success, episode length, action mode; no auto-reset),
    resetting it to its start states with `reset`."""
    env.configure(
        active=sub.active,
        success=sub.success,
        episode_length=sub.episode_length,
        auto_reset=False,
        action_mode=sub.action_mode,
        reset=reset,
    )


def run_segment(env: HandEnv, controller, sub: SubtaskSpec, record: bool = False):
    """Run one segment on every env from the current state; returns (final success (N,), frames).
    Planned and scripted segments last as long as their plan (known after `begin`), rl ones an episode."""
    env.episode_step.zero_()
    controller.begin(env)
    if sub.controller == "rl":
        steps = env.episode_length = sub.episode_length  # as in training (the lift test counts from its end)
    else:
        steps = max(1, controller.steps_needed)
        env.episode_length = max(env.episode_length, steps + 1)
    frames: list[dict] = []
    result = None
    for _ in range(steps):
        before = env.targets.clone() if record else None
        result = controller.step(env)
        if record:
            frames.append(_frame(env, result, before))
    success = result.success.clone() if result is not None else torch.zeros(env.num_envs, dtype=torch.bool)
    return success, frames


def _frame(env: HandEnv, result, _before) -> dict:
    m = result.metrics
    obs = {k: m[k].reshape(env.num_envs, -1).clone() for k in ("joint_pos", "joint_vel", "palm_pos", "palm_quat")}
    obs["fingertip_pos"] = m["fingertip_pos"].reshape(env.num_envs, -1).clone()
    for name in env.objects:
        for key in ("pos", "quat", "linvel"):
            obs[f"{name}.{key}"] = m[f"{name}.{key}"].clone()
        obs[f"{name}.contacts"] = m[f"{name}.contacts"].float()
    state = env.get_state()
    flat = torch.cat([state.robot_q, *state.objects_q.values()], dim=-1)
    return {"obs": obs, "actions": env.targets.clone(), "states": flat}


def evaluate_chain(
    env: HandEnv, spec: TaskSpec, plan: Plan, policies: dict, episodes: int, dataset: Path | None
) -> ChainResult:
    """Whole-task success from the initial layout through every subtask; successful episodes are saved.
    `kept_after` counts, after each subtask, the episodes whose every subtask so far met its success: the grasp's
    own rate against what the carry after it kept shows whether the hold survives the carry."""
    from dexforge.policies.dataset import TrajectoryWriter

    task_preds = compile_predicates(spec)
    writer = TrajectoryWriter(dataset, task_spec_yaml=spec.to_yaml(), plan_yaml=plan.to_yaml()) if dataset else None
    done, wins = 0, 0
    kept = dict.fromkeys((s.name for s in plan.subtasks), 0)
    try:
        while done < episodes:
            env.set_start_states(None)
            env.configure(success=[], auto_reset=False)  # reset to the task's layout
            alive = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
            frames: list[dict] = []
            ends: list[int] = []
            for sub in plan.subtasks:
                segment(env, sub, reset=False)
                controller = make_controller(sub, policies.get(sub.name))
                ok, seg = run_segment(env, controller, sub, record=writer is not None)
                frames += seg
                ends.append(len(frames))
                alive &= ok
                kept[sub.name] += int(alive.sum())
            final, _ = evaluate(task_preds, env.metrics, env.num_envs) if task_preds else (alive, None)
            won = alive & final
            wins += int(won.sum())
            done += env.num_envs
            if writer is not None and frames:
                _write_successes(writer, frames, won, ends)
    finally:
        if writer is not None:
            writer.close()
    share = {name: round(n / max(done, 1), 4) for name, n in kept.items()}
    return ChainResult(wins / max(done, 1), done, dataset if writer is not None else None, share)


def _write_successes(writer, frames: list[dict], won: torch.Tensor, ends: list[int]) -> None:
    for i in won.nonzero().flatten().tolist():
        obs = {k: np.stack([f["obs"][k][i].cpu().numpy() for f in frames]) for k in frames[0]["obs"]}
        actions = np.stack([f["actions"][i].cpu().numpy() for f in frames])
        states = np.stack([f["states"][i].cpu().numpy() for f in frames])
        writer.add_episode(obs, actions, states=states, success=True, subtask_ends=ends)
