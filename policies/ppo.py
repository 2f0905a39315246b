"""PPO with skrl 2.x on HandEnv: models, training with early stopping, checkpoints and resume (the skrl
environment wrapper and its per-component reward statistics: `policies.skrl_env`; the overlapped update:
`policies.overlap`; loading and evaluating a saved policy: `policies.policy_files`).

The training loop is skrl's sequential loop (pre_interaction, act, step, record_transition,
post_interaction) written out so that it can stop early, report progress and keep statistics.
One iteration is `rollouts` steps of every env followed by a PPO update.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from dexforge.policies.overlap import Overlapped, act_and_record
from dexforge.policies.skrl_env import RewardFn, SkrlHandEnv
from dexforge.sim.env import HandEnv


@dataclass(frozen=True)
class PPOConfig:
    """PPO settings; saved as JSON beside every checkpoint."""

    rollouts: int = 16
    """Steps per env between updates."""
    learning_epochs: int = 5
    """Passes over each rollout batch."""
    mini_batches: int | None = None
    """Mini-batches per pass; None: 2 when a rollout batch holds 1024+ samples (64 envs x 16 steps: half the
    update cost of 4, same learning), else 4 (small batches learn too slowly in 2)."""
    discount: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    learning_rate: float = 5e-4
    """Adam learning rate (adapted by the KL scheduler)."""
    entropy: float = 0.0
    """Entropy bonus scale."""
    hidden: tuple[int, ...] = (256, 128, 64)
    """Hidden layer sizes of the policy and value networks."""
    init_log_std: float = -0.7
    """Initial log standard deviation of the Gaussian policy."""
    plateau_iterations: int = 100
    """Stop when the success rate has not improved by 0.02 for this many iterations..."""
    plateau_min: float = 0.5
    """...once it has reached this much; below it only the budget stops training (RL on a grasp often
    idles at 10-20% for a while before it takes off)."""
    min_iterations: int = 5
    """Never stop before this many iterations."""
    no_learning_share: float | None = None
    """Stop (`no_learning`) once this share of the env budget is spent and success has not held once, at any
    step of any episode (see `no_learning`); None: never. Subtask training sets 0.5: a retry with a fresh
    seed uses the rest better (the bottle's grasp, seed 0: 0% through all 600k steps, success not once by
    300k)."""
    checkpoint_every: int = 20
    """Iterations between checkpoints (a final one is always written)."""
    seed: int = 0
    """Seed of torch's generator for the networks and sampling."""
    stagger: bool = True
    """Start the envs at random points of their first episode, so that every batch holds every phase of
    an episode (with all envs in lockstep, a batch sees one phase only and PPO oscillates)."""
    success_window: int = 64
    """Episodes over which the training success rate is measured (the stopping rules use it)."""
    overlap: bool = False
    """Learn from rollout k while rollout k+1 is collected (env groups only, else ignored): the update runs in a
    thread of this process while the groups' workers step, so the machine's cores are not idle during it. The
    price is one update of policy lag: rollout k+1 is acted by the policy from before rollout k's update (PPO's
    ratio uses the log-probabilities recorded at acting time, so the objective stays on the acting policy).
    Subtask training reads it from `DEXFORGE_PPO_OVERLAP` (`overlap_setting`)."""

    def resolved_mini_batches(self, num_envs: int) -> int:
        if self.mini_batches is not None:
            return self.mini_batches
        return 2 if self.rollouts * num_envs >= 1024 else 4


def _mlp(n_in: int, n_out: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ELU()]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def make_models(observation_space, action_space, device, cfg: PPOConfig) -> dict:
    from skrl.models.torch import DeterministicMixin, GaussianMixin, Model

    class Policy(GaussianMixin, Model):
        def __init__(self):
            Model.__init__(self, observation_space=observation_space, action_space=action_space, device=device)
            GaussianMixin.__init__(self, clip_actions=True, clip_log_std=True, min_log_std=-5.0, max_log_std=1.0)
            self.net = _mlp(self.num_observations, self.num_actions, cfg.hidden)
            self.log_std = nn.Parameter(torch.full((self.num_actions,), cfg.init_log_std))

        def compute(self, inputs, role=""):
            return torch.tanh(self.net(inputs["observations"])), {"log_std": self.log_std}

    class Value(DeterministicMixin, Model):
        def __init__(self):
            Model.__init__(self, observation_space=observation_space, action_space=action_space, device=device)
            DeterministicMixin.__init__(self)
            self.net = _mlp(self.num_observations, 1, cfg.hidden)

        def compute(self, inputs, role=""):
            return self.net(inputs["observations"]), {}

    return {"policy": Policy(), "value": Value()}


@dataclass
class TrainResult:
    iterations: int
    env_steps: int
    wall_time_s: float
    best_success: float
    final_success: float | None
    stop_reason: str
    checkpoint: Path
    history: list[dict] = field(default_factory=list)
    steps_to_half: int | None = None  # env steps when the training success rate first reached 50%
    best_checkpoint: Path | None = None  # the policy at its best training success rate


def build_agent(
    wrapped: SkrlHandEnv, cfg: PPOConfig, run_dir: Path, memory_size: int | None = None, track: bool = True
):
    from skrl.agents.torch.ppo import PPO, PPO_CFG
    from skrl.memories.torch import RandomMemory
    from skrl.resources.preprocessors.torch import RunningStandardScaler
    from skrl.resources.schedulers.torch import KLAdaptiveLR

    torch.manual_seed(cfg.seed)
    device = wrapped.device
    models = make_models(wrapped.observation_space, wrapped.action_space, device, cfg)
    memory = RandomMemory(memory_size=memory_size or cfg.rollouts, num_envs=wrapped.num_envs, device=device)
    agent_cfg = PPO_CFG(
        rollouts=cfg.rollouts,
        learning_epochs=cfg.learning_epochs,
        mini_batches=cfg.resolved_mini_batches(wrapped.num_envs),
        discount_factor=cfg.discount,
        gae_lambda=cfg.gae_lambda,
        learning_rate=cfg.learning_rate,
        learning_rate_scheduler=KLAdaptiveLR,
        learning_rate_scheduler_kwargs={"kl_threshold": 0.016},
        observation_preprocessor=RunningStandardScaler,
        observation_preprocessor_kwargs={"size": wrapped.observation_space, "device": device},
        value_preprocessor=RunningStandardScaler,
        value_preprocessor_kwargs={"size": 1, "device": device},
        entropy_loss_scale=cfg.entropy,
        value_loss_scale=1.0,
        time_limit_bootstrap=True,
    )
    agent_cfg.experiment.directory = str(run_dir)
    agent_cfg.experiment.experiment_name = "tb"
    agent_cfg.experiment.write_interval = cfg.rollouts if track else 0
    agent_cfg.experiment.checkpoint_interval = 0  # checkpoints are written by train_ppo
    agent = PPO(
        models=models,
        memory=memory,
        observation_space=wrapped.observation_space,
        action_space=wrapped.action_space,
        device=device,
        cfg=agent_cfg,
    )
    agent.init()
    return agent


def no_learning(history: list[dict], env_steps: int, max_env_steps: int, share: float | None) -> bool:
    """True once `share` of the budget is spent and, over the whole `history` (rows of stats.jsonl), no window
    of episodes has seen a success and success has not held at a single env step (`step_success`).

    Either signal alone misleads: the bottle's grasp (seed 0, a retry) had no episode end in success by
    half its budget while success already held at 6% of its steps and rising (it was learning to lift and
    not yet to hold on); the attempts that never learnt had not one step of success by then."""
    if share is None or env_steps < share * max_env_steps:
        return False
    episodes = max([h.get("success_rate") or 0.0 for h in history] or [0.0])
    steps = max([h.get("step_success") or 0.0 for h in history] or [0.0])
    return episodes <= 0.0 and steps <= 0.0


def train_ppo(
    env: HandEnv,
    reward_fn: RewardFn,
    run_dir: Path,
    *,
    cfg: PPOConfig | None = None,
    target_success: float = 0.8,
    max_env_steps: int = 200_000,
    max_wall_s: float = 900.0,
    resume: Path | None = None,
    init: Path | None = None,
    progress: Callable[[dict], None] | None = None,
    pre_step: Callable[[HandEnv], None] | None = None,
    stepper: SkrlHandEnv | None = None,
) -> TrainResult:
    """Train a Gaussian policy on `env` (its active joints) with `reward_fn`, stopping at the target
    success rate, a plateau, or the budget. Writes TensorBoard logs, `stats.jsonl` and checkpoints
    (`checkpoint.pt` + `checkpoint.json`) into `run_dir`. `stepper`: what steps the envs instead of `env`
    in this process (`EnvGroups`: copies of `env` in worker processes, one per core)."""
    cfg = cfg or PPOConfig()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = {**dataclasses.asdict(cfg), "mini_batches": cfg.resolved_mini_batches(env.num_envs)}
    (run_dir / "ppo_config.json").write_text(json.dumps(saved, indent=2))
    wrapped = stepper if stepper is not None else SkrlHandEnv(env, reward_fn, pre_step)
    agent = build_agent(wrapped, cfg, run_dir)
    overlap = cfg.overlap and stepper is not None
    start_iteration, history, steps_before = 0, [], 0
    if init is not None and resume is None:  # warm start: the networks and normalisers, counters from zero
        agent.load(str(init))
    if resume is not None:
        agent.load(str(resume))
        meta = json.loads(Path(resume).with_suffix(".json").read_text())
        start_iteration, history, steps_before = meta["iteration"], meta["history"], meta["env_steps"]
    agent.enable_training_mode(True)
    observations, _ = wrapped.reset(stagger=cfg.stagger, seed=cfg.seed)
    wrapped.env_steps = steps_before
    t0 = time.time()
    best, since_best, stop_reason = max([h["success_rate"] or 0.0 for h in history] or [0.0]), 0, "budget"
    steps_to_half = next((h["env_steps"] for h in history if (h["success_rate"] or 0) >= 0.5), None)
    window: list[bool] = []  # the last `success_window` episode outcomes
    timestep = start_iteration * cfg.rollouts
    iteration = start_iteration
    stats_file = (run_dir / "stats.jsonl").open("a")
    learn_threads = torch.get_num_threads()
    learner = None
    if overlap:
        learner = Overlapped(agent, build_agent(wrapped, cfg, run_dir / "actor", track=False), wrapped, cfg.rollouts)
    while True:
        if learner is not None:  # acted by the actor's copy while the last rollout's update runs
            observations, timestep = learner.rollout(observations, timestep)
        if wrapped.rollout_threads and learner is None:
            torch.set_num_threads(wrapped.rollout_threads)
        for step in range(cfg.rollouts if learner is None else 0):
            agent.pre_interaction(timestep=timestep, timesteps=1 << 40)
            next_obs = act_and_record(agent, wrapped, observations, timestep)
            if step == cfg.rollouts - 1:  # the update (in post_interaction) gets every thread
                torch.set_num_threads(learn_threads)
            agent.post_interaction(timestep=timestep, timesteps=1 << 40)
            observations = next_obs
            timestep += 1
        iteration += 1
        stats = wrapped.drain()
        window = (window + stats.pop("outcomes"))[-cfg.success_window :]
        if len(window) >= min(cfg.success_window, env.num_envs):
            stats["success_rate"] = sum(window) / len(window)  # over the last window of episodes
        else:
            stats["success_rate"] = None
        stats.update(iteration=iteration, env_steps=wrapped.env_steps, wall_s=round(time.time() - t0, 2))
        history.append(stats)
        stats_file.write(json.dumps(stats) + "\n")
        stats_file.flush()
        rate = stats["success_rate"]
        if rate is not None and rate >= 0.5 and steps_to_half is None:
            steps_to_half = wrapped.env_steps
        if rate is not None and rate > best + 0.02:
            best, since_best = rate, 0
            agent.save(str(run_dir / "best.pt"))  # PPO can collapse later: keep the best policy seen
        elif best >= cfg.plateau_min:  # a plateau needs something to plateau at
            since_best += 1
        if progress is not None:
            progress(stats)
        if learner is not None:  # the update of this rollout starts, in the background
            learner.learn(timestep)
        if iteration % cfg.checkpoint_every == 0:
            if learner is not None:
                learner.wait()
            _checkpoint(agent, run_dir, iteration, history, wrapped.env_steps)
        recent = [h["success_rate"] for h in history if h["success_rate"] is not None][-2:]
        if iteration >= cfg.min_iterations and len(recent) == 2 and min(recent) >= target_success:
            stop_reason = "target"
            break
        if iteration - start_iteration >= cfg.min_iterations and since_best >= cfg.plateau_iterations:
            stop_reason = "plateau"
            break
        if iteration - start_iteration >= cfg.min_iterations and no_learning(
            history, wrapped.env_steps, max_env_steps, cfg.no_learning_share
        ):
            stop_reason = "no_learning"
            break
        if wrapped.env_steps >= max_env_steps or time.time() - t0 >= max_wall_s:
            stop_reason = "budget"
            break
    stats_file.close()
    if learner is not None:
        learner.close()
        torch.set_num_threads(learn_threads)
    checkpoint = _checkpoint(agent, run_dir, iteration, history, wrapped.env_steps)
    return TrainResult(
        iterations=iteration,
        env_steps=wrapped.env_steps,
        wall_time_s=time.time() - t0,
        best_success=best,
        final_success=history[-1]["success_rate"] if history else None,
        stop_reason=stop_reason,
        checkpoint=checkpoint,
        history=history,
        steps_to_half=steps_to_half,
        best_checkpoint=(run_dir / "best.pt") if (run_dir / "best.pt").exists() else None,
    )


def _checkpoint(agent, run_dir: Path, iteration: int, history: list, env_steps: int) -> Path:
    path = run_dir / "checkpoint.pt"
    agent.save(str(path))
    meta = {"iteration": iteration, "env_steps": env_steps, "history": history}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path
