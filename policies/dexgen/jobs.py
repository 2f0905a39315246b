"""DexGen's worker jobs (see dexforge.jobs): collect, train, eval and assist on one folder, and the checks the
CLI and the tools make on that folder before they start a job.

A folder is `pipeline`'s layout (experts/<asset>/, data.hdf5, dexgen.pt); `eval` adds eval.json. Every job
reports `@progress` lines with one schema, so that one display serves them all:
    {"stage": str, "info": str, "done": int | None, "total": int | None, "event": "done" (when a stage ends)}

The jobs' arguments and results are the models of policies.dexgen.job_types (dexforge.jobs.TYPES: the worker
validates both sides). This module imports torch, Genesis and the pipeline only inside the jobs: the checks run
in the CLI's and the agent's processes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from dexforge.home import DexforgeError

DATA = "data.hdf5"
MODEL = "dexgen.pt"
RESULTS = "eval.json"
PREPARE_TIME = "collect and train take about 35 minutes on a CPU at the defaults"
"""For errors and help texts: four hold experts (PPO, at most 200k env steps each, stopping early at 95%
success) and four spin experts (400k each), two 400-step runs per expert at 64 envs, 6 epochs of training."""


def default_folder() -> Path:
    """$DEXFORGE_HOME/dexgen/default: where a plan's `dexgen` subtask looks for its model
    (policies.dexgen.assist.default_model) unless the subtask names one."""
    from dexforge.home import home

    return home() / "dexgen" / "default"


def require_data(folder: Path) -> None:
    if not (Path(folder) / DATA).is_file():
        raise DexforgeError(f"no {DATA} in {folder}; run `dexforge dexgen collect {folder}` first")


def require_model(folder: Path) -> None:
    if not (Path(folder) / MODEL).is_file():
        step = f"`dexforge dexgen train {folder}`"
        if not (Path(folder) / DATA).is_file():
            step = f"`dexforge dexgen collect {folder}` and then {step}"
        raise DexforgeError(f"no trained DexGen model ({MODEL}) in {folder}; run {step} first ({PREPARE_TIME})")


def expert_assets(folder: Path) -> list[str]:
    """The objects with a trained hold expert in folder/experts/, sorted."""
    root = Path(folder) / "experts"
    return sorted(p.parent.name for p in root.glob("*/expert.json")) if root.is_dir() else []


def require_expert(folder: Path, asset: str | None, skill: str = "hold") -> None:
    """An expert for `asset` (None: for any object) must be in the folder: eval and assist corrupt its actions."""
    have = expert_assets(folder)
    if skill != "hold":
        have = [a for a in have if (Path(folder) / "experts" / a / skill / "expert.json").is_file()]
    if have and (asset is None or asset in have):
        return
    which = f"for '{asset}' " if asset else ""
    label = "experts" if skill == "hold" else f"{skill} experts"
    listed = f" ({label}: {', '.join(have)})" if have else ""
    options = (f" --asset {asset}" if asset else "") + ("" if skill == "hold" else f" --skill hold --skill {skill}")
    raise DexforgeError(
        f"no {skill} expert {which}in {Path(folder) / 'experts'}{listed}; "
        f"run `dexforge dexgen collect {folder}{options}` to train it"
    )


# --- the jobs (run in a worker) --------------------------------------------------------------------------


def _emit(stage: str, info: str = "", *, done: int | None = None, total: int | None = None, **extra) -> None:
    from dexforge.jobs import emit_progress

    emit_progress(stage=stage, info=info.strip(), done=done, total=total, **extra)


def collect_job(
    out: str,
    assets: Sequence[str] | None = None,
    n_envs: int = 64,
    expert_steps: int = 200_000,
    spin_steps: int = 400_000,
    runs: int = 2,
    steps: int = 400,
    seed: int = 0,
    recollect: bool = False,
    skills: Sequence[str] | None = None,
) -> dict:
    """Train the experts that out/experts/ lacks (one per asset and skill, PPO), then roll them out into
    out/data.hdf5 (kept when it exists unless `recollect`)."""
    from dexforge.policies.dexgen import pipeline as P
    from dexforge.policies.dexgen.experts import ExpertConfig, expert_folder
    from dexforge.policies.dexgen.skills import DEFAULT_ASSETS, DEFAULT_SKILLS

    assets = tuple(assets or DEFAULT_ASSETS)
    skills = tuple(skills or DEFAULT_SKILLS)

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    experts = []
    for asset in assets:  # one at a time, so that each gets its own progress row
        stage = f"expert {asset}"
        _emit(stage, f"scripted pick, then PPO ({', '.join(skills)})")
        summaries = []
        for skill in skills:  # hold first: its scripted pick makes the held starts the others share
            summaries += P.train_experts(
                folder,
                [asset],
                n_envs=n_envs,
                cfg=ExpertConfig(env_steps=expert_steps if skill == "hold" else spin_steps, seed=seed),
                skills=[skill],
                log=lambda msg, stage=stage: _emit(stage, msg),
            )
        for summary in summaries:
            keys = ("skill", "best_success", "env_steps", "stop_reason", "skipped")
            experts.append({"asset": asset, **{k: summary.get(k) for k in keys}})
        best = [
            f"{e['skill']} {e['best_success']:.0%}" for e in experts[-len(summaries) :] if e["best_success"] is not None
        ]
        _emit(stage, summaries[0].get("skipped") or f"best success {', '.join(best) or '-'}", event="done")
    t_experts = time.time()
    data = folder / DATA
    kept = data.is_file() and not recollect
    if kept:
        _emit("collect", f"kept {data}; pass --recollect to collect again", event="done")
    else:
        pairs = [(a, k) for a in assets for k in skills if (expert_folder(folder, a, k) / "expert.json").is_file()]
        usable = list(dict.fromkeys(a for a, _ in pairs))
        if not usable:
            why = "; ".join(f"{e['asset']}: {e['skipped']}" for e in experts if e["skipped"])
            raise RuntimeError(f"no object has an expert to collect from ({why or 'none trained'})")
        total, runs_done = runs * len(pairs), 0

        def on_run(msg: str) -> None:
            nonlocal runs_done
            runs_done += 1  # collect_data logs once per finished run
            _emit("collect", msg, done=min(runs_done, total), total=total)

        _emit("collect", f"{len(pairs)} expert(s) x {runs} run(s) x {steps} steps", done=0, total=total)
        P.collect_data(folder, usable, n_envs=n_envs, runs=runs, steps=steps, seed=seed, skills=skills, log=on_run)
        _emit("collect", f"{data.stat().st_size / 1e6:.1f} MB", done=total, total=total, event="done")
    return {
        "folder": str(folder),
        "experts": experts,
        "data": str(data),
        "data_kept": kept,
        "data_mb": round(data.stat().st_size / 1e6, 2),
        "wall_s": {"experts": round(t_experts - t0, 1), "collect": round(time.time() - t_experts, 1)},
    }


def train_job(out: str, epochs: int = 6, seed: int = 0) -> dict:
    """Fit DexGen on out/data.hdf5 into out/dexgen.pt (replacing it)."""
    from dexforge.policies.dexgen import pipeline as P
    from dexforge.policies.dexgen.checkpoint import DexGen

    folder = Path(out)
    require_data(folder)
    done = 0

    def on_log(msg: str) -> None:
        nonlocal done
        if msg.lstrip().startswith("epoch"):  # train_model logs one line per finished epoch after its header
            done += 1
        _emit("train", msg, done=min(done, epochs), total=epochs)

    _emit("train", "loading the data", done=0, total=epochs)
    path = P.train_model(folder, epochs=epochs, seed=seed, log=on_log)
    provenance = DexGen.load(path).provenance
    final = (provenance.get("history") or [{}])[-1]
    _emit("train", f"diffusion {final.get('diffusion', float('nan')):.3f}", done=epochs, total=epochs, event="done")
    return {
        "model": str(path),
        "epochs": epochs,
        "windows": provenance.get("windows"),
        "train_s": provenance.get("train_s"),
        "final_losses": final,
    }


def _setup(folder: Path, asset: str | None, n_envs: int, skill: str = "hold"):
    """The model, the asset, an env at its held starts (evaluation layouts: seed 1, the data used 0), the
    expert's deterministic policy and the wrist motion it was trained under, as benchmarks/dexgen.py sets them."""
    from dexforge.policies.dexgen import pipeline as P
    from dexforge.policies.dexgen.checkpoint import DexGen
    from dexforge.policies.dexgen.experts import expert_folder, make_env
    from dexforge.sim.env import EnvState

    require_model(folder)
    require_expert(folder, asset, skill)
    bundle = DexGen.load(folder / MODEL)
    if asset is None:  # the first object the model was trained on that has such an expert here
        have = [a for a in expert_assets(folder) if (expert_folder(folder, a, skill) / "expert.json").is_file()]
        trained = [a for a in bundle.provenance.get("data", {}).get("assets", []) if a in have]
        asset = (trained or have)[0]
    env = make_env(asset, n_envs=n_envs, seed=1)
    start = EnvState.load(folder / "experts" / asset / "start_states.pt")
    P.ready_envs(env, start, 1)  # the expert's policy is built for the env in the fingers-only setting
    act, summary = P.load_expert(env, expert_folder(folder, asset, skill), deterministic=True)
    return bundle, asset, env, start, act, P.expert_wrist(summary)


def _summary(rows: list, corruptions: list) -> tuple[dict, dict | None]:
    """pipeline.summarize, with the judged corruption as {"judged_at", ...its summary} (the benchmark's target)."""
    from dexforge.policies.dexgen.evaluate import summarize

    summary, judged = summarize(rows, corruptions)
    return summary, None if judged is None else {"judged_at": judged.label, **summary[judged.label]}


def eval_result(
    asset: str, n_envs: int, seconds: float, rows: list, corruptions: list, latency: dict, skill: str = "hold"
) -> dict:
    """eval's JSON: every run (pipeline.HoldResult, without per-env times), the summary per corruption (and
    for a spin expert the goals), and the targets of benchmarks/dexgen.py (10x at the judged noise, <= 27 ms
    per action)."""
    from dexforge.policies.dexgen.evaluate import as_json, summarize_goals

    summary, judged = _summary(rows, corruptions)
    goals = summarize_goals(rows, corruptions) if skill != "hold" else None
    return {
        "asset": asset,
        "skill": skill,
        "envs": n_envs,
        "seconds_cap": seconds,
        "results": [{k: v for k, v in row.items() if k != "per_env"} for row in as_json(rows)],
        "summary": summary,
        **({"goals": goals} if goals else {}),
        "target": {
            "judged": judged,
            "meets_10x": bool(judged and judged["ratio"] >= 10),
            "latency_ms_batch1": latency,
            "meets_latency": latency["median_ms"] <= 27.0,
        },
    }


def eval_job(
    out: str,
    asset: str | None = None,
    n_envs: int = 64,
    seconds: float = 8.0,
    noise: Sequence[float] = (1.0, 2.0, 4.0),
    slow: Sequence[float] = (0.5,),
    strengths: Sequence[float] = (0.01, 0.1, 1.0),
    skill: str = "hold",
) -> dict:
    """How long the expert (`skill`: hold, or a spin expert, whose goals are counted too) keeps the object with
    its actions corrupted (none, each noise U(-e, e), each slowing U(0, a) * action), raw and through DexGen at
    each strength (the clean expert at the middle strength only); DexGen's latency per action; written to
    out/eval.json as well."""
    from dexforge.policies.dexgen import evaluate as E
    from dexforge.policies.dexgen.job_types import DexGenEvalResult

    if not strengths:
        raise ValueError("eval needs at least one guidance strength")
    folder = Path(out)
    t0 = time.time()
    bundle, asset, env, start, act, wrist = _setup(folder, asset, n_envs, skill)
    kw = {"seconds": seconds, "skill": skill, "wrist": wrist}
    noises, slows = dict.fromkeys([0.0, *noise]), dict.fromkeys(slow)  # each corruption once: rows match by label
    corruptions = [E.Corruption(noise=e) for e in noises] + [E.Corruption(slow=a) for a in slows]
    middle = [strengths[len(strengths) // 2]]
    runs = [(c, s) for c in corruptions for s in [None, *(strengths if c.noise or c.slow is not None else middle)]]
    rows = []
    _emit("eval", f"{asset}: {len(runs)} runs of {seconds:g} s at {n_envs} envs", done=0, total=len(runs))
    for i, (c, s) in enumerate(runs):
        if s is None:
            r = E.hold_duration(env, start, act, c, **kw)
        else:
            r = E.hold_duration(env, start, act, c, bundle=bundle, strength=s, **kw)
        rows.append(r)
        who = "expert" if s is None else f"DexGen {s:g}"
        goals = "" if r.goals is None else f", {r.goals:.2f} goals"
        _emit("eval", f"{c.label}, {who}: {r.hold_s:.2f} s{goals}", done=i + 1, total=len(runs))
    env.close()
    _emit("eval", "latency per action", done=len(runs), total=len(runs))
    latency = E.latency_per_action(bundle)
    result = DexGenEvalResult.model_validate(
        eval_result(asset, n_envs, seconds, rows, corruptions, latency, skill)
        | {"model": str(folder / MODEL), "wall_s": round(time.time() - t0, 1)}
    )  # checked before it is written: eval.json holds what the job returns
    (folder / RESULTS).write_text(result.model_dump_json(indent=2))
    _emit("eval", f"written to {folder / RESULTS}", done=len(runs), total=len(runs), event="done")
    return result.model_dump(mode="json")


def assist_job(
    out: str,
    asset: str | None = None,
    n_envs: int = 64,
    seconds: float = 8.0,
    noise: float = 1.0,
    strength: float = 1.0,
    skill: str = "hold",
) -> dict:
    """One corrupted-expert run (noise U(-noise, noise) on its actions) without and with DexGen at `strength`:
    both mean hold times (and goals, for a spin expert), the fractions held to the end and DexGen's latency
    per batched call."""
    from dexforge.policies.dexgen import evaluate as E

    bundle, asset, env, start, act, wrist = _setup(Path(out), asset, n_envs, skill)
    corruption = E.Corruption(noise=noise)
    kw = {"seconds": seconds, "skill": skill, "wrist": wrist}
    _emit("assist", f"{asset}, {corruption.label}: expert alone", done=0, total=2)
    raw = E.hold_duration(env, start, act, corruption, **kw)
    _emit("assist", f"expert alone {raw.hold_s:.2f} s; now through DexGen", done=1, total=2)
    helped = E.hold_duration(env, start, act, corruption, bundle=bundle, strength=strength, **kw)
    env.close()
    _emit("assist", f"through DexGen {helped.hold_s:.2f} s", done=2, total=2, event="done")
    return {
        "asset": asset,
        "skill": skill,
        "corruption": corruption.label,
        "strength": strength,
        "envs": n_envs,
        "seconds_cap": seconds,
        "raw_hold_s": raw.hold_s,
        "dexgen_hold_s": helped.hold_s,
        "ratio": round(helped.hold_s / max(raw.hold_s, 1e-3), 2),
        "raw_held_to_end": raw.held_to_end,
        "dexgen_held_to_end": helped.held_to_end,
        "latency_ms": helped.latency_ms,
        "model": str(Path(out) / MODEL),
        **({"raw_goals": raw.goals, "dexgen_goals": helped.goals} if raw.goals is not None else {}),
    }
