"""`dexforge run`, `dexforge resume` and `dexforge chat`: the agent from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dexforge.agents.context import AgentContext

NODE_TEXT = {
    "recall": "recalling similar tasks",
    "propose": "proposing a scene",
    "check": "checking the scene (physics, renders, critic)",
    "approve": "waiting for your approval",
    "decompose": "planning subtasks",
    "write_reward": "writing a reward program",
    "train": "training",
    "judge": "judging",
    "collect": "collecting the dataset (chained episodes, video)",
    "archive": "archiving",
    "report": "writing the report",
}


class Progress:
    """Rich progress: the node that just finished, critic rounds, training progress, retries."""

    def __init__(self, console: Console):
        self.console = console
        self.status = console.status("starting")
        self.status.start()

    def __call__(self, mode: str, chunk: Any) -> None:
        if mode == "run":
            self.console.print(f"[bold]run[/] {chunk['run_id']}  ({chunk['run_dir']})")
            return
        if mode == "updates":
            for node, update in chunk.items():
                if node == "__interrupt__":
                    continue
                self.console.print(f"  [green]done[/] {node}{_detail(node, update or {})}")
            return
        if mode == "custom" and isinstance(chunk, dict):
            self.status.update(_custom(chunk))

    def stop(self) -> None:
        self.status.stop()


def _detail(node: str, update: dict) -> str:
    if node == "check" and update.get("verdict"):
        return f": critic says {update['verdict']}"
    if node == "judge" and update.get("decision"):
        return f": {update['decision']}" + (f" ({update['failure']})" if update.get("failure") else "")
    if node == "train" and update.get("attempts"):
        last = [a for v in update["attempts"].values() for a in v][-1:]
        if last:
            a = last[0]
            return f": success {a.get('success_rate', 0):.0%}" + (f", error: {a['error']}" if a.get("error") else "")
    if node == "collect" and update.get("collect"):
        rate = update["collect"].get("task_success_rate")
        return f": whole-task success {rate:.0%}" if rate is not None else ""
    return ""


def _custom(ev: dict) -> str:
    if "iteration" in ev:
        rate = ev.get("success_rate")
        rate_text = "-" if rate is None else f"{rate:.0%}"
        return (
            f"training {ev.get('subtask', '')}: {ev.get('env_steps', 0):,} env steps, success {rate_text}, "
            f"reward {ev.get('reward_mean', 0):.2f}"
        )
    kind = ev.get("event", "")
    return {
        "check": "checking the scene",
        "critique": f"critic round {ev.get('round')}: {ev.get('verdict')}",
        "plan": f"plan: {', '.join(ev.get('subtasks', []))}",
        "collect": "collecting chained episodes",
        "train": f"training subtask {ev.get('index', '')}",
    }.get(kind, NODE_TEXT.get(kind, kind))


def _summary(console: Console, result) -> None:
    data = result.to_json()
    table = Table(title=f"{data['status']}: {data['run_id']}")
    table.add_column("subtask")
    table.add_column("success", justify="right")
    for name, rate in data["subtasks"].items():
        table.add_row(name, "-" if rate is None else f"{rate:.0%}")
    console.print(table)
    rate = data["task_success_rate"]
    console.print(f"whole-task success: {'-' if rate is None else f'{rate:.0%}'};  env steps: {data['env_steps']}")
    if data.get("reason"):
        console.print(f"[red]why:[/] {data['reason']}")
    if data.get("dataset"):
        console.print(f"dataset: {result.run_dir / data['dataset']}")
    console.print(f"report: {data['report']}")


def _context(
    envs, budget, episodes, critic_rounds, retries, video, render, backend, memory=None, warm_start=None
) -> AgentContext:
    return AgentContext.from_env(
        memory=memory,
        warm_start=warm_start,
        n_envs=envs,
        rl_budget=budget,
        eval_episodes=episodes,
        max_critic_rounds=critic_rounds,
        max_retries=retries,
        video=video,
        render=render,
        backend=backend,
    )


def _finish(result, as_json: bool, console: Console) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
    else:
        _summary(console, result)
    if result.status not in ("succeeded", "stopped"):
        raise typer.Exit(1)


ENVS = typer.Option(None, "--envs", help="Parallel envs for training and evaluation (default 128).")
BUDGET = typer.Option(None, "--budget", help="Cap on each RL subtask's env steps (default: the plan's).")
EPISODES = typer.Option(None, "--episodes", help="Evaluation episodes (default 64).")
ROUNDS = typer.Option(None, "--critic-rounds", help="Critic revise rounds at most (default 3).")
RETRIES = typer.Option(None, "--retries", help="Reward rewrites per failed RL subtask (default 2).")
VIDEO = typer.Option(None, "--video/--no-video", help="Film a chained episode for the report.")
RENDER = typer.Option(None, "--render/--no-render", help="Render the scene for the critic and report.")
BACKEND = typer.Option(None, "--backend", help="Genesis backend of the workers: cpu or gpu.")
MEMORY = typer.Option(None, "--memory/--no-memory", help="Recall similar past tasks and archive this run (default on).")
WARM = typer.Option(
    None,
    "--warm-start/--no-warm-start",
    help="Start RL subtasks from the stored policy of the most similar subtask trained before (default on).",
)
STOP = typer.Option(
    None,
    "--stop-after",
    help="End after 'propose' (a spec), 'check' (a checked scene) or 'decompose' (a plan); nothing is trained. "
    "Default: the whole run.",
)
JSON = typer.Option(False, "--json", help="Print one JSON object (status, run id, success rates, ...).")


def run(
    request: str = typer.Argument(..., help='What the hand should do, e.g. "put the apple in the bowl".'),
    envs: int | None = ENVS,
    budget: int | None = BUDGET,
    episodes: int | None = EPISODES,
    critic_rounds: int | None = ROUNDS,
    retries: int | None = RETRIES,
    video: bool | None = VIDEO,
    render: bool | None = RENDER,
    backend: str | None = BACKEND,
    memory: bool | None = MEMORY,
    warm_start: bool | None = WARM,
    stop_after: str | None = STOP,
    as_json: bool = JSON,
) -> None:
    """Turn a request into a checked scene, a plan, rewards, trained policies, a dataset and a report.

    Models: with no DEXFORGE_BASE_URL every role runs on the offline reasoner; set DEXFORGE_BASE_URL (any
    OpenAI-compatible server), DEXFORGE_MODEL (and DEXFORGE_<ROLE>_MODEL) and OPENAI_API_KEY to use a model.
    The run lives in $DEXFORGE_HOME/runs/<run id>/; `dexforge resume <run id>` continues it after a crash.
    """
    from dexforge.agents import runner

    ctx = _context(envs, budget, episodes, critic_rounds, retries, video, render, backend, memory, warm_start)
    if stop_after:
        if stop_after not in ("propose", "check", "decompose"):
            raise typer.BadParameter(f"'{stop_after}': use propose, check or decompose", param_hint="--stop-after")
        ctx = AgentContext.model_validate({**ctx.model_dump(), "stop_after": stop_after})
    console = Console(stderr=as_json)
    console.print("models: " + ", ".join(f"{r} = {ctx.model_for(r).label}" for r in ctx.models))
    progress = Progress(console)
    try:
        result = runner.start(request, ctx, progress)
    finally:
        progress.stop()
    _finish(result, as_json, console)


def resume(
    run_id: str = typer.Argument(..., help="The run's id (or a unique prefix, or its folder)."),
    as_json: bool = JSON,
) -> None:
    """Continue a run from its last completed step (after a crash or kill); finished subtasks are kept."""
    from dexforge.agents import runner
    from dexforge.agents.runs import find_run

    run_dir = find_run(run_id)
    console = Console(stderr=as_json)
    progress = Progress(console)
    try:
        result = runner.resume(run_dir, progress)
    finally:
        progress.stop()
    _finish(result, as_json, console)


def chat(
    envs: int | None = ENVS,
    budget: int | None = BUDGET,
    episodes: int | None = EPISODES,
    video: bool | None = VIDEO,
    backend: str | None = BACKEND,
) -> None:
    """A conversation: each request's scene is shown for approval; answer yes, or say what to change
    ("make the cube smaller", "use the mug instead"). Later requests can refer to earlier ones. Ctrl-D quits."""
    from dexforge.agents import runner

    ctx = _context(envs, budget, episodes, None, None, video, True, backend).model_copy(update={"mode": "chat"})
    console = Console()
    history: list[str] = []
    while True:
        request = _ask(console, "you> ")
        if request is None or request.strip() in {"quit", "exit"}:
            return
        if not request.strip():
            continue
        progress = Progress(console)
        try:
            result = runner.start(request, ctx, progress, history=history)
            while result.status == "waiting":
                progress.stop()
                _show_proposal(console, result)
                reply = _ask(console, "approve? (yes / what to change)> ")
                progress = Progress(console)
                result = runner.resume(result.run_dir, progress, reply="yes" if reply is None else reply)
        finally:
            progress.stop()
        history.append(request)
        _summary(console, result)


def _ask(console: Console, prompt: str) -> str | None:
    try:
        return console.input(prompt)
    except EOFError:
        return None


def _show_proposal(console: Console, result) -> None:
    payload = result.interrupt or {}
    console.print("[bold]proposed scene[/]")
    console.print(payload.get("spec", ""))
    for view, path in (payload.get("renders") or {}).items():
        console.print(f"  {view}: {Path(result.run_dir) / path}")
    critique = payload.get("critique") or {}
    for finding in critique.get("findings", []):
        console.print(f"  critic: {finding}")
