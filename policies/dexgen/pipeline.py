"""DexGen end to end: train in-hand experts, collect their data, train the model, and measure how long a
corrupted expert keeps the object with and without DexGen (DexterityGen's simulated experiment).

Each step reads and writes files in one folder, so the CLI (`dexforge dexgen collect | train | eval |
assist`) and `benchmarks/dexgen.py` share them:
    experts/<asset>/   checkpoint.pt, expert.json, start_states.pt       (train_experts: the hold expert)
    experts/<asset>/spin_<axis>/  checkpoint.pt, expert.json           (train_experts: a spin expert)
    data.hdf5          episodes + provenance                            (collect_data)
    dexgen.pt          the model bundle, with its training history      (train_model)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dexforge.policies.dexgen.collect import WristMotion, WristMotionConfig, collect, object_held, save_dataset
from dexforge.policies.dexgen.experts import (
    ACTION_MODE,
    MODES,
    ExpertConfig,
    expert_folder,
    held_start,
    make_env,
    skill_mode,
    train_hold_expert,
)
from dexforge.sim.env import EnvState, HandEnv

Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def _load_expert(env: HandEnv, folder: Path, deterministic: bool | None):
    from dexforge.policies.ppo import load_policy

    summary = json.loads((folder / "expert.json").read_text())
    return load_policy(env, Path(summary["checkpoint"]), deterministic=deterministic), summary


def _ready(env: HandEnv, start: EnvState, steps: int) -> None:
    """Envs at the held starts, fingers active, no success predicate, episodes as long as the run."""
    env.set_start_states(start)
    env.configure(
        active=("fingers",),
        success=[],
        episode_length=steps + 1,
        auto_reset=False,
        action_mode=ACTION_MODE,
        reset=True,
    )


def _start_for(out: Path, asset: str, env: HandEnv, log: Log) -> EnvState | dict:
    """The asset's held start states (experts/<asset>/start_states.pt, made by the scripted pick when missing),
    or the skip record when the pick holds it nowhere (kept in skipped.json: delete the folder to try again)."""
    base = Path(out) / "experts" / asset
    if (base / "start_states.pt").is_file():
        return EnvState.load(base / "start_states.pt")
    try:
        start = held_start(env)
    except RuntimeError as exc:  # the scripted pick does not hold every shape: go on without this one
        log(f"expert {asset}: skipped ({exc})")
        base.mkdir(parents=True, exist_ok=True)
        skipped = {"asset": asset, "skipped": str(exc)}
        (base / "skipped.json").write_text(json.dumps(skipped))
        return skipped
    base.mkdir(parents=True, exist_ok=True)
    start.save(base / "start_states.pt")
    log(f"expert {asset}: {start.n}/{env.num_envs} envs hold it after the scripted pick")
    return start


def train_experts(
    out: Path,
    assets: Sequence[str],
    *,
    n_envs: int,
    cfg: ExpertConfig,
    skills: Sequence[str] = ("hold",),
    log: Log = _quiet,
) -> list[dict]:
    """An expert per asset and skill (hold: experts/<asset>/, spin_<axis>: experts/<asset>/spin_<axis>/), kept
    when its expert.json exists (delete it to retrain). Returns their summaries, with `asset` and `skill`."""
    summaries = []
    for asset in assets:
        base = Path(out) / "experts" / asset
        todo = [k for k in skills if not (expert_folder(out, asset, k) / "expert.json").exists()]
        for skill in skills:
            if skill not in todo:
                summaries.append(json.loads((expert_folder(out, asset, skill) / "expert.json").read_text()))
                summaries[-1].setdefault("skill", skill)
                log(f"expert {asset} {skill}: kept {expert_folder(out, asset, skill)}")
        if not todo:
            continue
        if (base / "skipped.json").exists():
            skipped = json.loads((base / "skipped.json").read_text())
            summaries += [{**skipped, "skill": k} for k in todo]
            log(f"expert {asset}: skipped before ({skipped['skipped']}); delete {base} to try again")
            continue
        env = make_env(asset, n_envs=n_envs, seed=cfg.seed)
        start = _start_for(out, asset, env, log)
        if isinstance(start, dict):
            summaries += [{**start, "skill": k} for k in todo]
            env.close()
            continue
        for skill in todo:
            folder = expert_folder(out, asset, skill)
            log(f"expert {asset} {skill}: training from {start.n} held starts")

            def progress(stats: dict, label: str = f"{asset} {skill}") -> None:
                if stats["iteration"] % 20 == 0:
                    log(f"  {label} it {stats['iteration']} steps {stats['env_steps']} success {stats['success_rate']}")

            summary = train_hold_expert(env, start, folder, cfg, skill=skill, progress=progress)
            summary["asset"] = asset  # the folder's name: the catalog id, with its @scale
            (folder / "expert.json").write_text(json.dumps(summary, indent=2))
            summaries.append(summary)
            log(f"expert {asset} {skill}: best training success {summary['best_success']:.2f}")
        env.close()
    return summaries


def expert_wrist(summary: dict) -> WristMotionConfig:
    """The wrist motion an expert was trained under (from its expert.json; the default for older ones)."""
    wrist = summary.get("config", {}).get("wrist")
    if not wrist:
        return WristMotionConfig()
    return WristMotionConfig(**{**wrist, "frequency": tuple(wrist["frequency"])})


def collect_data(
    out: Path,
    assets: Sequence[str],
    *,
    n_envs: int,
    runs: int,
    steps: int,
    seed: int = 0,
    skills: Sequence[str] = ("hold",),
    log: Log = _quiet,
) -> Path:
    """Roll out every asset's experts (sampled actions; each skill's data labelled with its mode) `runs` times
    for `steps` steps with the wrist moving as in the expert's training and mass, friction and gains
    randomised per run; drop-trimmed episodes go to out/data.hdf5."""
    from dexforge.policies.dexgen.randomize import Randomizer

    episodes, runs_info = [], []
    pairs = [(a, k) for a in assets for k in skills if (expert_folder(out, a, k) / "expert.json").is_file()]
    if not pairs:
        raise FileNotFoundError(f"no trained expert in {Path(out) / 'experts'} for {list(assets)} ({list(skills)})")
    for asset in dict.fromkeys(a for a, _ in pairs):
        env = make_env(asset, n_envs=n_envs, seed=seed)
        start = EnvState.load(Path(out) / "experts" / asset / "start_states.pt")
        randomizer = Randomizer(env, seed=seed)
        for skill in [k for a, k in pairs if a == asset]:
            _ready(env, start, steps)
            act, summary = _load_expert(env, expert_folder(out, asset, skill), deterministic=False)
            for r in range(runs):
                _ready(env, start, steps)
                drawn = randomizer.apply()
                motion = WristMotion(expert_wrist(summary), seed=seed * 1000 + r)
                mode = skill_mode(skill)
                got = collect(env, act, steps=steps, obj=env.object_names[0], mode=mode, wrist_motion=motion)
                kept = sum(int(e["keypoints"].shape[0]) for e in got)
                held = sum(float(e["hold_s"]) for e in got) / len(got)
                log(f"collect {asset} {skill} run {r}: {kept} steps kept, mean hold {held:.2f} s")
                episodes += got
                runs_info.append(
                    {
                        "asset": asset,
                        "skill": skill,
                        "mode": mode,
                        "run": r,
                        "expert": summary["checkpoint"],
                        "wrist_seed": motion.seed,
                        "randomization": drawn,
                        "kept_steps": kept,
                    }
                )
        randomizer.restore()
        env.close()
    provenance = {
        "assets": list(dict.fromkeys(a for a, _ in pairs)),
        "experts": [f"{a}:{k}" for a, k in pairs],
        "runs": runs_info,
        "steps": steps,
        "n_envs": n_envs,
        "seed": seed,
        "modes": MODES,
        "drop_margin_s": 2.0,
    }
    return save_dataset(Path(out) / "data.hdf5", episodes, provenance)


def train_model(out: Path, *, epochs: int, cfg=None, seed: int = 0, log: Log = _quiet) -> Path:
    """Fit DexGen on out/data.hdf5; writes out/dexgen.pt (provenance: the dataset's, and the losses)."""
    from dexforge.policies.dexgen.collect import load_dataset
    from dexforge.policies.dexgen.config import DexGenConfig
    from dexforge.policies.dexgen.processing import make_windows
    from dexforge.policies.dexgen.train import fit

    cfg = cfg or DexGenConfig()
    episodes, provenance = load_dataset(Path(out) / "data.hdf5")
    data = make_windows(episodes, cfg)
    log(f"train: {data['cond'].shape[0]} windows from {len(episodes)} episodes")
    t0 = time.time()

    def show(row: dict) -> None:
        log(f"  epoch {int(row['epoch'])}: diffusion {row['diffusion']:.3f} inverse mse {row['inverse_mse']:.4f}")

    bundle, history = fit(data, cfg, epochs=epochs, seed=seed, log=show)
    path = Path(out) / "dexgen.pt"
    bundle.save(
        path,
        {
            "data": provenance,
            "history": history,
            "windows": int(data["cond"].shape[0]),
            "train_s": round(time.time() - t0, 1),
        },
    )
    return path


@dataclass
class Corruption:
    """How the expert's actions are spoiled: `noise` e adds U(-e, e); `slow` a multiplies by U(0, a)."""

    noise: float = 0.0
    slow: float | None = None

    def apply(self, actions: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = actions
        if self.slow is not None:
            out = out * torch.rand(out.shape, generator=gen).to(out) * self.slow
        if self.noise:
            out = out + (2 * torch.rand(out.shape, generator=gen).to(out) - 1) * self.noise
        return out

    @property
    def label(self) -> str:
        return f"slow U(0,{self.slow:g})" if self.slow is not None else f"noise U(-{self.noise:g},{self.noise:g})"


@dataclass
class HoldResult:
    corruption: str
    strength: float | None  # None: the raw (corrupted) expert, no DexGen
    hold_s: float  # mean time to drop, capped at the run's length
    held_to_end: float  # fraction of envs that never dropped
    envs: int
    latency_ms: float | None = None  # per DexGen call (the whole batch)
    per_env: list[float] = field(default_factory=list)
    expert: str = "hold"  # the expert's skill
    goals: float | None = None  # spin experts: mean goals (goal_deg turns about the axis) per env in the run
    turned_deg: float | None = None  # spin experts: mean turn about the axis while held, deg


class TurnCounter:
    """How far each env's object has turned in the hand about a palm axis (`rewards.templates.PALM_AXES`),
    summed step by step from its orientation relative to the palm while `alive`; goals = whole `goal_deg`
    turns in the commanded direction."""

    def __init__(self, axis: str, n_envs: int, goal_deg: float = 45.0) -> None:
        from dexforge.policies.rewards.templates import PALM_AXES

        if axis not in PALM_AXES:
            raise ValueError(f"unknown palm axis {axis!r}; one of {', '.join(PALM_AXES)}")
        if goal_deg <= 0:
            raise ValueError(f"goal_deg must be > 0, got {goal_deg}")
        self.axis = torch.tensor(PALM_AXES[axis])
        self.goal = math.radians(goal_deg)
        self.total = torch.zeros(n_envs)
        self._prev: torch.Tensor | None = None

    def update(self, m: dict, obj: str, alive: torch.Tensor) -> None:
        from dexforge.sim.rotations import quat_conj, quat_mul

        q = quat_mul(quat_conj(m["palm_quat"]), m[f"{obj}.quat"]).cpu().float()
        if self._prev is not None:
            d = quat_mul(q, quat_conj(self._prev))  # this step's turn, in the palm frame
            d = torch.where(d[:, :1] < 0, -d, d)
            angle = 2 * torch.atan2((d[:, 1:] * self.axis).sum(-1), d[:, 0])
            self.total += torch.where(alive.cpu(), angle, torch.zeros_like(angle))
        self._prev = q

    @property
    def goals(self) -> torch.Tensor:
        return torch.floor(self.total.clamp(min=0) / self.goal)


@torch.no_grad()
def hold_duration(
    env: HandEnv,
    start: EnvState,
    act,
    corruption: Corruption,
    *,
    seconds: float,
    bundle=None,
    strength: float | None = None,
    seed: int = 0,
    grace_s: float = 0.1,
    skill: str = "hold",
    wrist: WristMotionConfig | None = None,
    goal_deg: float = 45.0,
) -> HoldResult:
    """Run the corrupted expert (through DexGen when `bundle` is given, in the skill's mode) with the wrist
    moving (`wrist`, default WristMotionConfig()); the mean time until the object is dropped (not held for
    longer than `grace_s`), capped at `seconds`. For a spin_<axis> expert also the goals achieved in that
    fixed simulated time: whole `goal_deg` turns about the axis before the drop."""
    from dexforge.policies.dexgen.assist import DexGenAssist

    steps = round(seconds / env.dt)
    _ready(env, start, steps)
    gen = torch.Generator().manual_seed(seed)

    def spoiled(obs: torch.Tensor) -> torch.Tensor:
        return corruption.apply(act(obs), gen)

    mode = skill_mode(skill)
    motion = WristMotion(wrist or WristMotionConfig(), seed=10_000 + seed)
    motion.begin(env)
    assist = DexGenAssist(bundle, spoiled, strength=strength, mode=mode, pre_step=motion, seed=seed) if bundle else None
    if assist is not None:
        assist.begin(env)
    obj = env.object_names[0]
    grace = max(1, round(grace_s / env.dt))
    lost = torch.zeros(env.num_envs, dtype=torch.long)
    drop = torch.full((env.num_envs,), steps, dtype=torch.long)
    turns = TurnCounter(skill[5:], env.num_envs, goal_deg) if skill.startswith("spin_") else None
    if turns is not None:
        turns.update(env.metrics, obj, torch.ones(env.num_envs, dtype=torch.bool))
    for t in range(steps):
        if assist is not None:
            result = assist.step(env)
        else:
            motion(env)
            result = env.step(spoiled(env.observations()))
        held = object_held(result.metrics, obj).cpu() & ~result.reset.cpu()
        lost = torch.where(held, torch.zeros_like(lost), lost + 1)
        newly = (lost == grace) & (drop == steps)
        drop[newly] = t + 1 - grace
        if turns is not None:
            turns.update(result.metrics, obj, drop == steps)
    per_env = (drop.float() * env.dt).tolist()
    latency = None
    if assist is not None and assist.latency_s:
        latency = 1000 * sum(assist.latency_s) / len(assist.latency_s)
    return HoldResult(
        corruption=corruption.label,
        strength=strength if bundle is not None else None,
        hold_s=round(sum(per_env) / len(per_env), 3),
        held_to_end=round(sum(d >= steps for d in drop.tolist()) / env.num_envs, 3),
        envs=env.num_envs,
        latency_ms=None if latency is None else round(latency, 2),
        per_env=[round(x, 2) for x in per_env],
        expert=skill,
        goals=None if turns is None else round(float(turns.goals.mean()), 3),
        turned_deg=None if turns is None else round(math.degrees(float(turns.total.mean())), 1),
    )


def summarize(rows: Sequence[HoldResult], corruptions: Sequence[Corruption], drops_within_s: float = 3.0):
    """Per corruption: the raw expert's hold time, DexGen's best (and its strength) and their ratio; and the
    judged corruption, the highest noise at which the raw expert drops within `drops_within_s` on average and
    in most envs (None if none: a run capped before anything dropped judges nothing)."""
    summary, dropped = {}, {}
    for c in corruptions:
        raw = next(r for r in rows if r.corruption == c.label and r.strength is None)
        best = max((r for r in rows if r.corruption == c.label and r.strength is not None), key=lambda r: r.hold_s)
        dropped[c.label] = raw.held_to_end < 0.5
        summary[c.label] = {
            "raw_hold_s": raw.hold_s,
            "dexgen_best_hold_s": best.hold_s,
            "best_strength": best.strength,
            "ratio": round(best.hold_s / max(raw.hold_s, 1e-3), 2),
        }
    dropping = [
        c
        for c in corruptions
        if c.slow is None and dropped[c.label] and summary[c.label]["raw_hold_s"] < drops_within_s
    ]
    return summary, (max(dropping, key=lambda c: c.noise) if dropping else None)


def summarize_goals(rows: Sequence[HoldResult], corruptions: Sequence[Corruption]) -> dict:
    """Per corruption of a spin expert: goals and hold time raw and with DexGen (its best strength by goals)."""
    out = {}
    for c in corruptions:
        raw = next(r for r in rows if r.corruption == c.label and r.strength is None)
        assisted = [r for r in rows if r.corruption == c.label and r.strength is not None]
        best = max(assisted, key=lambda r: (r.goals or 0.0, r.hold_s))
        out[c.label] = {
            "raw_goals": raw.goals,
            "dexgen_best_goals": best.goals,
            "best_strength": best.strength,
            "raw_hold_s": raw.hold_s,
            "dexgen_hold_s": best.hold_s,
        }
    return out


def latency_per_action(bundle, *, calls: int = 50, strength: float = 1.0) -> dict:
    """ms per DexGen action for one env (batch 1): median and p95 over `calls`, guided, on this machine."""
    cfg = bundle.cfg
    cond = bundle.normalizers["cond"].unnormalize(torch.zeros(1, cfg.cond_dim))
    command = torch.zeros(1, cfg.motion_dim)
    times = []
    for _ in range(calls + 5):
        t0 = time.perf_counter()
        bundle.act(cond, 0, command=command, strength=strength)
        times.append(1000 * (time.perf_counter() - t0))
    times = sorted(times[5:])
    return {
        "median_ms": round(times[len(times) // 2], 2),
        "p95_ms": round(times[math.ceil(0.95 * len(times)) - 1], 2),
        "ddim_steps": cfg.ddim_steps,
        "torch_threads": torch.get_num_threads(),
    }


def as_json(results: Sequence[HoldResult]) -> list[dict]:
    return [asdict(r) for r in results]
