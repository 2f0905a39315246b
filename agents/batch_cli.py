"""`dexforge overnight`: an unattended batch of tasks with a live view and a morning report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


def _view(batch) -> Group:
    counts = batch.counts()
    left = max(0.0, batch.deadline - time.time())
    head = Text(
        f"batch {batch.batch_id}: {counts['succeeded']} succeeded, {counts['failed']} failed, "
        f"{counts['stopped']} stopped, {counts['running']} running; "
        f"{int(left // 3600)} h {int(left % 3600 // 60)} min left"
        + (f", {len(batch.tasks)}/{batch.settings.max_tasks} tasks" if batch.settings.max_tasks else "")
    )
    table = Table(show_edge=False)
    for col in ("#", "request", "status", "success", "wall"):
        table.add_column(col)
    for t in batch.tasks[-12:]:
        wall = t.wall_s if t.wall_s is not None else (time.time() - t.started if t.started else None)
        rate = "-" if t.task_success_rate is None else f"{t.task_success_rate:.0%}"
        table.add_row(str(t.index), t.request, t.status, rate, "-" if wall is None else f"{wall:.0f} s")
    return Group(head, table)


def overnight(
    hours: Annotated[
        float | None, typer.Option("--hours", help="Start no task after this long (default 8; on --resume: from now).")
    ] = None,
    max_tasks: Annotated[int | None, typer.Option("--max-tasks", min=1, help="Stop after this many tasks.")] = None,
    request: Annotated[
        list[str] | None, typer.Option("--request", "-r", help="A request to run first (repeatable).")
    ] = None,
    requests_file: Annotated[
        Path | None, typer.Option("--requests", help="A file of requests, one per line, run first.")
    ] = None,
    invent: Annotated[bool, typer.Option("--invent/--no-invent", help="Invent more tasks when the list ends.")] = True,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the invented tasks.")] = 0,
    task_timeout: Annotated[float, typer.Option("--task-timeout", help="Wall seconds per task, then stopped.")] = 3600,
    budget: Annotated[int | None, typer.Option("--budget", help="Cap on each RL subtask's env steps.")] = None,
    envs: Annotated[int | None, typer.Option("--envs", help="Parallel envs per task (default 128).")] = None,
    retries: Annotated[int | None, typer.Option("--retries", help="Reward rewrites per failed subtask.")] = None,
    stop_after: Annotated[
        str | None, typer.Option("--stop-after", help="Each task ends after 'check' or 'decompose'.")
    ] = None,
    render: Annotated[bool, typer.Option("--render/--no-render", help="Render scenes (the gallery).")] = True,
    max_similarity: Annotated[
        float, typer.Option("--max-similarity", help="Drop an invented task this close (cosine) to a held one.")
    ] = 0.9,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue this batch (its id or folder).")] = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Show the live view.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the batch summary as JSON at the end.")] = False,
) -> None:
    """Generate and train many tasks unattended: your requests first, then tasks the proposer invents away
    from what memory already holds. Each task is its own run, stopped at its wall-time budget; a failure
    is recorded and the batch goes on. After a kill or a reboot, `--resume BATCH_ID` continues where it
    stopped. The morning report (report.html in the batch folder) lists every task, a gallery, the
    batch's diversity and the failures by cause."""
    from dexforge.agents.batch import BatchSettings, load_batch, new_batch, run_batch
    from dexforge.agents.batch_report import summary

    console = Console(stderr=as_json)
    if resume:
        batch = load_batch(resume)
        if hours is not None:  # an explicit --hours on resume moves the deadline
            batch.deadline = time.time() + hours * 3600
            batch.save()
        console.print(f"resuming batch {batch.batch_id} ({len(batch.tasks)} task(s) so far)")
    else:
        given = list(request or [])
        if requests_file is not None:
            given += [line.strip() for line in requests_file.read_text().splitlines() if line.strip()]
        agent = {
            k: v
            for k, v in {"rl_budget": budget, "n_envs": envs, "max_retries": retries, "stop_after": stop_after}.items()
            if v is not None
        }
        if not render:
            agent["render"] = False
        from dexforge.agents.context import AgentContext

        AgentContext.from_env(**agent)  # bad settings fail here, before anything runs
        settings = BatchSettings(
            hours=8.0 if hours is None else hours,
            max_tasks=max_tasks,
            requests=given,
            invent=invent,
            seed=seed,
            task_timeout_s=task_timeout,
            max_similarity=max_similarity,
            agent=agent,
        )
        batch = new_batch(settings)
        console.print(f"batch {batch.batch_id} in {batch.dir}")
    if live and console.is_terminal:
        with Live(_view(batch), console=console, refresh_per_second=1) as view:
            batch = run_batch(batch, on_tick=lambda b: view.update(_view(b)))
    else:
        batch = run_batch(batch, on_tick=None)
        for t in batch.tasks:
            console.print(
                f"  #{t.index} {t.status}: {t.request}" + (f" ({t.reason})" if t.reason else ""), markup=False
            )
    data = summary(batch)
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        div = data["diversity"]
        console.print(
            f"{data['counts']['succeeded']}/{data['tasks']} succeeded; diversity "
            f"{'-' if div is None else f'{div:.3f}'} (mean pairwise cosine similarity, lower is more diverse)"
        )
        console.print(f"morning report: {batch.dir / 'report.html'}")
