"""Training jobs the agent runs in worker subprocesses (see dexforge.jobs): one subtask at a time, so
that a retry or a resumed run redoes nothing that finished, then the chained collection.

Each subtask's job starts from the end states the previous subtask's job saved (`end_states.pt`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dexforge.policies.segments import evaluate_chain, make_controller, run_segment, segment
from dexforge.policies.subtask import Plan
from dexforge.policies.train import train_subtask_ends
from dexforge.sim.env import EnvConfig, EnvState, HandEnv
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import TaskSpec, load_yaml


def _load(spec_yaml: str, plan_yaml: str) -> tuple[TaskSpec, Plan]:
    spec = TaskSpec.from_yaml(spec_yaml)
    plan = Plan.model_validate(load_yaml(plan_yaml))
    plan.check_against(spec)
    return spec, plan


def train_subtask_job(
    spec_yaml: str,
    plan_yaml: str,
    index: int,
    out_dir: str,
    start_states: str | None = None,
    n_envs: int = 32,
    eval_episodes: int = 64,
    backend: str = "cpu",
    init_checkpoint: str | None = None,
    warm_candidates: list[str] | None = None,
    attempt: int = 0,
) -> dict:
    """Train (rl) or measure (planned, scripted) subtask `index` of the plan from `start_states` (a saved
    EnvState) or the task's layout. Writes into `out_dir`: reward.py, stats.jsonl, checkpoints,
    `end_states.pt` with the end states of its successful evaluation episodes, and `end_metrics.pt` with the
    metrics dict there (of every env's last evaluated step when none succeeded; for dry-running the next
    subtask's reward; its path is the result's "end_metrics"). `init_checkpoint`: a policy
    of the same subtask to start rl training from (a retry continues where the last attempt got);
    without one, the first fitting policy of `warm_candidates` (similar subtasks from the experience store)."""
    from dexforge.jobs import emit_progress

    spec, plan = _load(spec_yaml, plan_yaml)
    sub = plan.subtasks[index]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sub.controller == "rl":  # the env groups' workers import Genesis while this process builds its env
        from dexforge.policies.envgroups import prestart, sim_workers

        prestart(sim_workers(n_envs, backend, sub.budget.env_steps))
    env = HandEnv(spec, EnvConfig(auto_reset=False), SceneConfig(n_envs=n_envs, backend=backend))
    if sub.start == "previous" and start_states:
        env.set_start_states(EnvState.load(Path(start_states)))
    outcome, end, end_metrics = train_subtask_ends(
        env,
        sub,
        out,
        eval_episodes=eval_episodes,
        progress=lambda p: emit_progress(**p),
        own_dir=True,
        init=Path(init_checkpoint) if init_checkpoint else None,
        candidates=warm_candidates or (),
        attempt=attempt,
    )
    result = json.loads(json.dumps(outcome.__dict__, default=str))
    result["history"] = []  # stats.jsonl holds it; keep the job result small
    result["end_states"] = str(end.save(out / "end_states.pt")) if end is not None else None
    if end_metrics is not None:
        torch.save(end_metrics, out / "end_metrics.pt")
    result["end_metrics"] = str(out / "end_metrics.pt") if end_metrics is not None else None
    (out / "outcome.json").write_text(json.dumps(result, indent=2))
    return result


def _policies(env: HandEnv, plan: Plan, checkpoints: dict[str, str]) -> dict:
    from dexforge.policies.policy_files import load_policy

    policies = {}
    for sub in plan.subtasks:
        if sub.controller == "rl":
            if sub.name not in checkpoints:
                raise ValueError(f"subtask '{sub.name}' is rl but has no checkpoint")
            segment(env, sub, reset=False)
            policies[sub.name] = load_policy(env, Path(checkpoints[sub.name]))  # in its measured mode
    return policies


class _Filming:
    """A controller that films env 0 every `every` steps while the wrapped one acts."""

    def __init__(self, inner, camera, frames: list, every: int = 2):
        self.inner, self.camera, self.frames, self.every, self.t = inner, camera, frames, every, 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def begin(self, env) -> None:
        self.inner.begin(env)

    def step(self, env):
        from dexforge.sim.render import _frame

        result = self.inner.step(env)
        self.t += 1
        if self.t % self.every == 0:
            self.frames.append(_frame(self.camera))
        return result


def record_chain(spec: TaskSpec, plan: Plan, checkpoints: dict[str, str], out_path: Path, backend: str) -> Path:
    """A video of one chained episode (env 0) from the task's layout through every subtask."""
    import imageio.v2 as imageio

    from dexforge.sim.render import _frame, _sync

    env = HandEnv(
        spec, EnvConfig(auto_reset=False, randomize=False), SceneConfig(n_envs=1, cameras=True, backend=backend)
    )
    policies = _policies(env, plan, checkpoints)
    env.set_start_states(None)
    env.configure(success=[], auto_reset=False)
    camera = env.built.cameras["oblique"] if "oblique" in env.built.cameras else next(iter(env.built.cameras.values()))
    _sync(env)
    frames = [_frame(camera)]
    with torch.no_grad():
        for sub in plan.subtasks:
            segment(env, sub, reset=False)
            run_segment(env, _Filming(make_controller(sub, policies.get(sub.name)), camera, frames), sub)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(out_path, frames, fps=max(1, round(1.0 / (env.dt * 2))), macro_block_size=1)
    return out_path


def collect_job(
    spec_yaml: str,
    plan_yaml: str,
    out_dir: str,
    checkpoints: dict[str, str],
    n_envs: int = 32,
    eval_episodes: int = 64,
    video: bool = True,
    backend: str = "cpu",
) -> dict:
    """Whole-task success through every subtask from the initial layout; the successful episodes go to
    `out_dir/dataset.hdf5`, and with `video` one chained episode to `out_dir/rollout.mp4`."""
    from dexforge.jobs import emit_progress

    spec, plan = _load(spec_yaml, plan_yaml)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = HandEnv(spec, EnvConfig(auto_reset=False), SceneConfig(n_envs=n_envs, backend=backend))
    policies = _policies(env, plan, checkpoints)
    emit_progress(event="collect", episodes=eval_episodes)
    with torch.no_grad():
        chain = evaluate_chain(env, spec, plan, policies, eval_episodes, out / "dataset.hdf5")
    result = {
        "task_success_rate": chain.success_rate,
        "episodes": chain.episodes,
        "dataset": str(chain.dataset) if chain.dataset else None,
        "kept_after": chain.kept_after,
    }
    result["video"] = str(record_chain(spec, plan, checkpoints, out / "rollout.mp4", backend)) if video else None
    (out / "outcome.json").write_text(json.dumps(result, indent=2))
    return result
