"""DexGen end to end: train in-hand experts, collect their data, train the model, and measure how long a
corrupted expert keeps the object with and without DexGen (DexterityGen's simulated experiment).

Each step reads and writes files in one folder, so the CLI (`dexforge dexgen collect | train | eval |
assist`) and `benchmarks/dexgen.py` share them:
    experts/<asset>/   checkpoint.pt, expert.json, start_states.pt       (train_experts)
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
from dexforge.policies.dexgen.experts import ACTION_MODE, MODES, ExpertConfig, held_start, make_env, train_hold_expert
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


def train_experts(out: Path, assets: Sequence[str], *, n_envs: int, cfg: ExpertConfig, log: Log = _quiet) -> list[dict]:
    """A hold expert per asset in out/experts/<asset>/ (kept when expert.json exists: delete it to retrain)."""
    summaries = []
    for asset in assets:
        folder = Path(out) / "experts" / asset
        if (folder / "expert.json").exists():
            summaries.append(json.loads((folder / "expert.json").read_text()))
            log(f"expert {asset}: kept {folder}")
            continue
        if (folder / "skipped.json").exists():
            summaries.append(json.loads((folder / "skipped.json").read_text()))
            log(f"expert {asset}: skipped before ({summaries[-1]['skipped']}); delete {folder} to try again")
            continue
        env = make_env(asset, n_envs=n_envs, seed=cfg.seed)
        try:
            start = held_start(env)
        except RuntimeError as exc:  # the scripted pick does not hold every shape: go on without this one
            log(f"expert {asset}: skipped ({exc})")
            summaries.append({"asset": asset, "skipped": str(exc)})
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "skipped.json").write_text(json.dumps(summaries[-1]))
            env.close()
            continue
        folder.mkdir(parents=True, exist_ok=True)
        start.save(folder / "start_states.pt")
        log(f"expert {asset}: {start.n}/{n_envs} envs hold it after the scripted pick; training")

        def progress(stats: dict, asset: str = asset) -> None:
            if stats["iteration"] % 20 == 0:
                log(f"  {asset} it {stats['iteration']} steps {stats['env_steps']} success {stats['success_rate']}")

        summary = train_hold_expert(env, start, folder, cfg, progress=progress)
        summary["asset"] = asset  # the folder's name: the catalog id, with its @scale
        (folder / "expert.json").write_text(json.dumps(summary, indent=2))
        summaries.append(summary)
        log(f"expert {asset}: best training success {summaries[-1]['best_success']:.2f}")
        env.close()
    return summaries


def collect_data(
    out: Path,
    assets: Sequence[str],
    *,
    n_envs: int,
    runs: int,
    steps: int,
    seed: int = 0,
    log: Log = _quiet,
) -> Path:
    """Roll out every asset's expert (sampled actions) `runs` times for `steps` steps with the wrist wandering and
    mass, friction and gains randomised per run; drop-trimmed episodes go to out/data.hdf5."""
    from dexforge.policies.dexgen.randomize import Randomizer

    episodes, runs_info = [], []
    usable = [a for a in assets if (Path(out) / "experts" / a / "expert.json").is_file()]
    if not usable:
        raise FileNotFoundError(f"no trained expert in {Path(out) / 'experts'} for {list(assets)}")
    for asset in usable:
        folder = Path(out) / "experts" / asset
        env = make_env(asset, n_envs=n_envs, seed=seed)
        start = EnvState.load(folder / "start_states.pt")
        _ready(env, start, steps)
        act, summary = _load_expert(env, folder, deterministic=False)
        randomizer = Randomizer(env, seed=seed)
        for r in range(runs):
            _ready(env, start, steps)
            drawn = randomizer.apply()
            motion = WristMotion(WristMotionConfig(), seed=seed * 1000 + r)
            got = collect(env, act, steps=steps, obj=env.object_names[0], mode=MODES["hold"], wrist_motion=motion)
            kept = sum(int(e["keypoints"].shape[0]) for e in got)
            held = sum(float(e["hold_s"]) for e in got) / len(got)
            log(f"collect {asset} run {r}: {kept} steps kept, mean hold {held:.2f} s")
            episodes += got
            runs_info.append(
                {
                    "asset": asset,
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
        "assets": usable,
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
) -> HoldResult:
    """Run the corrupted expert (through DexGen when `bundle` is given) with the wrist wandering; the mean
    time until the object is dropped (not held for longer than `grace_s`), capped at `seconds`."""
    from dexforge.policies.dexgen.assist import DexGenAssist

    steps = round(seconds / env.dt)
    _ready(env, start, steps)
    gen = torch.Generator().manual_seed(seed)

    def spoiled(obs: torch.Tensor) -> torch.Tensor:
        return corruption.apply(act(obs), gen)

    motion = WristMotion(WristMotionConfig(), seed=10_000 + seed)
    motion.begin(env)
    assist = DexGenAssist(bundle, spoiled, strength=strength, pre_step=motion, seed=seed) if bundle else None
    if assist is not None:
        assist.begin(env)
    obj = env.object_names[0]
    grace = max(1, round(grace_s / env.dt))
    lost = torch.zeros(env.num_envs, dtype=torch.long)
    drop = torch.full((env.num_envs,), steps, dtype=torch.long)
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
