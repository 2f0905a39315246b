"""`dexforge eval`: score the agent's behaviour with an eval suite, or show a training run's success."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def evaluate(
    target: Annotated[
        Path | None,
        typer.Argument(
            help="An eval suite: a YAML file or an installed suite's name (core, tools; default core), or a run "
            "folder written by `dexforge train`."
        ),
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", "-k", min=1, help="Tries per case (pass^k needs all).")] = 1,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Cases at a time (default: cores/2).")] = None,
    case: Annotated[list[str] | None, typer.Option("--case", help="Only this case (repeatable).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Results folder (default $DEXFORGE_HOME/evals/...).")
    ] = None,
    embedder: Annotated[
        str | None, typer.Option("--embedder", help="Memory embedder of the cases (default: the suite's).")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="live: score your model: the roles a scripted case stands in for (and offline cases' roles) ask the "
            "endpoint in DEXFORGE_BASE_URL / DEXFORGE_MODEL / OPENAI_API_KEY instead.",
        ),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only cases with this tag (repeatable).")] = None,
    skip_tag: Annotated[list[str] | None, typer.Option("--skip-tag", help="Leave out cases with this tag.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the pass rates as JSON.")] = False,
) -> None:
    """Run an eval suite: each case drives the real graph (offline, scripted or live models) with its faults,
    and its node path, tool calls, corrections, memories, status and success rates are checked. Prints
    pass@1 and pass^k per case, writes results.jsonl and summary.html, and exits 1 when a case fails.
    Given a `dexforge train` run folder instead, shows its per-subtask and whole-task success."""
    from dexforge.evals.report import write_summary
    from dexforge.evals.run import pass_rates, run_suite
    from dexforge.evals.suite import core_suite, installed_suite, load_suite
    from dexforge.home import home

    named = installed_suite(str(target)) if target is not None and not target.is_file() else None
    if target is not None and target.is_dir() and (named is None or (target / "outcome.json").exists()):
        from dexforge.policies.cli import evaluate as evaluate_run

        evaluate_run(target, as_json)
        return
    if backend not in (None, "live"):
        raise typer.BadParameter(f"'{backend}': the only backend to switch to is live", param_hint="--backend")
    if backend == "live" and not os.environ.get("DEXFORGE_BASE_URL"):
        raise typer.BadParameter(
            "set DEXFORGE_BASE_URL (and DEXFORGE_MODEL, OPENAI_API_KEY) first", param_hint="--backend"
        )
    path = named or target or core_suite()  # `dexforge eval tools`: an installed suite by name
    suite = load_suite(path)
    out = out or home() / "evals" / f"{time.strftime('%Y%m%d-%H%M%S')}-{suite.name}"
    console = Console(stderr=as_json)
    chosen = [
        c
        for c in suite.cases
        if (not case or c.name in case)
        and (not tag or set(tag) & set(c.tags))
        and not set(skip_tag or ()) & set(c.tags)
    ]
    console.print(f"suite {suite.name}: {len(chosen)} of {len(suite.cases)} case(s) x {repeat}, results in {out}")

    def show(result) -> None:
        mark = "[green]pass[/]" if result.passed else "[red]FAIL[/]"
        console.print(f"  {mark} {result.case} (try {result.repeat}, {result.wall_s:.0f} s)")
        if result.error:
            console.print(f"       {result.error}", markup=False)
        for check in result.checks:
            if not check["ok"]:
                console.print(
                    f"       {check['name']}: expected {check['expected']}, saw {check['seen']}", markup=False
                )

    results = run_suite(
        suite,
        out,
        repeat=repeat,
        jobs=jobs,
        only=case,
        embedder=embedder or suite.embedder,
        on_result=show,
        backend=backend,
        tags=tag,
        skip_tags=skip_tag,
    )
    rates = pass_rates(results, repeat)
    (out / "pass_rates.json").write_text(json.dumps(rates, indent=2))
    summary = write_summary(out / "summary.html", suite.name, results, rates, repeat)
    if as_json:
        typer.echo(json.dumps({"suite": suite.name, "out": str(out), **rates}))
    else:
        console.print(
            f"pass@1 {rates['pass@1']:.2f}, pass^{repeat} {rates[f'pass^{repeat}']:.2f}; "
            f"failed: {', '.join(rates['failed']) or 'none'}"
        )
        console.print(f"summary: {summary}")
    if rates["failed"]:
        raise typer.Exit(1)
