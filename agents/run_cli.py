"""`dexforge run`, `dexforge resume` and `dexforge chat`: the agent from the command line."""

from __future__ import annotations

import json
import sys
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
    if kind == "tool":
        return f"{ev.get('role', '').replace('_', '-')} calls {ev.get('name')}"
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
    if data.get("kept_after"):  # where the chained episodes were lost
        console.print("chained episodes kept: " + " -> ".join(f"{k} {v:.0%}" for k, v in data["kept_after"].items()))
    if data.get("reason"):
        console.print(f"[red]why:[/] {data['reason']}")
    if data.get("dataset"):
        console.print(f"dataset: {result.run_dir / data['dataset']}")
    console.print(f"report: {data['report']}")


def _context(
    envs, budget, episodes, critic_rounds, retries, video, render, backend, memory=None, warm_start=None, seed=None
) -> AgentContext:
    return AgentContext.from_env(
        seed=seed,
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
SEED = typer.Option(
    None, "--seed", help="Seed of the scene's random layout draws and of RL (default: the proposed spec's, 0)."
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
    seed: int | None = SEED,
    as_json: bool = JSON,
) -> None:
    """Turn a request into a checked scene, a plan, rewards, trained policies, a dataset and a report.

    Models: with no DEXFORGE_BASE_URL every role runs on the offline reasoner; set DEXFORGE_BASE_URL (any
    OpenAI-compatible server), DEXFORGE_MODEL (and DEXFORGE_<ROLE>_MODEL) and OPENAI_API_KEY to use a model.
    The run lives in $DEXFORGE_HOME/runs/<run id>/; `dexforge resume <run id>` continues it after a crash.
    """
    from dexforge.agents import runner

    ctx = _context(envs, budget, episodes, critic_rounds, retries, video, render, backend, memory, warm_start, seed)
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


CHAT_STOP = typer.Option(
    None,
    "--stop-after",
    help="Runs end after 'check' (a checked scene, no approval asked) or 'decompose' (a plan) unless the "
    "request says otherwise. Default: the whole run.",
)
SESSION = typer.Option(None, "--session", help="Continue an earlier chat: its id, printed when it started.")


def chat(
    envs: int | None = ENVS,
    budget: int | None = BUDGET,
    episodes: int | None = EPISODES,
    video: bool | None = VIDEO,
    backend: str | None = BACKEND,
    stop_after: str | None = CHAT_STOP,
    session: str | None = SESSION,
) -> None:
    """A conversation with the dexforge assistant, a tool-calling agent that starts, shows, amends, approves,
    explains and retrains runs and searches the memory of earlier ones.

    \b
    What it understands without a model (offline):
      lift the cube                       start a run (any task sentence, or 'run ...'); add
                                          'stop after planning' or 'just check the scene' to end early
      show                                the current scene (objects, critic, renders) or plan and results
      status                              how the current run stands
      make the cube smaller               change a scene that waits for approval; while one waits,
      use the mug instead                 any reply that is not yes is taken as a change
      yes / ok / go ahead                 approve the scene: plan, rewards, training, report
      why did it fail / explain           the run's story: critiques, attempts, reward components
      retrain grasp with 20000 steps      train a subtask of a finished run again
      what do you remember about cubes    search the experience store
      help                                this list;  quit, exit or Ctrl-D end the chat

    Models: with no DEXFORGE_BASE_URL the assistant runs on those offline rules. With DEXFORGE_BASE_URL (any
    OpenAI-compatible server) it is a language model that converses freely and calls the same tools: it uses
    the proposer's settings (DEXFORGE_PROPOSER_MODEL or DEXFORGE_MODEL), or DEXFORGE_CHAT_MODEL and
    DEXFORGE_CHAT_BASE_URL when set; DEXFORGE_CHAT_VISION=1 shows it the renders as images; the key is read
    from OPENAI_API_KEY (or the variable DEXFORGE_API_KEY_ENV names). The roles of each run take their models
    as in `dexforge run`.

    \b
    Example session:
      you> lift the cube
        -> start_run(request='lift the cube')    a minute: scene proposed, checked, waiting
      you> make the cube a bit bigger
        -> amend(text='make the cube a bit bigger')
      you> yes
        -> approve()                             training ... report
      you> why did it fail
      you> retrain grasp with 50000 steps

    The conversation is kept in $DEXFORGE_HOME/chat/chat.sqlite (one thread per session) and every tool call
    in $DEXFORGE_HOME/chat/<session>.jsonl; `--session ID` continues a chat.
    """
    from dexforge.agents.chat.agent import ChatSession, chat_settings
    from dexforge.agents.chat.tools import ChatContext

    ctx = _context(envs, budget, episodes, None, None, video, True, backend).model_copy(update={"mode": "chat"})
    if stop_after:
        if stop_after not in ("check", "decompose"):
            raise typer.BadParameter(f"'{stop_after}': use check or decompose", param_hint="--stop-after")
        ctx = AgentContext.model_validate({**ctx.model_dump(), "stop_after": stop_after})
    settings = chat_settings()
    console = Console()
    with ChatSession(ChatContext(run=ctx, model=settings), session) as talk:
        console.print(f"[bold]dexforge chat[/] {talk.id}: assistant = {settings.label}")
        console.print("roles: " + ", ".join(f"{r} = {ctx.model_for(r).label}" for r in ctx.models))
        console.print("'help' lists what I understand; quit or Ctrl-D ends the chat.")
        while True:
            text = _ask(console, "you> ")
            if text is None or text.strip().lower() in {"quit", "exit"}:
                return
            if text.strip():
                _turn(console, talk, text)


def _turn(console: Console, talk, text: str) -> None:
    """One exchange: the tool calls as they are made, a run's progress, proposals, then the answer."""
    from langchain_core.messages import AIMessage, ToolMessage

    progress = Progress(console)
    progress.status.update("thinking")
    answer = ""
    try:
        for _node, message in talk.send(text, progress):
            if isinstance(message, AIMessage):
                for call in message.tool_calls:
                    args = ", ".join(f"{k}={v!r}" for k, v in call["args"].items())
                    console.print(f"  [dim]-> {call['name']}({args})[/]", highlight=False)
                if message.content and not message.tool_calls:
                    answer = str(message.content)
            elif isinstance(message, ToolMessage):
                art = message.artifact if isinstance(message.artifact, dict) else {}
                if message.name in ("start_run", "amend", "show") and art.get("scene"):
                    _show_proposal(console, art)
    finally:
        progress.stop()
    console.print("[bold]dexforge>[/] ", end="")
    console.print(answer, markup=False, highlight=False)


def _ask(console: Console, prompt: str) -> str | None:
    try:
        return console.input(prompt)
    except EOFError:
        return None


def _show_proposal(console: Console, view: dict) -> None:
    """A run's scene (a RunView of the chat tools): the scene, its renders, the critic."""
    title = "proposed scene" if view.get("status") == "waiting" else "scene"
    console.print(f"[bold]{title}[/] (run {view['run_id']}, {view.get('status')})")
    console.print(f"  {view.get('scene') or 'no scene'}", markup=False, highlight=False)
    for name, path in (view.get("renders") or {}).items():
        console.print(f"  {name}: {path}", markup=False, highlight=False)
    critique = view.get("critique") or {}
    for finding in critique.get("findings") or []:
        console.print(f"  critic: {finding}", markup=False, highlight=False)
    if critique.get("verdict"):
        console.print(f"  critic verdict: {critique['verdict']}", markup=False, highlight=False)
