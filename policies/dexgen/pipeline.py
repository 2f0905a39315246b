"""DexGen's preparation: train in-hand experts, collect their data, train the model (`evaluate` then measures
how long a corrupted expert keeps the object with and without it).

Each step reads and writes files in one folder, so the CLI (`dexforge dexgen collect | train | eval |
assist`) and `benchmarks/dexgen.py` share them:
    experts/<asset>/   checkpoint.pt, expert.json, start_states.pt       (train_experts: the hold expert)
    experts/<asset>/spin_<axis>/  checkpoint.pt, expert.json           (train_experts: a spin expert)
    data.hdf5          episodes + provenance                            (collect_data)
    dexgen.pt          the model bundle, with its training history      (train_model)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dexforge.policies.dexgen.collect import WristMotion, WristMotionConfig, collect, save_dataset
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


def load_expert(env: HandEnv, folder: Path, deterministic: bool | None):
    from dexforge.policies.policy_files import load_policy

    summary = json.loads((folder / "expert.json").read_text())
    return load_policy(env, Path(summary["checkpoint"]), deterministic=deterministic), summary


def ready_envs(env: HandEnv, start: EnvState, steps: int) -> None:
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
    drop_margin_s: float = 2.0,
    log: Log = _quiet,
) -> Path:
    """Roll out every asset's experts (sampled actions; each skill's data labelled with its mode) `runs` times
    for `steps` steps with the wrist moving as in the expert's training and mass, friction and gains
    randomised per run; episodes trimmed `drop_margin_s` before each drop (DexterityGen: 2 s) go to
    out/data.hdf5."""
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
            ready_envs(env, start, steps)
            act, summary = load_expert(env, expert_folder(out, asset, skill), deterministic=False)
            for r in range(runs):
                ready_envs(env, start, steps)
                drawn = randomizer.apply()
                motion = WristMotion(expert_wrist(summary), seed=seed * 1000 + r)
                mode = skill_mode(skill)
                got = collect(
                    env,
                    act,
                    steps=steps,
                    obj=env.object_names[0],
                    mode=mode,
                    wrist_motion=motion,
                    drop_margin_s=drop_margin_s,
                )
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
        "drop_margin_s": drop_margin_s,
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
