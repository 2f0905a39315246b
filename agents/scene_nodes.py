"""Nodes from the request to an accepted scene: recall, propose, check (physics + critic), approve."""

from __future__ import annotations

from pathlib import Path

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import TypeAdapter

from dexforge.agents import experience, faults
from dexforge.agents.context import AgentContext
from dexforge.agents.corrections import apply_corrections
from dexforge.agents.roles import ask_role
from dexforge.agents.runs import create_run, log_event, rel
from dexforge.agents.schemas import Correction, Critique, CritiqueBrief, ProposeBrief, TaskProposal
from dexforge.agents.state import AgentState
from dexforge.home import DexforgeError
from dexforge.sim.job_types import CheckSceneResult
from dexforge.sim.spec import TaskSpec
from dexforge.tools.base import Scope
from dexforge.tools.common import ToolFailed, call_tool, progress
from dexforge.tools.sim_tools import check_scene

_CORRECTIONS = TypeAdapter(list[Correction])
YES = {"", "y", "yes", "ok", "okay", "approve", "approved", "go", "go ahead", "looks good", "train", "train it"}


def recall(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Memories of similar past runs. A graph started without a run directory (a LangGraph client
    through `langgraph dev`) gets one here."""
    update: dict = {}
    if not state.get("run_dir"):
        run_id, run_dir = create_run(state["request"], runtime.context or AgentContext())
        update = {"run_id": run_id, "run_dir": str(run_dir), "status": "running"}
    run_dir = update.get("run_dir") or state["run_dir"]
    memories: list[str] = []
    examples: list[dict] = []
    if runtime.context is None or runtime.context.memory:
        text = " ".join([*state.get("history", []), state["request"]])
        try:
            memories = experience.recall(text)
            examples = experience.examples(text)
        except DexforgeError as exc:  # a store that cannot be read must not stop the run
            log_event(run_dir, "recall_failed", error=str(exc))
    log_event(run_dir, "recall", memories=memories, examples=[e["id"] for e in examples])
    return {**update, "memories": memories, "examples": examples, "node_path": ["recall"]}


def _save_version(state: AgentState, spec: TaskSpec, source: str, seed: int | None = None) -> dict:
    if seed is not None and spec.seed != seed:  # the run's seed rules the layout draws and RL (dexforge run --seed)
        spec = spec.model_copy(update={"seed": seed})
    specs = list(state.get("specs", []))
    version = len(specs) + 1
    path = Path(state["run_dir"]) / "specs" / f"v{version}" / "spec.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    spec.save(path)
    specs.append({"version": version, "spec": rel(state["run_dir"], path), "source": source, "critique": None})
    return {"spec_yaml": spec.to_yaml(), "specs": specs}


def propose(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """A new spec: the critic's corrections applied by code, or the proposer's answer (first proposal,
    a revision after a critique without usable corrections, or the user's amendment)."""
    ctx = runtime.context
    previous = TaskSpec.from_yaml(state["spec_yaml"]) if state.get("spec_yaml") else None
    update: dict = {"node_path": ["propose"], "pending": [], "amendment": None, "critique_feedback": None}
    if previous is not None and state.get("pending") and not state.get("amendment"):
        corrections = _CORRECTIONS.validate_python(state["pending"])
        spec = apply_corrections(previous, corrections)
        log_event(state["run_dir"], "corrections_applied", corrections=state["pending"])
        progress(event="propose", source="corrections", n=len(corrections))
        return {**update, **_save_version(state, spec, "corrections", ctx.seed)}
    brief = ProposeBrief(
        request=state["request"],
        history=state.get("history", []),
        memories=state.get("memories", []),
        previous=previous,
        amendment=state.get("amendment"),
        error=state.get("critique_feedback"),
    )
    answer, calls = ask_role("proposer", brief, ctx, scope=_scope(state, ctx, "proposer"))
    assert isinstance(answer, TaskProposal)
    source = "amendment" if state.get("amendment") else "proposer"
    log_event(state["run_dir"], "proposal", source=source, family=answer.family, reasoning=answer.reasoning)
    progress(event="propose", source=source, spec=answer.spec.name)
    if ctx.stop_after == "propose":
        update.update(status="stopped", reason="stopped after the proposal, as asked (stop_after=propose)")
    return {
        **update,
        "family": answer.family,
        "model_calls": calls,
        **_save_version(state, answer.spec, source, ctx.seed),
    }


def check(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Physics checks and renders in a worker, then the critic's findings, corrections and verdict."""
    ctx = runtime.context
    spec = TaskSpec.from_yaml(state["spec_yaml"])
    specs = [dict(s) for s in state["specs"]]
    version = specs[-1]
    out_dir = Path(state["run_dir"]) / "specs" / f"v{version['version']}"
    rounds = state.get("critic_round", 0)
    try:
        checked = CheckSceneResult.model_validate(
            call_tool(
                check_scene,
                spec_yaml=state["spec_yaml"],
                out_dir=str(out_dir),
                render=ctx.render,
                backend=ctx.backend,
                timeout_s=min(ctx.job_timeout_s, 900.0),
            )
        )
    except ToolFailed as exc:  # the scene cannot even be built: the proposer must change it
        version["critique"] = {"findings": [exc.message], "corrections": [], "verdict": "revise"}
        log_event(state["run_dir"], "check_failed", error=exc.message)
        if rounds >= ctx.max_critic_rounds:
            return {
                "specs": specs,
                "node_path": ["check"],
                "verdict": "fail",
                "status": "failed",
                "reason": exc.message,
            }
        return {
            "specs": specs,
            "node_path": ["check"],
            "verdict": "revise",
            "critic_round": rounds + 1,
            "critique_feedback": f"the scene could not be built or checked: {exc.message}",
        }
    version["findings"] = checked.findings
    version["renders"] = {k: rel(state["run_dir"], v) for k, v in checked.renders.items()}

    def validate(answer: Critique) -> None:
        if answer.verdict == "revise" and answer.corrections:
            apply_corrections(spec, answer.corrections)

    brief = CritiqueBrief(
        request=state["request"],
        spec=spec,
        findings=checked.findings,
        renders=list(checked.renders.values()),
        round=rounds,
        memories=state.get("memories", []),
    )
    images = [Path(p) for p in checked.renders.values()] if ctx.render else []
    scope = _scope(state, ctx, "critic", spec_dir=str(out_dir), findings=checked.findings)
    critique, calls = ask_role("critic", brief, ctx, scope=scope, images=images, validate=validate)
    assert isinstance(critique, Critique)
    if (forced := faults.forced_verdict(ctx.faults, rounds)) is not None:
        finding = f"{faults.INJECTED} the critic's verdict in round {rounds + 1} is forced to '{forced.verdict}'"
        critique = Critique(findings=[finding], corrections=[], verdict=forced.verdict)
        log_event(state["run_dir"], "fault", fault="critic_verdict", round=rounds, verdict=forced.verdict)
    verdict = critique.verdict
    if verdict == "revise" and rounds >= ctx.max_critic_rounds:
        verdict = "accept"  # out of rounds: train the scene as it is, and say so
        log_event(state["run_dir"], "critic_rounds_exhausted", rounds=rounds)
    version["critique"] = critique.model_dump(mode="json")
    log_event(state["run_dir"], "critique", verdict=critique.verdict, findings=critique.findings)
    progress(event="critique", round=rounds + 1, verdict=critique.verdict, findings=len(critique.findings))
    update: dict = {"specs": specs, "node_path": ["check"], "verdict": verdict, "model_calls": calls}
    if verdict == "revise":
        update["critic_round"] = rounds + 1
        update["pending"] = [c.model_dump(mode="json") for c in critique.corrections]
        update["critique_feedback"] = "The critic asked for changes: " + "; ".join(critique.findings)
    elif verdict == "accept" and ctx.stop_after == "check":
        update["status"] = "stopped"
        update["reason"] = "stopped after the scene check, as asked (stop_after=check)"
    return update


def _scope(state: AgentState, ctx: AgentContext, role: str, **fields) -> Scope:
    """What the role's tools act on: this run, its current spec (and check), the context's limits."""
    return Scope(
        run_dir=state["run_dir"],
        role=role,
        request=state["request"],
        spec_yaml=state.get("spec_yaml"),
        backend=ctx.backend,
        job_timeout_s=min(ctx.job_timeout_s, 900.0),
        memory=ctx.memory,
        vision=ctx.model_for(role).vision,
        **fields,
    )


def approve(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Chat mode: show the accepted scene and wait for the user's approval or amendment."""
    version = state["specs"][-1]
    reply = interrupt(
        {
            "kind": "approve",
            "spec": state["spec_yaml"],
            "renders": version.get("renders", {}),
            "critique": version.get("critique"),
            "question": "Train this scene? Answer yes, or say what to change.",
        }
    )
    text = str(reply or "").strip()
    if text.lower().rstrip(".!") in YES:
        log_event(state["run_dir"], "approved")
        return {"approved": True, "node_path": ["approve"]}
    log_event(state["run_dir"], "amendment", text=text)
    return {"approved": False, "amendment": text, "node_path": ["approve"]}
