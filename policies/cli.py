"""`dexforge train`, `dexforge eval` and `dexforge dataset inspect`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dexforge.policies.job_types import RunPlanArgs, RunPlanResult

out = Console()
dataset_app = typer.Typer(help="Trajectory datasets (HDF5, robomimic layout).", rich_markup_mode=None)


def train(
    spec: Annotated[Path, typer.Argument(help="Task spec YAML.")],
    plan: Annotated[Path, typer.Argument(help="Plan YAML: the subtasks (see policies/examples/).")],
    budget: Annotated[int | None, typer.Option(help="Env steps per RL subtask (overrides the plan).")] = None,
    envs: Annotated[int, typer.Option(help="Parallel environments.")] = 128,
    episodes: Annotated[int, typer.Option(help="Evaluation episodes per subtask and for the whole task.")] = 64,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Run folder; default a new one in the runs dir.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Wall-clock limit of the whole job, s.")] = 4 * 3600.0,
) -> None:
    """Train a plan's subtasks, measure the whole task and save successful trajectories.

    Runs in a worker process; progress is shown here, and the run folder holds the reward programs,
    TensorBoard logs, checkpoints, stats.jsonl, outcome.json and dataset.hdf5.
    """
    from dexforge.home import runs_dir
    from dexforge.jobs import Job, run_job
    from dexforge.policies.subtask import Plan
    from dexforge.sim.spec import TaskSpec

    task = TaskSpec.load(spec)
    the_plan = Plan.load(plan)
    the_plan.check_against(task)
    if budget is not None:
        subs = [
            s.model_copy(update={"budget": s.budget.model_copy(update={"env_steps": budget})})
            if s.controller == "rl"
            else s
            for s in the_plan.subtasks
        ]
        the_plan = the_plan.model_copy(update={"subtasks": subs})
    run = out_dir or runs_dir() / f"train-{task.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    args = RunPlanArgs(
        spec_yaml=task.to_yaml(), plan_yaml=the_plan.to_yaml(), run_dir=str(run), n_envs=envs, eval_episodes=episodes
    )
    job = Job(kind="run_plan", args=args.model_dump(mode="json"), run_dir=str(run), timeout_s=timeout)
    out.print(f"run folder {run}")
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=out) as bar:
        rows: dict[str, int] = {}

        def on_line(line: str) -> None:
            if not line.startswith("@progress "):
                return
            p = json.loads(line.removeprefix("@progress "))
            name = p.get("subtask", "?")
            if name not in rows:
                rows[name] = bar.add_task(name, total=None, info="")
            if p.get("event") == "done":
                bar.update(rows[name], total=1, completed=1, info=f"success {p['success_rate']:.0%}")
            elif "env_steps" in p:
                rate = "-" if p.get("success_rate") is None else f"{p['success_rate']:.0%}"
                info = f"steps {p['env_steps']:,}  success {rate}  reward {p['reward_mean']:.2f}"
                bar.update(rows[name], info=info)

        result = run_job(job, on_line=on_line)
    if not result.ok:
        from dexforge.home import DexforgeError

        raise DexforgeError(f"training failed: {result.error} (log: {result.log})")
    _print_outcome(RunPlanResult.model_validate(result.value))


def _print_outcome(outcome: RunPlanResult) -> None:
    table = Table(title=f"{outcome.task}: whole-task success {outcome.task_success_rate:.0%}")
    for col in ("subtask", "controller", "success", "env steps", "stopped"):
        table.add_column(col)
    for s in outcome.subtasks:
        table.add_row(s.name, s.controller, f"{s.success_rate:.0%}", f"{s.env_steps:,}", s.stop_reason)
    out.print(table)
    if outcome.kept_after:  # where the chained episodes were lost
        out.print("chained episodes kept: " + " -> ".join(f"{k} {v:.0%}" for k, v in outcome.kept_after.items()))
    if outcome.dataset:
        out.print(f"dataset {outcome.dataset} ({outcome.episodes} evaluation episodes)")


def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder written by `dexforge train`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Show a training run's measured success: per subtask and for the whole task."""
    from pydantic import ValidationError

    from dexforge.home import DexforgeError

    path = run / "outcome.json"
    if not path.is_file():
        raise DexforgeError(f"no outcome.json in {run}; is it a `dexforge train` run folder?")
    outcome = json.loads(path.read_text())
    if as_json:
        typer.echo(json.dumps(outcome, indent=2))
        return
    try:
        plan_outcome = RunPlanResult.model_validate(outcome)
    except ValidationError as exc:
        from dexforge.sim.spec import describe_validation_error

        raise DexforgeError(f"{path} is not a `dexforge train` outcome: {describe_validation_error(exc)}") from None
    _print_outcome(plan_outcome)


@dataset_app.command("inspect")
def dataset_inspect(
    file: Annotated[Path, typer.Argument(help="An HDF5 dataset written by dexforge.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Episodes, steps, keys and shapes of a trajectory dataset."""
    from dexforge.policies.dataset import inspect

    info = inspect(file)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    out.print(
        f"{info['path']}: task {info['task']}, {info['episodes']} episodes ({info['successes']} successful), "
        f"{info['steps']} steps, mean length {info['mean_length']:.0f}"
    )
    for key, shape in info["keys"].items():
        out.print(f"  {key}: (T, {', '.join(map(str, shape))})" if shape else f"  {key}: (T,)")
