"""In-hand experts for DexGen's data and benchmark: a held start, and a PPO policy that keeps the object in
the hand while the wrist wanders and turns against gravity (mode `hold`).

The start: the scripted power grasp of `sim.demo.grasp_and_lift` picks the object up, and the envs that
hold it afterwards are saved as start states. The expert: PPO (skrl) on the finger joints with the `hold`
reward template, the wrist moved by `collect.WristMotion` in every episode, success = held for most of the
episode. An expert is a checkpoint directory like any rl subtask's, so `load_policy` runs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dexforge.policies.dexgen.collect import WristMotion, WristMotionConfig, object_held
from dexforge.sim.env import EnvConfig, EnvState, HandEnv
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import Held, TaskSpec

MODES = {"hold": 0, "rotate": 1, "release": 2}
"""Mode labels (DexGenConfig.n_modes = 3): the data's intent, given to the diffusion model."""
ACTION_MODE = "delta"
"""The experts' actions move the finger targets by steps from the held grasp (an untrained policy keeps it,
and PPO learns to hold in 100k steps); with absolute targets PPO had learnt nothing after 100k steps (the
grasp opens at the first action). Corrupting a step-wise action makes the fingers drift."""
PICK_STEPS = 260  # grasp_and_lift: hover 40, descend 50, close 80, lift 60, then 30 steps holding still


def parse_asset(asset: str) -> tuple[str, float]:
    """ "cube" -> ("cube", 1.0); "cube@1.2" -> ("cube", 1.2): a catalog object, optionally scaled."""
    name, _, scale = asset.partition("@")
    try:
        value = float(scale) if scale else 1.0
    except ValueError:
        raise ValueError(f"object {asset!r}: the scale after '@' must be a number, e.g. cube@1.2") from None
    if not 0.2 <= value <= 5.0:
        raise ValueError(f"object {asset!r}: scale {value} is outside 0.2-5")
    return name, value


def in_hand_spec(asset: str = "cube", *, seed: int = 0) -> TaskSpec:
    """The lift example with `asset` ("name" or "name@scale") in the cube's place, resting on the table, no
    success predicate."""
    from dexforge.sim.catalog import default_catalog
    from dexforge.sim.demo import example_spec

    name, scale = parse_asset(asset)
    base = example_spec("lift_cube")
    size = default_catalog().object(name).size
    obj = base.objects[0].model_copy(update={"asset": name, "name": None, "scale": scale})
    obj = obj.model_copy(update={"pose": obj.pose.model_copy(update={"pos": (0.0, 0.0, size[2] * scale / 2)})})
    label = name if scale == 1.0 else f"{name}_x{scale:g}"
    return base.model_copy(update={"name": f"hold_{label}", "objects": [obj], "success": [], "seed": seed})


def make_env(asset: str = "cube", *, n_envs: int = 64, seed: int = 0, backend: str = "cpu") -> HandEnv:
    spec = in_hand_spec(asset, seed=seed)
    return HandEnv(spec, EnvConfig(auto_reset=False), SceneConfig(n_envs=n_envs, backend=backend))


@torch.no_grad()
def held_start(env: HandEnv, obj: str | None = None, *, min_lift: float = 0.05) -> EnvState:
    """Pick the object up with the scripted power grasp from the spec's layout; the states of the envs that
    hold it `min_lift` m above where it lay. Raises RuntimeError when none does."""
    from dexforge.sim.demo import grasp_and_lift

    obj = obj or env.object_names[0]
    env.set_start_states(None)
    env.configure(success=[], auto_reset=False, active=("fingers",), reset=True)
    script = grasp_and_lift(env, obj, lift=0.12)
    for _ in range(PICK_STEPS):
        env.step_targets(next(script))
    m = env.metrics
    ok = object_held(m, obj) & (m[f"{obj}.lift"] >= min_lift)
    if not ok.any():
        raise RuntimeError(f"the scripted power grasp held the {obj} in none of {env.num_envs} envs")
    state = env.get_state(ok.nonzero().flatten())
    state.step.zero_()
    return state


@dataclass
class ExpertConfig:
    """How the hold expert is trained."""

    episode_s: float = 2.0
    """Episode length, s; success = held for all but the first 0.2 s of it."""
    env_steps: int = 300_000
    """PPO budget, env steps."""
    target_success: float = 0.95
    wall_s: float = 1200.0
    seed: int = 0
    wrist: WristMotionConfig = field(default_factory=WristMotionConfig)


def configure_hold(env: HandEnv, start: EnvState, cfg: ExpertConfig, obj: str) -> None:
    """Episodes from the held starts, fingers active, success = held for the episode (after 0.2 s)."""
    steps = round(cfg.episode_s / env.dt)
    env.set_start_states(start)
    env.configure(
        active=("fingers",),
        success=[Held(object=obj, duration=max(cfg.episode_s - 0.2, 0.1))],
        episode_length=steps,
        auto_reset=True,
        action_mode=ACTION_MODE,
        reset=True,
    )


def train_hold_expert(
    env: HandEnv,
    start: EnvState,
    out: Path,
    cfg: ExpertConfig | None = None,
    *,
    obj: str | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Train the hold expert into `out` (checkpoint.pt, best.pt, stats.jsonl, reward.py, expert.json);
    returns the summary written to expert.json."""
    from dexforge.policies.ppo import PPOConfig, train_ppo
    from dexforge.policies.rewards.sandbox import compile_reward
    from dexforge.policies.rewards.templates import render

    cfg = cfg or ExpertConfig()
    obj = obj or env.object_names[0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = render("hold", obj=obj)
    (out / "reward.py").write_text(source)
    configure_hold(env, start, cfg, obj)
    t0 = time.time()
    trained = train_ppo(
        env,
        compile_reward(source),
        out,
        cfg=PPOConfig(seed=cfg.seed),
        target_success=cfg.target_success,
        max_env_steps=cfg.env_steps,
        max_wall_s=cfg.wall_s,
        progress=progress,
        pre_step=WristMotion(cfg.wrist, seed=cfg.seed),
    )
    summary = {
        "mode": "hold",
        "object": obj,
        "asset": env.spec.object_spec(obj).asset,
        "checkpoint": str(trained.checkpoint),
        "best_checkpoint": str(trained.best_checkpoint) if trained.best_checkpoint else None,
        "env_steps": trained.env_steps,
        "best_success": trained.best_success,
        "stop_reason": trained.stop_reason,
        "wall_s": round(time.time() - t0, 1),
        "config": {**asdict(cfg), "wrist": asdict(cfg.wrist)},
    }
    (out / "expert.json").write_text(json.dumps(summary, indent=2))
    return summary
