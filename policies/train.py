"""Plans into trained controllers, measured success and a dataset.

`train_plan` runs a plan's subtasks in order on one batched scene. Each subtask starts from the task's
layout or from the end states of the previous subtask's successful episodes; motion-planned and
scripted subtasks need no training, RL subtasks get their reward program checked in the sandbox and
dry-run on a real metrics batch, then PPO trains the active joints only. Each subtask's success rate
is measured from its start states. `evaluate_chain` (policies.segments) then measures the whole task
from the initial layout through every subtask (chained, no resets in between) and saves the successful
episodes.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dexforge.policies.segments import (
    evaluate_chain,
    lift_test_hook,
    make_controller,
    policy_successes,
    run_segment,
    segment,
)
from dexforge.policies.subtask import Plan, SubtaskSpec
from dexforge.sim.env import EnvConfig, EnvState, HandEnv
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import TaskSpec

Progress = Callable[[dict], None]


@dataclass
class SubtaskOutcome:
    name: str
    controller: str
    success_rate: float
    episodes: int
    env_steps: int = 0
    wall_s: float = 0.0
    stop_reason: str = ""
    reward_source: str | None = None
    reward_stats: dict | None = None
    checkpoint: str | None = None
    error: str | None = None
    obs_size: int | None = None
    act_size: int | None = None
    warm_start: str | None = None
    """The checkpoint rl training started from (a retry's last attempt, or a stored similar policy)."""
    warm_start_skipped: list[str] = field(default_factory=list)
    """Candidate checkpoints that did not fit, each with why."""
    env_groups: int = 1
    """rl: processes that stepped the training envs side by side (policies.envgroups)."""
    deterministic: bool | None = None
    """rl: whether the policy acts with its mean action (else samples, as in training); measured."""
    selection: dict[str, float] = field(default_factory=dict)
    """rl: success over one batch of episodes per checkpoint and action mode, from which it was chosen."""
    history: list[dict] = field(default_factory=list)


@dataclass
class PlanOutcome:
    task: str
    subtasks: list[SubtaskOutcome]
    task_success_rate: float | None = None
    env_steps: int = 0
    wall_s: float = 0.0
    dataset: str | None = None
    episodes: int = 0
    kept_after: dict[str, float] = field(default_factory=dict)
    """Share of the chained episodes still succeeding after each subtask, in plan order (where a chain drops)."""

    def to_json(self) -> dict:
        return asdict(self)


ATTEMPT_SEED_STRIDE = 1000
NO_LEARNING_SHARE = 0.5
"""An rl subtask stops (`no_learning`) after half its budget when success has not held at a single step:
the retry that follows starts afresh with another seed, sooner (the bottle's grasp, seed 0: 0% through 600k
steps, not one step of success by 300k; a retry with success at 6% of its steps and no episode yet
ending in it by then was rising). See `dexforge.policies.ppo.no_learning`."""


def rl_seed(spec_seed: int, attempt: int) -> int:
    """RL's seed for an attempt at a subtask: a retry explores with other samples (and, when it starts
    afresh, other initial networks) than the attempt before it, whose seed led it where it failed; only
    its reward would differ otherwise. The first attempt keeps the spec's seed."""
    return spec_seed + ATTEMPT_SEED_STRIDE * attempt


def _took(sub: SubtaskSpec, what: str, since: float) -> None:
    """One line in the job's log: how long a phase of a subtask's training took."""
    print(f"{sub.name}: {what} took {time.time() - since:.1f} s", flush=True)


def _select_policy(env: HandEnv, sub: SubtaskSpec, trained, groups=None) -> tuple[Path, bool, dict[str, float]]:
    """The checkpoint (best seen in training, last) and action mode (sampled, mean) that succeed most
    over one batch of episodes from the start states; the choice is saved with the checkpoint, and the
    reported evaluation runs on fresh episodes after it. Training's own success rate is over sampled
    actions, and the mean action of a Gaussian policy can do better or worse than its samples.
    `groups` (the training's EnvGroups, still open): their workers run the episodes side by side, a batch each."""
    from dexforge.policies.policy_files import save_action_mode

    paths = list(dict.fromkeys(p for p in (trained.best_checkpoint, trained.checkpoint) if p is not None))
    rates: dict[str, float] = {}
    best: tuple[float, Path, bool] | None = None
    for path in paths:
        for deterministic in (False, True):
            if groups is not None:
                wins, episodes = groups.evaluate(sub, Path(path), deterministic)
                rate = wins / max(episodes, 1)
            else:
                rate = float(policy_successes(env, sub, Path(path), deterministic).float().mean())
            rates[f"{Path(path).name}:{'mean' if deterministic else 'sampled'}"] = round(rate, 4)
            if best is None or rate > best[0]:
                best = (rate, Path(path), deterministic)
    _, chosen, deterministic = best
    save_action_mode(chosen, deterministic, rates)
    return chosen, deterministic, rates


def reward_program(sub: SubtaskSpec) -> str:
    if sub.reward:
        return sub.reward
    from dexforge.policies.rewards.templates import render

    return render(sub.reward_template, **sub.reward_params)


def train_subtask(
    env: HandEnv,
    sub: SubtaskSpec,
    run_dir: Path,
    *,
    eval_episodes: int,
    progress: Progress | None = None,
    own_dir: bool = False,
    init: Path | None = None,
    candidates: Sequence[str | Path] = (),
    attempt: int = 0,
) -> tuple[SubtaskOutcome, EnvState | None]:
    """Train (if rl) and measure one subtask from the env's start states; returns the outcome and the
    end states of its successful episodes. Files go to `run_dir/<subtask>/` (`run_dir` with `own_dir`).
    `init`: a checkpoint of the same subtask (same joints) that rl training starts from. Without one,
    training starts from the first of `candidates` (policies of similar subtasks, best first) whose
    observation and action sizes and networks fit, else from scratch."""
    outcome, end, _ = train_subtask_ends(
        env,
        sub,
        run_dir,
        eval_episodes=eval_episodes,
        progress=progress,
        own_dir=own_dir,
        init=init,
        candidates=candidates,
        attempt=attempt,
    )
    return outcome, end


def train_subtask_ends(
    env: HandEnv,
    sub: SubtaskSpec,
    run_dir: Path,
    *,
    eval_episodes: int,
    progress: Progress | None = None,
    own_dir: bool = False,
    init: Path | None = None,
    candidates: Sequence[str | Path] = (),
    attempt: int = 0,
) -> tuple[SubtaskOutcome, EnvState | None, dict[str, torch.Tensor] | None]:
    """`train_subtask`, and also the metrics dict (CPU tensors, one row per end state) at the end of the
    successful evaluation episodes, or at the last evaluated step of every env when none succeeded; None
    when nothing was evaluated. The next subtask's reward programs can be dry-run on it."""
    t0 = time.time()
    outcome = SubtaskOutcome(name=sub.name, controller=sub.controller, success_rate=0.0, episodes=0)
    act = None
    if sub.controller == "rl":
        from dexforge.policies.envgroups import EnvGroups, sim_workers
        from dexforge.policies.overlap import overlap_setting
        from dexforge.policies.policy_files import checkpoint_misfit, load_policy
        from dexforge.policies.ppo import PPOConfig, train_ppo
        from dexforge.policies.rewards.sandbox import compile_reward, dry_run

        source = reward_program(sub)
        outcome.reward_source = source
        segment(env, sub, reset=True)
        cfg = PPOConfig(
            rollouts=16,
            seed=rl_seed(env.spec.seed, attempt),
            no_learning_share=NO_LEARNING_SHARE,
            overlap=overlap_setting(),
        )
        outcome.obs_size, outcome.act_size = env.num_obs, env.num_actions
        if init is None:
            for candidate in candidates:
                why = checkpoint_misfit(Path(candidate), env.num_obs, env.num_actions, cfg)
                if why is None:
                    init = Path(candidate)
                    break
                outcome.warm_start_skipped.append(f"{candidate}: {why}")
        outcome.warm_start = str(init) if init is not None else None
        report = dry_run(source, {k: v.clone() for k, v in env.metrics.items()})
        outcome.reward_stats = report.model_dump() if hasattr(report, "model_dump") else None
        reward_fn = compile_reward(source)
        env.configure(auto_reset=True)
        sub_dir = Path(run_dir) if own_dir else Path(run_dir) / sub.name
        (sub_dir).mkdir(parents=True, exist_ok=True)
        (sub_dir / "reward.py").write_text(source)

        def report_progress(stats: dict) -> None:
            if progress is not None:
                progress({"subtask": sub.name, **stats})

        groups = sim_workers(env.num_envs, env.built.config.backend, sub.budget.env_steps)
        with contextlib.ExitStack() as stack:
            stepper = None
            if groups > 1:  # one copy of the env per core, stepped side by side
                t = time.time()
                stepper = stack.enter_context(EnvGroups(env, source, lift_test_hook(sub), groups))
                _took(sub, f"starting {groups} env groups", t)
            t = time.time()
            trained = train_ppo(
                env,
                reward_fn,
                sub_dir,
                cfg=cfg,
                target_success=sub.target_success,
                max_env_steps=sub.budget.env_steps,
                max_wall_s=sub.budget.wall_time_s,
                progress=report_progress,
                pre_step=lift_test_hook(sub),
                init=init,
                stepper=stepper,
            )
            _took(sub, f"training ({trained.env_steps} env steps)", t)
            t = time.time()
            chosen, deterministic, outcome.selection = _select_policy(env, sub, trained, stepper)
            _took(sub, f"choosing among {len(outcome.selection)} policies", t)
            t = time.time()
        if groups > 1:
            _took(sub, "stopping the env groups", t)
        outcome.env_groups = groups
        outcome.env_steps, outcome.stop_reason = trained.env_steps, trained.stop_reason
        outcome.history = trained.history
        outcome.checkpoint, outcome.deterministic = str(chosen), deterministic
        act = load_policy(env, chosen, deterministic=deterministic)
    controller = make_controller(sub, act)
    t_eval = time.time()
    successes: list[EnvState] = []
    success_metrics: list[dict[str, torch.Tensor]] = []
    last_metrics: dict[str, torch.Tensor] | None = None
    episodes = 0
    n_success = 0
    while episodes < eval_episodes:
        segment(env, sub, reset=True)
        ok, _ = run_segment(env, controller, sub)
        episodes += env.num_envs
        n_success += int(ok.sum())
        last_metrics = env.metrics
        if ok.any():
            idx = ok.nonzero().flatten()
            successes.append(env.get_state(idx))
            success_metrics.append({k: v[idx].detach().cpu() for k, v in env.metrics.items()})
    outcome.episodes = episodes
    outcome.success_rate = n_success / max(episodes, 1)
    _took(sub, f"evaluating {episodes} episodes", t_eval)
    outcome.wall_s = time.time() - t0
    if success_metrics:
        end_metrics = {k: torch.cat([b[k] for b in success_metrics]) for k in success_metrics[0]}
    elif last_metrics is not None:
        end_metrics = {k: v.detach().cpu().clone() for k, v in last_metrics.items()}
    else:
        end_metrics = None
    if not successes:
        return outcome, None, end_metrics
    merged = EnvState(
        robot_q=torch.cat([s.robot_q for s in successes]),
        robot_v=torch.cat([s.robot_v for s in successes]),
        targets=torch.cat([s.targets for s in successes]),
        objects_q={k: torch.cat([s.objects_q[k] for s in successes]) for k in successes[0].objects_q},
        objects_v={k: torch.cat([s.objects_v[k] for s in successes]) for k in successes[0].objects_v},
        step=torch.zeros(sum(s.n for s in successes), dtype=torch.long),
    )
    return outcome, merged, end_metrics


def train_plan(
    spec: TaskSpec,
    plan: Plan,
    run_dir: Path,
    *,
    n_envs: int = 32,
    eval_episodes: int = 64,
    backend: str = "cpu",
    progress: Progress | None = None,
    dataset: Path | None = None,
) -> PlanOutcome:
    """Train every subtask in order, then measure the whole task and write the dataset."""
    plan.check_against(spec)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    env = HandEnv(spec, EnvConfig(auto_reset=False), SceneConfig(n_envs=n_envs, backend=backend))
    outcomes: list[SubtaskOutcome] = []
    policies: dict[str, object] = {}
    start: EnvState | None = None
    for sub in plan.subtasks:
        env.set_start_states(None if sub.start == "initial" or start is None else start)
        if progress is not None:
            progress({"subtask": sub.name, "event": "start", "controller": sub.controller})
        outcome, start = train_subtask(env, sub, run_dir, eval_episodes=eval_episodes, progress=progress)
        outcomes.append(outcome)
        if outcome.checkpoint:
            from dexforge.policies.policy_files import load_policy

            segment(env, sub, reset=False)
            policies[sub.name] = load_policy(env, Path(outcome.checkpoint))  # in its measured mode
        if progress is not None:
            progress({"subtask": sub.name, "event": "done", "success_rate": outcome.success_rate})
        if start is None:
            break
    env.set_start_states(None)
    result = PlanOutcome(task=spec.name, subtasks=outcomes, env_steps=sum(o.env_steps for o in outcomes))
    if len(outcomes) == len(plan.subtasks) and start is not None:
        chain = evaluate_chain(env, spec, plan, policies, eval_episodes, dataset or run_dir / "dataset.hdf5")
        result.task_success_rate, result.episodes = chain.success_rate, chain.episodes
        result.kept_after, result.dataset = chain.kept_after, str(chain.dataset) if chain.dataset else None
    else:
        result.task_success_rate = 0.0
    result.wall_s = time.time() - t0
    (run_dir / "outcome.json").write_text(json.dumps(result.to_json(), indent=2, default=str))
    return result


# worker jobs ----------------------------------------------------------------------------------------
def run_plan_job(spec_yaml: str, plan_yaml: str, run_dir: str, n_envs: int = 32, eval_episodes: int = 64) -> dict:
    from dexforge.jobs import emit_progress
    from dexforge.sim.spec import load_yaml

    spec = TaskSpec.from_yaml(spec_yaml)
    plan = Plan.model_validate(load_yaml(plan_yaml))
    outcome = train_plan(
        spec, plan, Path(run_dir), n_envs=n_envs, eval_episodes=eval_episodes, progress=lambda p: emit_progress(**p)
    )
    return json.loads(json.dumps(outcome.to_json(), default=str))
