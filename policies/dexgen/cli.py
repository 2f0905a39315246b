"""`dexforge dexgen collect | train | eval | assist`: DexGen's pipeline on one folder, each step a worker job.

The folder holds experts/<object>/, data.hdf5, dexgen.pt and eval.json (policies.dexgen.pipeline); the jobs'
requests, logs and results go to FOLDER/jobs/. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dexforge.home import DexforgeError
from dexforge.policies.dexgen import job_types as T
from dexforge.policies.dexgen import jobs as J

app = typer.Typer(
    help="DexGen, a learnt finger controller that keeps a held object in hand while another policy (or a "
    "coarse command) moves the fingers: collect its data, train it, measure it.\n\n"
    "Order: collect, then train, then eval or assist, all on one folder (default "
    "$DEXFORGE_HOME/dexgen/default, where a plan's `dexgen` subtask looks for its model). "
    f"{J.PREPARE_TIME.capitalize()}.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)

Folder = Annotated[
    Path | None,
    typer.Argument(
        metavar="FOLDER", help="The DexGen folder (default $DEXFORGE_HOME/dexgen/default).", show_default=False
    ),
]
Envs = Annotated[int, typer.Option("--envs", min=1, help="Parallel environments.")]
Timeout = Annotated[float, typer.Option(min=1.0, help="Wall-clock limit of the job, s.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON (progress stays on stderr).")]


def _folder(folder: Path | None) -> Path:
    return folder if folder is not None else J.default_folder()


Result = TypeVar("Result", bound=BaseModel)


def _run(kind: str, args: BaseModel, result_model: type[Result], folder: Path, timeout: float) -> Result:
    """Run a dexgen job in a worker with a progress row per stage; its result, or a DexforgeError."""
    from dexforge.jobs import Job, run_job

    job = Job(kind=kind, args=args.model_dump(mode="json"), run_dir=str(folder / "jobs"), timeout_s=timeout)
    err.print(f"{kind.removeprefix('dexgen_')} in {folder} (worker log in {folder / 'jobs'})")
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        rows: dict[str, int] = {}

        def on_line(line: str) -> None:
            if not line.startswith("@progress "):
                return
            try:
                p = json.loads(line.removeprefix("@progress "))
            except json.JSONDecodeError:
                return
            stage = str(p.get("stage", "?"))
            if stage not in rows:
                rows[stage] = bar.add_task(stage, total=None, info="")
            update: dict = {"info": str(p.get("info", ""))[:90]}
            if p.get("total") is not None:
                update |= {"total": p["total"], "completed": p.get("done") or 0}
            elif p.get("event") == "done":
                update |= {"total": 1, "completed": 1}
            bar.update(rows[stage], **update)

        result = run_job(job, on_line=on_line)
    if not result.ok:
        raise DexforgeError(f"dexgen {kind.removeprefix('dexgen_')} failed: {result.error} (log: {result.log})")
    return result_model.model_validate(result.value)


@app.command()
def collect(
    folder: Folder = None,
    asset: Annotated[
        list[str] | None,
        typer.Option(
            "--asset",
            "-a",
            help="An object to hold: a catalog id, optionally scaled as cube@1.2 (repeatable; default: cube, ball, "
            "can and cube@1.2).",
        ),
    ] = None,
    skill: Annotated[
        list[str] | None,
        typer.Option(
            "--skill",
            "-s",
            help="An expert per object: hold (keep it while the wrist moves) or spin_normal, spin_thumb, "
            "spin_fingers (turn it in the hand about that palm axis); repeatable; default: hold and spin_normal.",
        ),
    ] = None,
    envs: Envs = 64,
    expert_steps: Annotated[int, typer.Option(min=1, help="PPO env steps per hold expert (at most).")] = 200_000,
    spin_steps: Annotated[int, typer.Option(min=1, help="PPO env steps per spin expert.")] = 400_000,
    runs: Annotated[int, typer.Option(min=1, help="Collection runs per expert (new randomisation each).")] = 2,
    steps: Annotated[int, typer.Option(min=1, help="Steps per collection run (0.01 s each).")] = 400,
    seed: Annotated[int, typer.Option(help="Seed of the experts' training and of the collection.")] = 0,
    recollect: Annotated[bool, typer.Option(help="Collect again although FOLDER/data.hdf5 exists.")] = False,
    timeout: Timeout = 4 * 3600.0,
) -> None:
    """Train in-hand experts per object, then record them while the wrist moves: FOLDER/data.hdf5.

    A hold expert (PPO on the fingers, FOLDER/experts/OBJECT/) keeps the object in hand while the wrist
    moves and turns against gravity; a spin expert (FOLDER/experts/OBJECT/spin_AXIS/) turns it about a palm
    axis. Their rollouts, labelled hold or rotate, with mass, friction and gains randomised per run and cut
    before every drop, are DexGen's training data. The scripted power grasp that gives the experts their
    held starts tries 24 grasps; an object it holds in none is skipped. Experts and data already in
    FOLDER are kept (delete an expert's folder to retrain it; --recollect to collect again). On 2 CPU cores
    about 25 minutes at the defaults, most of it the experts (a hold expert stops at 95% success, a spin
    expert uses all of --spin-steps). Next: `dexforge dexgen train FOLDER`.
    """
    where = _folder(folder)
    from dexforge.policies.dexgen.skills import DEFAULT_ASSETS, DEFAULT_SKILLS, skill_mode

    assets = [_asset_id(a) for a in (asset or DEFAULT_ASSETS)]
    skills = list(dict.fromkeys(skill or DEFAULT_SKILLS))
    for k in skills:
        try:
            skill_mode(k)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--skill") from None
    args = T.DexGenCollectArgs(
        out=str(where),
        assets=assets,
        n_envs=envs,
        expert_steps=expert_steps,
        spin_steps=spin_steps,
        runs=runs,
        steps=steps,
        seed=seed,
        recollect=recollect,
        skills=skills,
    )
    value = _run("dexgen_collect", args, T.DexGenCollectResult, where, timeout)
    table = Table(title=f"experts in {where / 'experts'}")
    for col in ("object", "skill", "best success", "env steps", "stopped"):
        table.add_column(col)
    for e in value.experts:
        if e.skipped:
            table.add_row(e.asset, e.skill, "skipped", "-", e.skipped)
        else:
            table.add_row(
                e.asset,
                e.skill,
                "-" if e.best_success is None else f"{e.best_success:.0%}",
                "-" if e.env_steps is None else f"{e.env_steps:,}",
                e.stop_reason or "-",
            )
    out.print(table)
    kept = " (kept from before; --recollect to collect again)" if value.data_kept else ""
    out.print(f"data {value.data}, {value.data_mb:.1f} MB{kept}")
    out.print(f"next: dexforge dexgen train {where}")


@app.command()
def train(
    folder: Folder = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the data.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and the batches.")] = 0,
    timeout: Timeout = 2 * 3600.0,
) -> None:
    """Train DexGen (keypoint diffusion + inverse dynamics) on FOLDER/data.hdf5 into FOLDER/dexgen.pt.

    Replaces a dexgen.pt already there. Needs `dexforge dexgen collect FOLDER` first. About 10 minutes on 2
    CPU cores at the defaults. Next: `dexforge dexgen eval FOLDER` or `dexforge dexgen assist FOLDER`.
    """
    where = _folder(folder)
    J.require_data(where)
    args = T.DexGenTrainArgs(out=str(where), epochs=epochs, seed=seed)
    value = _run("dexgen_train", args, T.DexGenTrainResult, where, timeout)
    losses = value.final_losses
    out.print(
        f"model {value.model}: {value.windows:,} windows, {value.epochs} epochs in {value.train_s} s; "
        f"final diffusion loss {losses.diffusion:.3f}, inverse mse {losses.inverse_mse:.4f}"
    )
    out.print(f"next: dexforge dexgen eval {where}")


def _asset_id(asset: str) -> str:
    """A catalog id, with its "@scale" kept (e.g. "cube@1.2"); an unknown name fails with the closest ids."""
    from dexforge.policies.dexgen.skills import parse_asset
    from dexforge.sim.catalog import default_catalog

    name, scale = parse_asset(asset)
    found = default_catalog().object(name).id
    return found if scale == 1.0 else f"{found}@{scale:g}"


def _check_ready(where: Path, asset: str | None, skill: str = "hold") -> str | None:
    """Fail before a worker starts: the model and an expert to corrupt must be there; the asset's catalog id."""
    from dexforge.policies.dexgen.skills import skill_mode

    try:
        skill_mode(skill)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--skill") from None
    asset = _asset_id(asset) if asset else None
    J.require_model(where)
    J.require_expert(where, asset, skill)
    return asset


Asset = Annotated[
    str | None,
    typer.Option(help="The object whose expert is corrupted (default: the first one DexGen was trained on)."),
]
Seconds = Annotated[float, typer.Option(min=0.1, help="Simulated seconds per run; hold times are capped at it.")]
Skill = Annotated[
    str,
    typer.Option(
        "--skill",
        "-s",
        help="Which expert is corrupted: hold, or a spin expert (spin_normal, spin_thumb, spin_fingers), whose "
        "goals (45-degree turns in the hand before the drop) are counted too.",
    ),
]


@app.command("eval")
def evaluate(
    folder: Folder = None,
    asset: Asset = None,
    envs: Envs = 64,
    seconds: Seconds = 8.0,
    noise: Annotated[
        list[float] | None,
        typer.Option(min=0.0, help="Uniform action noise U(-e, e) to try (repeatable; default 1, 2, 4)."),
    ] = None,
    slow: Annotated[
        list[float] | None,
        typer.Option(min=0.0, help="Slowing U(0, a) * action to try (repeatable; default 0.5)."),
    ] = None,
    strength: Annotated[
        list[float] | None,
        typer.Option(min=0.0, help="DexGen guidance strengths to try (repeatable; default 0.01, 0.1, 1)."),
    ] = None,
    skill: Skill = "hold",
    as_json: AsJson = False,
    timeout: Timeout = 2 * 3600.0,
) -> None:
    """How long a corrupted expert keeps the object in hand, alone and through DexGen (DexterityGen's test).

    The expert's actions get uniform noise U(-e, e) for each --noise, or are slowed to U(0, a) * action for
    each --slow, and run alone and through DexGen at each --strength while the wrist wanders; the table
    shows the mean time to drop, capped at --seconds, and for a spin expert (--skill spin_normal, ...) the
    goals reached in that time. Also DexGen's latency per action (batch 1). Results go to FOLDER/eval.json.
    On 2 CPU cores about 15 minutes at the defaults (18 runs of 8 s at 64 envs).
    """
    where = _folder(folder)
    asset = _check_ready(where, asset, skill)
    args = T.DexGenEvalArgs(
        out=str(where),
        asset=asset,
        n_envs=envs,
        seconds=seconds,
        noise=noise or [1.0, 2.0, 4.0],
        slow=slow or [0.5],
        strengths=strength or [0.01, 0.1, 1.0],
        skill=skill,
    )
    value = _run("dexgen_eval", args, T.DexGenEvalResult, where, timeout)
    if as_json:
        typer.echo(json.dumps(value.model_dump(mode="json"), indent=2))
        return
    spin = skill != "hold"
    title = f"{value.asset} ({skill} expert): mean time in hand, s (cap {seconds:g} s, {envs} envs)"
    table = Table(title=title)
    for col in ("corruption", "controller", "hold (s)", "held to end", *(["goals"] if spin else []), "ms per call"):
        table.add_column(col)
    for r in value.results:
        who = "expert alone" if r.strength is None else f"DexGen, strength {r.strength:g}"
        ms = "-" if r.latency_ms is None else f"{r.latency_ms:.1f}"
        goals = [f"{r.goals:.2f}" if r.goals is not None else "-"] if spin else []
        table.add_row(r.corruption, who, f"{r.hold_s:.2f}", f"{r.held_to_end:.0%}", *goals, ms)
    out.print(table)
    target = value.target
    judged = target.judged
    if judged:
        verdict = "met" if target.meets_10x else "not met"
        out.print(
            f"at {judged.judged_at} the expert alone drops within 3 s ({judged.raw_hold_s:.2f} s); DexGen holds "
            f"{judged.ratio:g}x as long at strength {judged.best_strength:g} (target 10x: {verdict})"
        )
    else:
        out.print("the expert alone held for 3 s or more at every noise: no corruption to judge DexGen at")
    lat = target.latency_ms_batch1
    out.print(
        f"latency per action (batch 1, {lat.torch_threads} thread(s)): median {lat.median_ms} ms, "
        f"p95 {lat.p95_ms} ms (target 27 ms: {'met' if target.meets_latency else 'not met'})"
    )
    out.print(f"results in {where / J.RESULTS}")


@app.command()
def assist(
    folder: Folder = None,
    asset: Asset = None,
    envs: Envs = 64,
    seconds: Seconds = 8.0,
    noise: Annotated[float, typer.Option(min=0.0, help="Uniform action noise U(-e, e) on the expert.")] = 1.0,
    strength: Annotated[
        float, typer.Option(min=0.0, help="DexGen guidance: 0 ignores the expert, large values follow it.")
    ] = 1.0,
    skill: Skill = "hold",
    as_json: AsJson = False,
    timeout: Timeout = 3600.0,
) -> None:
    """One noisy expert, alone and through DexGen: how long each keeps the object in hand.

    A quick check that a trained model helps (eval runs the whole grid). About 1-2 minutes on 2 CPU cores
    at the defaults (two runs of 8 s at 64 envs, plus building the scene).
    """
    where = _folder(folder)
    asset = _check_ready(where, asset, skill)
    args = T.DexGenAssistArgs(
        out=str(where), asset=asset, n_envs=envs, seconds=seconds, noise=noise, strength=strength, skill=skill
    )
    value = _run("dexgen_assist", args, T.DexGenAssistResult, where, timeout)
    if as_json:
        typer.echo(json.dumps(value.model_dump(mode="json"), indent=2))
        return
    table = Table(title=f"{value.asset}, {value.corruption}: mean time in hand (cap {seconds:g} s, {envs} envs)")
    for col in ("controller", "hold (s)", "held to end"):
        table.add_column(col)
    table.add_row("expert alone", f"{value.raw_hold_s:.2f}", f"{value.raw_held_to_end:.0%}")
    table.add_row(
        f"through DexGen, strength {strength:g}", f"{value.dexgen_hold_s:.2f}", f"{value.dexgen_held_to_end:.0%}"
    )
    out.print(table)
    ms = "" if value.latency_ms is None else f"; {value.latency_ms} ms per batched call"
    out.print(f"through DexGen it stays in hand {value.ratio:g}x as long{ms}")
    if value.raw_goals is not None and value.dexgen_goals is not None:
        out.print(
            f"goals (45-degree turns) per run: expert alone {value.raw_goals:.2f}, DexGen {value.dexgen_goals:.2f}"
        )
