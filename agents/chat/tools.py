"""The chat assistant's tools: start, show, approve, amend, explain and retrain runs; search the memory.

Every tool takes a pydantic argument model (the schema the model sees is the one the call is validated
with) and returns (text for the model, artifact) with `response_format="content_and_artifact"`; the
artifact is a `RunView`, `Explanation`, `RetrainResult` or `MemoryHits` dump. A tool that cannot do what
was asked raises `ChatToolError` with what to do instead; the chat graph's ToolNode turns it (and a
validation error of the arguments) into an error tool message, and the conversation goes on.

The run a tool acts on is its `run_id` argument, else the conversation's current run (the chat state's
`run_id`, set from the last tool result that named a run). Runs are driven through `agents.runner`, each
as its own top-level graph with its own checkpointer (see `_isolated`).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import ToolException, tool
from langgraph.prebuilt import ToolRuntime
from pydantic import BaseModel, ConfigDict, Field

from dexforge.agents import runner
from dexforge.agents.chat.views import Explanation, RunView, attempt_facts, attempt_folders, explain, run_view
from dexforge.agents.context import AgentContext, ModelSettings
from dexforge.agents.runs import find_run, load_run, log_event, rel
from dexforge.home import DexforgeError
from dexforge.policies.job_types import TrainSubtaskResult

OnEvent = Callable[[str, Any], None]


class ChatContext(BaseModel):
    """Settings of one chat (the chat graph's runtime context)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    run: AgentContext = Field(
        default_factory=lambda: AgentContext(mode="chat"),
        description="Settings of the runs the chat starts (mode chat: each waits for approval of its scene).",
    )
    model: ModelSettings = Field(default_factory=ModelSettings, description="The assistant's model (offline: rules).")
    root: Path | None = Field(default=None, description="Folder of the runs; None: $DEXFORGE_HOME/runs.")
    max_tool_calls: int = Field(default=8, ge=1, le=50, description="Tool calls the assistant may make per turn.")
    log_path: Path | None = Field(default=None, description="The chat's JSONL log of tool calls (None: no log).")
    on_event: OnEvent | None = Field(
        default=None, exclude=True, description="Where a run's progress goes (mode, chunk) as in runner.start."
    )


class ChatToolError(ToolException):
    """What a tool could not do, and what to do instead (the model reads the text)."""


def _ctx(runtime: ToolRuntime) -> ChatContext:
    ctx = runtime.context
    if not isinstance(ctx, ChatContext):
        raise ChatToolError("the chat tools need the chat's context (ChatContext); run them in the chat graph")
    return ctx


def _run_dir(runtime: ToolRuntime, run_id: str | None) -> Path:
    """The folder of `run_id`, or of the conversation's current run."""
    wanted = run_id or (runtime.state or {}).get("run_id")
    if not wanted:
        raise ChatToolError(
            "there is no run in this conversation yet and no run_id was given; start one with start_run, "
            "or pass the id of an earlier run"
        )
    root = _ctx(runtime).root
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    try:
        return find_run(wanted, root)
    except DexforgeError as exc:
        raise ChatToolError(f"{exc}; check the id (or leave run_id out for the current run)") from None


def _isolated(fn: Callable[..., runner.RunResult], *args: Any, **kwargs: Any) -> runner.RunResult:
    """Run a run's graph outside the chat graph's context: inside a tool, LangGraph would take the run for a
    subgraph of the chat (the parent's config travels in context variables) and mix up checkpointers and
    interrupts. A fresh context makes it the top-level graph it is."""
    return contextvars.Context().run(fn, *args, **kwargs)


def _waiting(run_dir: Path, action: str) -> runner.RunResult:
    current = runner.inspect(run_dir)
    if current.status != "waiting":
        raise ChatToolError(
            f"run {current.run_id} is not waiting for approval (it is {current.status}), so there is nothing to "
            f"{action}; start a new run with start_run for a different scene"
        )
    return current


def _reply(view: RunView, full: bool = True) -> tuple[str, dict]:
    return view.text(full), view.model_dump(mode="json")


# start_run -------------------------------------------------------------------------------------------------
class StartArgs(BaseModel):
    request: str = Field(
        min_length=1, description="What the hand should do, in the person's words, e.g. 'put the apple in the bowl'."
    )
    stop_after: Literal["check", "decompose"] | None = Field(
        default=None,
        description="End the run early: 'check' ends once the scene is checked (no approval, nothing trained); "
        "'decompose' ends after the plan, once the scene is approved (nothing trained). Leave it out for the "
        "chat's default (the whole run: approval, then training).",
    )


@tool(args_schema=StartArgs, response_format="content_and_artifact")
def start_run(request: str, runtime: ToolRuntime, stop_after: Literal["check", "decompose"] | None = None):
    """Start a new run for a request: the scene is proposed, checked by physics and the critic, and the run then
    waits for the person's approval (status 'waiting'). Use it when the person asks for a new task. Returns the
    run id (it becomes the conversation's current run), the proposed scene, the critic's findings and the
    render paths. It takes about a minute. Errors: an empty request; a request no scene could be built for
    comes back as a failed run with the reason (ask the person to rephrase)."""
    ctx = _ctx(runtime)
    settings = ctx.run.model_copy(update={"mode": "chat", "stop_after": stop_after or ctx.run.stop_after})
    history = list((runtime.state or {}).get("requests") or [])
    try:
        result = _isolated(runner.start, request, settings, ctx.on_event, history=history, root=ctx.root)
    except DexforgeError as exc:
        raise ChatToolError(f"{exc}") from None
    return _reply(run_view(result, with_images=True))


# show, status --------------------------------------------------------------------------------------------
class RunArgs(BaseModel):
    run_id: str | None = Field(
        default=None, description="A run's id (or a unique prefix). Leave it out for the conversation's current run."
    )


@tool(args_schema=RunArgs, response_format="content_and_artifact")
def show(runtime: ToolRuntime, run_id: str | None = None):
    """Show a run in full: the current scene (objects, scales, positions, success), the critic's findings and
    the render paths; and the plan and results when it is further along. Use it when the person wants to see
    the scene or the plan. Errors: no current run (start one first) or an unknown run id."""
    result = runner.inspect(_run_dir(runtime, run_id))
    return _reply(run_view(result, with_images=True))


@tool(args_schema=RunArgs, response_format="content_and_artifact")
def status(runtime: ToolRuntime, run_id: str | None = None):
    """How a run stands: waiting (for approval), running (unfinished), succeeded, failed or stopped; the
    steps so far, subtask success rates and the reason it ended. Use it for "how is it going". Errors: no
    current run or an unknown run id."""
    result = runner.inspect(_run_dir(runtime, run_id))
    return _reply(run_view(result), full=False)


# approve, amend ------------------------------------------------------------------------------------------
@tool(args_schema=RunArgs, response_format="content_and_artifact")
def approve(runtime: ToolRuntime, run_id: str | None = None):
    """Approve the scene of a run that waits for approval: the run goes on (plan, rewards, training,
    collection, report) to its end, which can take from minutes to hours. Use it only when the person said yes
    to the scene. Returns the final status, success rates, the reason of a failure and the report path.
    Errors: the run is not waiting (it was approved already or has ended)."""
    ctx = _ctx(runtime)
    run_dir = _run_dir(runtime, run_id)
    _waiting(run_dir, "approve")
    result = _isolated(runner.resume, run_dir, ctx.on_event, reply="yes")
    return _reply(run_view(result))


class AmendArgs(BaseModel):
    text: str = Field(
        min_length=1,
        description="The change in the person's words, e.g. 'make the cube smaller' or 'use the mug instead'.",
    )
    run_id: str | None = Field(
        default=None, description="A run's id (or a unique prefix). Leave it out for the conversation's current run."
    )


@tool(args_schema=AmendArgs, response_format="content_and_artifact")
def amend(text: str, runtime: ToolRuntime, run_id: str | None = None):
    """Change the scene of a run that waits for approval: the proposer revises it from the person's words, the
    scene is checked again and the run waits again. Use it when the person says what to change. Returns the
    new scene, findings and renders. Errors: the run is not waiting; a text that reads as a yes (call approve
    for that)."""
    from dexforge.agents.scene_nodes import YES

    ctx = _ctx(runtime)
    if text.strip().lower().rstrip(".!") in YES:
        raise ChatToolError(f"'{text}' reads as an approval, not a change; call approve to go on with the scene")
    run_dir = _run_dir(runtime, run_id)
    _waiting(run_dir, "amend")
    result = _isolated(runner.resume, run_dir, ctx.on_event, reply=text)
    return _reply(run_view(result, with_images=True))


# explain -------------------------------------------------------------------------------------------------
@tool("explain", args_schema=RunArgs, response_format="content_and_artifact")
def explain_run(runtime: ToolRuntime, run_id: str | None = None):
    """Explain how a run went or why it failed, from its folder: the critic's rounds, the person's changes, the
    plan, every attempt of every subtask (success, env steps, stop reason, errors, how each reward component
    moved during training and which never fired), retrains, and the reason it ended. Use it for "why did it
    fail" or "how did it go". Errors: no current run or an unknown run id."""
    result = runner.inspect(_run_dir(runtime, run_id))
    explanation: Explanation = explain(result)
    return explanation.text, explanation.model_dump(mode="json")


# retrain ---------------------------------------------------------------------------------------------------
class RetrainArgs(BaseModel):
    subtask: str = Field(min_length=1, description="The subtask's name in the run's plan, e.g. 'grasp'.")
    budget: int = Field(ge=1, le=1_000_000_000, description="Environment steps (all envs together) to train for.")
    from_scratch: bool = Field(
        default=False, description="Start from a fresh policy instead of the subtask's latest one (rl subtasks)."
    )
    run_id: str | None = Field(
        default=None, description="A run's id (or a unique prefix). Leave it out for the conversation's current run."
    )


class RetrainResult(BaseModel):
    """One more attempt at a subtask of a finished run."""

    kind: Literal["retrain"] = "retrain"
    run_id: str
    run_dir: str
    status: str = Field(description="The run's status (a retrain does not change it).")
    subtask: str
    attempt: int
    folder: str
    budget: int
    success_rate: float | None = None
    episodes: int | None = None
    env_steps: int | None = None
    stop_reason: str | None = None
    start_states: str | None = Field(default=None, description="The end states it started from, if any.")
    init_checkpoint: str | None = Field(default=None, description="The policy it continued from, if any.")

    def text(self) -> str:
        rate = "-" if self.success_rate is None else f"{self.success_rate:.0%}"
        start = f"from {self.start_states}" if self.start_states else "from the initial layout"
        policy = f", continuing {self.init_checkpoint}" if self.init_checkpoint else ""
        return (
            f"retrained {self.subtask} of run {self.run_id} (attempt {self.attempt}, budget {self.budget:,} env steps, "
            f"{start}{policy}): success {rate} over {self.episodes} episodes, {self.env_steps or 0:,} env steps"
            + (f", stopped by {self.stop_reason}" if self.stop_reason else "")
            + f". Files: {self.folder}. The run's summary and report are unchanged."
        )


@tool(args_schema=RetrainArgs, response_format="content_and_artifact")
def retrain(subtask: str, budget: int, runtime: ToolRuntime, from_scratch: bool = False, run_id: str | None = None):
    """Train one subtask of a finished run again with another budget, in a new attempt folder, starting from the
    previous subtask's end states when the plan says so, and report its evaluated success. Use it when the
    person asks to retrain or train a subtask longer. Takes minutes (about 1 s per 100 env steps on a CPU).
    The run's own summary is left as it was; the attempt is recorded in its events. Errors: the run has not
    finished or has no plan; an unknown subtask (the error lists the plan's subtasks); the previous subtask
    has no end states to start from (retrain that one first); the training job failed (the error says why)."""
    from dexforge.policies.subtask import Plan
    from dexforge.sim.spec import load_yaml
    from dexforge.tools.common import ToolFailed, call_tool
    from dexforge.tools.train_tools import train_subtask

    run_dir = _run_dir(runtime, run_id)
    result = runner.inspect(run_dir)
    if result.status in ("waiting", "running"):
        raise ChatToolError(
            f"run {result.run_id} has not finished (it is {result.status}); retrain works on a finished run: "
            "approve it and let it end first"
        )
    state = result.state
    if not state.get("plan_yaml"):
        raise ChatToolError(f"run {result.run_id} ended before it had a plan, so it has no subtasks to retrain")
    plan = Plan.model_validate(load_yaml(state["plan_yaml"]))
    names = [s.name for s in plan.subtasks]
    if subtask not in names:
        raise ChatToolError(f"run {result.run_id} has no subtask '{subtask}'; its subtasks are {names}")
    index = names.index(subtask)
    sub = plan.subtasks[index]
    start = None
    if index > 0 and sub.start == "previous":
        start = _end_states(run_dir, state, names[index - 1])
        if start is None:
            raise ChatToolError(
                f"'{subtask}' starts from the end states of '{names[index - 1]}', which never succeeded in this run; "
                f"retrain '{names[index - 1]}' first"
            )
    if sub.controller == "rl":
        sub = sub.model_copy(update={"budget": sub.budget.model_copy(update={"env_steps": budget})})
        plan = plan.model_copy(update={"subtasks": [sub if s.name == subtask else s for s in plan.subtasks]})
    folders = attempt_folders(run_dir, subtask)
    attempt = int(folders[-1].name[len("attempt") :]) + 1 if folders else 0
    out_dir = run_dir / "subtasks" / subtask / f"attempt{attempt}"
    init = None if from_scratch or sub.controller != "rl" else _latest_checkpoint(folders)
    ctx = AgentContext.model_validate(load_run(run_dir)["context"])
    t0 = time.time()
    try:
        value = TrainSubtaskResult.model_validate(
            call_tool(
                train_subtask,
                spec_yaml=state["spec_yaml"],
                plan_yaml=plan.to_yaml(),
                index=index,
                out_dir=str(out_dir),
                start_states=start,
                n_envs=ctx.n_envs,
                eval_episodes=ctx.eval_episodes,
                backend=ctx.backend,
                timeout_s=ctx.job_timeout_s,
                init_checkpoint=init,
            )
        )
    except ToolFailed as exc:
        log_event(run_dir, "retrain", subtask=subtask, attempt=attempt, budget=budget, error=exc.message)
        raise ChatToolError(f"retraining '{subtask}' failed: {exc.message}") from None
    done = RetrainResult(
        run_id=result.run_id,
        run_dir=str(run_dir),
        status=result.status,
        subtask=subtask,
        attempt=attempt,
        folder=str(out_dir),
        budget=budget,
        success_rate=value.success_rate,
        episodes=value.episodes,
        env_steps=value.env_steps,
        stop_reason=value.stop_reason or None,
        start_states=start,
        init_checkpoint=init,
    )
    log_event(
        run_dir,
        "retrain",
        subtask=subtask,
        attempt=attempt,
        budget=budget,
        success_rate=done.success_rate,
        env_steps=done.env_steps,
        stop_reason=done.stop_reason,
        checkpoint=rel(run_dir, value.checkpoint),
        end_states=rel(run_dir, value.end_states),
        seconds=round(time.time() - t0, 1),
    )
    return done.text(), done.model_dump(mode="json")


def _end_states(run_dir: Path, state: dict, subtask: str) -> str | None:
    """End states of `subtask`: the attempt that passed in the run, else its latest attempt that had some."""
    passed = (state.get("passed") or {}).get(subtask) or {}
    if passed.get("end_states"):
        return str(run_dir / passed["end_states"])
    for folder in reversed(attempt_folders(run_dir, subtask)):
        facts = attempt_facts(folder, subtask)
        states = folder / "end_states.pt"
        if states.exists() and not facts.error and (facts.success_rate or 0.0) > 0.0:
            return str(states)
    return None


def _latest_checkpoint(folders: list[Path]) -> str | None:
    for folder in reversed(folders):
        if (folder / "checkpoint.pt").exists():
            return str(folder / "checkpoint.pt")
    return None


# memory_search ---------------------------------------------------------------------------------------------
class MemoryArgs(BaseModel):
    query: str = Field(min_length=1, description="What to look for, in words, e.g. 'lifting a cube'.")
    kind: Literal["task", "subtask", "failure"] | None = Field(
        default=None,
        description="task: past runs; subtask: trained subtasks (policies); failure: what went wrong before. "
        "Leave it out to search all three.",
    )
    k: int = Field(default=5, ge=1, le=20, description="How many records to return at most.")


class MemoryHit(BaseModel):
    id: str
    kind: str
    similarity: float = Field(description="1 = the same meaning; below ~0.35 is hardly related.")
    outcome: str = Field(description="succeeded / failed (tasks), passed rate (subtasks), failed (failures).")
    text: str


class MemoryHits(BaseModel):
    kind: Literal["memory"] = "memory"
    query: str
    where: str = Field(description="Which store was searched.")
    hits: list[MemoryHit] = Field(default_factory=list)

    def text(self) -> str:
        if not self.hits:
            return f"nothing in the experience store ({self.where}) for '{self.query}' yet; it fills as runs end"
        rows = [f"{h.id} [{h.kind}, similarity {h.similarity:.2f}, {h.outcome}]: {h.text}" for h in self.hits]
        return f"{len(rows)} record(s) nearest to '{self.query}' in {self.where}:\n" + "\n".join(rows)


@tool(args_schema=MemoryArgs, response_format="content_and_artifact")
def memory_search(query: str, kind: Literal["task", "subtask", "failure"] | None = None, k: int = 5):
    """Search the experience store (past runs, trained subtasks, failures) for the records nearest to a query in
    meaning, with their similarity and outcome. Use it for "what do you remember about ..." or before starting
    a task like an earlier one. Errors: the store cannot be opened (another process may hold it, or it was
    built with another embedder); runs work without it."""
    from dexforge.memory.records import FailureRecord, SubtaskRecord, TaskRecord
    from dexforge.memory.store import ExperienceStore

    kinds = [kind] if kind else ["task", "subtask", "failure"]
    try:
        with ExperienceStore.open(writer=False) as store:
            where = store.where
            hits = [h for one in kinds for h in store.search(query, kind=one, k=k)]
    except DexforgeError as exc:
        raise ChatToolError(f"the experience store is unavailable: {exc}; runs still work without it") from None
    found = []
    for h in sorted(hits, key=lambda h: h.similarity, reverse=True)[:k]:
        rec = h.record
        if isinstance(rec, TaskRecord):
            rate = rec.metrics.task_success_rate
            outcome = rec.status + ("" if rate is None else f", whole-task success {rate:.0%}")
            text = f"task '{rec.request}'" + (f"; reason: {rec.reason}" if rec.reason else "")
        elif isinstance(rec, SubtaskRecord):
            outcome = "success " + ("-" if rec.success_rate is None else f"{rec.success_rate:.0%}")
            text = f"subtask {rec.name} ({rec.controller}): {rec.description}"
        else:
            assert isinstance(rec, FailureRecord)
            outcome = "failed"
            text = f"in '{rec.request}' ({rec.stage} {rec.subtask}): {rec.reason}"
        found.append(MemoryHit(id=h.id, kind=h.kind, similarity=round(h.similarity, 3), outcome=outcome, text=text))
    result = MemoryHits(query=query, where=where, hits=found)
    return result.text(), result.model_dump(mode="json")


TOOLS = [start_run, show, status, approve, amend, explain_run, retrain, memory_search]
