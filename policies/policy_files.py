"""Trained policies on disk: loading one to act (`load_policy`), the action mode measured best for it
(mean or sampled), whether it can warm-start another training (`checkpoint_misfit`), and its success rate
(`evaluate`). Training and writing checkpoints: `policies.ppo`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from dexforge.policies.ppo import PPOConfig, build_agent
from dexforge.policies.skrl_env import SkrlHandEnv
from dexforge.sim.env import HandEnv


def _mode_file(checkpoint: Path) -> Path:
    return Path(checkpoint).with_suffix(".mode.json")


def save_action_mode(checkpoint: Path, deterministic: bool, rates: dict[str, float] | None = None) -> None:
    """Record how a checkpoint acts best (mean or sampled actions), as measured; `load_policy` reads it."""
    _mode_file(checkpoint).write_text(json.dumps({"deterministic": deterministic, "measured": rates or {}}))


def action_mode(checkpoint: Path) -> bool:
    """The recorded mode of a checkpoint (`save_action_mode`); sampled actions, as trained, if none."""
    path = _mode_file(checkpoint)
    return bool(json.loads(path.read_text())["deterministic"]) if path.exists() else False


def load_policy(
    env: HandEnv, checkpoint: Path, cfg: PPOConfig | None = None, *, deterministic: bool | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """act(obs) -> actions from a checkpoint: the mean action (`deterministic=True`) or a sample from the
    Gaussian policy as it was trained (`False`); `None` uses the mode recorded with the checkpoint
    (`save_action_mode`), else samples. Observations are normalised with the saved running statistics."""
    if deterministic is None:
        deterministic = action_mode(checkpoint)
    cfg = cfg or PPOConfig(**saved_config(checkpoint))
    wrapped = SkrlHandEnv(env, lambda m: (torch.zeros(env.num_envs), {}))
    agent = build_agent(wrapped, cfg, Path(checkpoint).parent / "eval")
    agent.load(str(checkpoint))
    agent.enable_training_mode(False)

    @torch.no_grad()
    def act(obs: torch.Tensor) -> torch.Tensor:
        inputs = {"observations": agent._observation_preprocessor(obs), "states": None}
        actions, outputs = agent.policy.act(inputs, role="policy")
        return outputs["mean_actions"] if deterministic else actions

    return act


def checkpoint_misfit(checkpoint: Path, num_obs: int, num_actions: int, cfg: PPOConfig | None = None) -> str | None:
    """Why the policy in `checkpoint` cannot warm-start training on `num_obs` observations and
    `num_actions` actions with `cfg`'s networks (None when it can): a missing file, other sizes or other
    hidden layers."""
    cfg = cfg or PPOConfig()
    path = Path(checkpoint)
    if not path.is_file():
        return f"{path} does not exist"
    saved = saved_config(path)
    if "hidden" in saved and tuple(saved["hidden"]) != tuple(cfg.hidden):
        return f"hidden layers {list(saved['hidden'])} differ from {list(cfg.hidden)}"
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
        weights = [v for k, v in data["policy"].items() if k.endswith(".weight")]
        mean = data["observation_preprocessor"]["running_mean"]
    except Exception as exc:  # any unreadable checkpoint is a misfit, with its reason
        return f"unreadable checkpoint {path.name}: {type(exc).__name__}: {exc}"
    got = (int(weights[0].shape[1]), int(weights[-1].shape[0]), int(mean.shape[0]))
    if got != (num_obs, num_actions, num_obs):
        return f"observation/action sizes {got[0]}/{got[1]} differ from {num_obs}/{num_actions}"
    return None


def saved_config(checkpoint: Path) -> dict:
    path = Path(checkpoint).parent / "ppo_config.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    if "hidden" in data:
        data["hidden"] = tuple(data["hidden"])
    return data


@torch.no_grad()
def evaluate(env: HandEnv, act: Callable[[torch.Tensor], torch.Tensor], episodes: int, seed: int = 0) -> float:
    """Success rate over at least `episodes` episodes (success at an episode's last step), fixed seed."""
    env._rng.manual_seed(seed)
    obs = env.reset()
    outcomes: list[bool] = []
    while len(outcomes) < episodes:
        result = env.step(act(obs))
        obs = result.obs
        if result.reset.any():
            outcomes += result.success[result.reset].tolist()
    return sum(outcomes[:episodes]) / episodes
