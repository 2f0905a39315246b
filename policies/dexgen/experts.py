"""In-hand experts for DexGen's data and benchmark: a held start, and PPO policies on the fingers for two
skills: `hold` keeps the object in the hand while the wrist wanders and turns against gravity (mode `hold`),
`spin_<axis>` turns it in the hand about a palm axis (thumb, normal or fingers; mode `rotate`).

The start: the scripted power grasp of `sim.demo.grasp_and_lift` picks the object up, and the envs that
hold it afterwards are saved as start states. An expert: PPO (skrl) on the finger joints with the `hold` or
`spin` reward template, the wrist moved by `collect.WristMotion` in every episode, success = held for most of
the episode. An expert is a checkpoint directory like any rl subtask's, so `load_policy` runs it. A hold
expert lives in experts/<asset>/, a spin expert in experts/<asset>/spin_<axis>/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dexforge.policies.dexgen.collect import WristMotion, WristMotionConfig, object_held
from dexforge.policies.dexgen.skills import MODES, SPIN_AXES, parse_asset, skill_mode  # noqa: F401 (re-exported)
from dexforge.sim.env import EnvConfig, EnvState, HandEnv
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import Held, TaskSpec

ACTION_MODE = "delta"
"""The experts' actions move the finger targets by steps from the held grasp (an untrained policy keeps it,
and PPO learns to hold in 100k steps); with absolute targets PPO had learnt nothing after 100k steps (the
grasp opens at the first action). Corrupting a step-wise action makes the fingers drift."""
PICK_STEPS = 360  # grasp_and_lift: hover 40, descend 50, close 80, lift 60, then 130 steps (1.3 s) holding still


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


PICK_GRID = tuple(
    dict.fromkeys(
        [
            (-0.04, 0.004, 0.0),
            *((dx, d, sq) for sq in (0.6, 0.0) for d in (-0.035, -0.02, 0.004) for dx in (-0.04, -0.05, -0.03, -0.06)),
        ]
    )
)
"""(palm x offset m, wrist height above the object's top m, squeeze rad): the scripted power grasps
`held_start` tries: the default first, then the squeezed ones (so that a ball or can is held in the first
turn of a few envs). A cube holds at (-0.04, +0.004) unsqueezed; a ball, apple, duck or bunny needs the hand
2-3.5 cm lower, a can 3.5 cm lower; a ball or can slips out of the plain grasp within 1 s and stays with the
curling joints' targets 0.6 rad further in (scanned on 60 envs per object, judged after 1.3 s of holding
still)."""


def _pick(env: HandEnv, obj: str, grid, min_lift: float) -> torch.Tensor:
    """Run the scripted pick with env i using grid[i % len(grid)]; which envs hold the object afterwards."""
    from dexforge.sim.demo import grasp_and_lift

    env.set_start_states(None)
    env.configure(success=[], auto_reset=False, active=("fingers",), reset=True)
    i = torch.arange(env.num_envs, device=env.device) % len(grid)
    dx, depth, squeeze = torch.tensor(grid, device=env.device)[i].T
    script = grasp_and_lift(env, obj, lift=0.12, palm_dx=dx, depth=depth, squeeze=squeeze)
    for _ in range(PICK_STEPS):
        env.step_targets(next(script))
    m = env.metrics
    return object_held(m, obj) & (m[f"{obj}.lift"] >= min_lift)


@torch.no_grad()
def held_start(env: HandEnv, obj: str | None = None, *, min_lift: float = 0.05) -> EnvState:
    """Pick the object up with the scripted power grasp from the spec's layout; the states of the envs that
    hold it `min_lift` m above where it lay. The grasps of PICK_GRID are tried side by side (in turns of
    `num_envs`), then the envs are shared among those that held: a variety of grasps, and as many held envs
    as they allow. Raises RuntimeError when no grasp holds it."""
    obj = obj or env.object_names[0]
    n = env.num_envs
    held: list[tuple[float, float, float]] = []
    for k in range(0, len(PICK_GRID), n):  # with fewer envs than grasps, stop at the first turn that holds
        chunk = PICK_GRID[k : k + n]
        ok = _pick(env, obj, chunk, min_lift)
        held = [g for j, g in enumerate(chunk) if bool(ok[j :: len(chunk)].any())]
        if held:
            break
    if not held:
        raise RuntimeError(f"none of the {len(PICK_GRID)} scripted power grasps held the {obj} ({n} envs tried)")
    state = env.get_state(ok.nonzero().flatten())
    if len(held) < len(chunk):  # share the envs among the grasps that held; keep the first pass if it did better
        again = _pick(env, obj, held, min_lift)
        if int(again.sum()) > state.n:
            state = env.get_state(again.nonzero().flatten())
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
    """A hold expert stops early at this success rate; a spin expert uses its whole budget (holding is its
    success, turning its reward)."""
    wall_s: float = 1200.0
    spin_speed: float = 1.0
    """rad/s a spin expert is paid to reach about its axis."""
    seed: int = 0
    wrist: WristMotionConfig = field(default_factory=WristMotionConfig)


def skill_reward(skill: str, obj: str, cfg: ExpertConfig) -> str:
    """The reward program of a skill's expert."""
    from dexforge.policies.rewards.templates import render

    skill_mode(skill)
    if skill == "hold":
        return render("hold", obj=obj)
    return render("spin", obj=obj, axis=skill[5:], speed=cfg.spin_speed)


def expert_folder(root: Path, asset: str, skill: str = "hold") -> Path:
    """Where an expert lives under `root` (the pipeline folder): experts/<asset>/[spin_<axis>/]."""
    skill_mode(skill)
    base = Path(root) / "experts" / asset
    return base if skill == "hold" else base / skill


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
    skill: str = "hold",
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Train an in-hand expert (`skill`: hold or spin_<axis>) into `out` (checkpoint.pt, best.pt, stats.jsonl,
    reward.py, expert.json); returns the summary written to expert.json."""
    from dexforge.policies.ppo import PPOConfig, train_ppo
    from dexforge.policies.rewards.sandbox import compile_reward

    cfg = cfg or ExpertConfig()
    obj = obj or env.object_names[0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = skill_reward(skill, obj, cfg)
    (out / "reward.py").write_text(source)
    configure_hold(env, start, cfg, obj)
    t0 = time.time()
    trained = train_ppo(
        env,
        compile_reward(source),
        out,
        # a spin expert's success (holding) plateaus long before its turning does: it uses its whole budget
        cfg=PPOConfig(seed=cfg.seed) if skill == "hold" else PPOConfig(seed=cfg.seed, plateau_iterations=1 << 30),
        target_success=cfg.target_success if skill == "hold" else 2.0,
        max_env_steps=cfg.env_steps,
        max_wall_s=cfg.wall_s,
        progress=progress,
        pre_step=WristMotion(cfg.wrist, seed=cfg.seed),
    )
    summary = {
        "skill": skill,
        "mode": "hold" if skill == "hold" else "rotate",
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
