"""What the chat's tools say about a run, read from its folder: the run's view (scene, plan, results) and an
explanation of how it went (critiques, amendments, every training attempt with its reward components).

Both are pydantic models: the tools send `text()` to the model and the model's dump as the tool message's
artifact (what the CLI shows, the offline model summarises and the tests check). Paths in them are absolute.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from dexforge.agents.runner import RunResult
from dexforge.policies.job_types import TrainSubtaskResult
from dexforge.policies.subtask import Plan
from dexforge.sim.spec import TaskSpec, load_yaml


class Critic(BaseModel):
    """The critic's last word on the current scene."""

    verdict: str | None = Field(default=None, description="accept | revise | fail, or None before any critique.")
    findings: list[str] = Field(default_factory=list, description="What the critic noticed, in words.")


class RunView(BaseModel):
    """A run as the chat shows it: the artifact of start_run, show, status, amend and approve."""

    kind: Literal["run"] = "run"
    run_id: str = Field(description="The run's id (its folder's name).")
    run_dir: str = Field(description="The run's folder.")
    request: str = Field(description="The person's sentence the run started from.")
    status: str = Field(description="waiting (for approval) | running (unfinished) | succeeded | failed | stopped.")
    question: str | None = Field(default=None, description="What the run asks while it waits.")
    scene: str | None = Field(default=None, description="The current scene in words (hand, objects, success).")
    renders: dict[str, str] = Field(default_factory=dict, description="View name -> image of the current scene.")
    critique: Critic | None = Field(default=None, description="The critic's verdict and findings on that scene.")
    plan: list[str] = Field(default_factory=list, description="Subtasks in order, 'name (controller)'.")
    node_path: list[str] = Field(default_factory=list, description="The graph's steps so far.")
    subtasks: dict[str, float | None] = Field(default_factory=dict, description="Subtask -> evaluated success rate.")
    task_success_rate: float | None = Field(default=None, description="Whole-task success of the chained episodes.")
    env_steps: int | None = Field(default=None, description="Environment steps spent on training.")
    reason: str | None = Field(default=None, description="Why the run failed or stopped.")
    report: str | None = Field(default=None, description="The HTML report, once written.")
    images: list[str] = Field(default_factory=list, description="Images a vision model should see with this result.")

    def text(self, full: bool = True) -> str:
        """The result in words for the model; `full=False` gives the status lines only."""
        head = f"run {self.run_id}: {STATUS_TEXT.get(self.status, self.status)}"
        lines = [head, f"request: {self.request}"]
        if self.reason:
            lines.append(f"reason: {self.reason}")
        if self.node_path:
            lines.append("steps so far: " + " -> ".join(self.node_path))
        if full and self.scene:
            lines.append("scene: " + self.scene)
        if full and self.critique is not None:
            findings = "; ".join(self.critique.findings) or "no findings"
            lines.append(f"critic: {self.critique.verdict or 'no verdict'} ({findings})")
        if full and self.renders:
            lines.append("renders: " + ", ".join(f"{k}: {v}" for k, v in self.renders.items()))
        if self.plan:
            lines.append("plan: " + ", ".join(self.plan))
        if self.subtasks:
            lines.append("subtask success: " + ", ".join(f"{k} {_pct(v)}" for k, v in self.subtasks.items()))
        if self.task_success_rate is not None or self.env_steps:
            lines.append(f"whole-task success: {_pct(self.task_success_rate)}; env steps: {self.env_steps or 0:,}")
        if self.report:
            lines.append(f"report: {self.report}")
        if self.question:
            lines.append(f"question: {self.question}")
        return "\n".join(lines)


STATUS_TEXT = {
    "waiting": "waiting for approval of its scene",
    "running": "not finished (working in another process, or interrupted: `dexforge resume` continues it)",
    "succeeded": "succeeded",
    "failed": "failed",
    "stopped": "stopped early, as asked",
}


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def scene_text(spec_yaml: str) -> str:
    """A spec in one paragraph: name, hand, objects with scale and position, success predicates."""
    spec = TaskSpec.from_yaml(spec_yaml)
    hand = f"{spec.hand.asset} ({spec.hand.mount}) at {_xyz(spec.hand.pose.pos)}"
    objects = []
    for o in spec.objects:
        name = o.key if o.key == o.asset else f"{o.key} ({o.asset})"
        objects.append(f"{name} scale {o.scale:g} at {_xyz(o.pose.pos)}" + (" fixed" if o.fixed else ""))
    success = []
    for p in spec.success:
        params = p.model_dump(mode="json", exclude={"kind", "object"})
        success.append(f"{p.kind}({', '.join([p.object, *(f'{k}={v}' for k, v in params.items())])})")
    return (
        f"{spec.name}: hand {hand}; objects: {', '.join(objects) or 'none'}; success: {', '.join(success)}; "
        f"{spec.episode_length} steps per episode"
    )


def _xyz(pos: tuple[float, float, float]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in pos) + ") m"


def plan_lines(plan_yaml: str | None) -> list[str]:
    if not plan_yaml:
        return []
    plan = Plan.model_validate(load_yaml(plan_yaml))
    return [f"{s.name} ({s.controller})" for s in plan.subtasks]


def run_view(result: RunResult, with_images: bool = False) -> RunView:
    """The view of a run after start/resume/inspect; `with_images` lists the scene's renders as images."""
    data = result.to_json()
    state = result.state
    run_dir = Path(result.run_dir)
    payload = result.interrupt if isinstance(result.interrupt, dict) else {}
    spec_yaml = payload.get("spec") or state.get("spec_yaml")
    versions = state.get("specs") or []
    last = versions[-1] if versions else {}
    renders_rel = payload.get("renders") or last.get("renders") or {}
    critique = payload.get("critique") if payload else last.get("critique")
    renders = {view: str(run_dir / path) for view, path in renders_rel.items()}
    return RunView(
        run_id=result.run_id,
        run_dir=str(run_dir),
        request=state.get("request") or _meta_request(run_dir),
        status=result.status,
        question=payload.get("question") if result.status == "waiting" else None,
        scene=scene_text(spec_yaml) if spec_yaml else None,
        renders=renders,
        critique=Critic(verdict=critique.get("verdict"), findings=list(critique.get("findings") or []))
        if critique
        else None,
        plan=plan_lines(state.get("plan_yaml")),
        node_path=list(data.get("node_path") or []),
        subtasks=data.get("subtasks") or {},
        task_success_rate=data.get("task_success_rate"),
        env_steps=data.get("env_steps"),
        reason=data.get("reason"),
        report=data.get("report"),
        images=[p for p in renders.values() if Path(p).exists()] if with_images else [],
    )


def _meta_request(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text()).get("request", "")


# explaining a run --------------------------------------------------------------------------------------------
class AttemptFacts(BaseModel):
    """One training (or measuring) attempt of a subtask, from its folder."""

    subtask: str
    attempt: int
    folder: str
    success_rate: float | None = None
    episodes: int | None = None
    env_steps: int | None = None
    stop_reason: str | None = None
    error: str | None = None
    best_training_success: float | None = Field(default=None, description="Best success seen while training.")
    components: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Reward component -> (mean at the first, at the last training iteration)."
    )


class Explanation(BaseModel):
    """How a run went, or why it failed: the artifact of explain."""

    kind: Literal["explanation"] = "explanation"
    run_id: str
    run_dir: str
    status: str
    reason: str | None = None
    attempts: list[AttemptFacts] = Field(default_factory=list)
    text: str = Field(description="The explanation in words.")


def attempt_folders(run_dir: Path, subtask: str) -> list[Path]:
    """subtasks/<subtask>/attempt<N> folders in order of N (folders set aside after a crash are left out)."""
    base = run_dir / "subtasks" / subtask
    found = [p for p in base.glob("attempt*") if p.is_dir() and p.name[len("attempt") :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len("attempt") :]))


def attempt_facts(folder: Path, subtask: str) -> AttemptFacts:
    facts = AttemptFacts(subtask=subtask, attempt=int(folder.name[len("attempt") :]), folder=str(folder))
    outcome = folder / "outcome.json"
    if outcome.exists():
        value = TrainSubtaskResult.model_validate_json(outcome.read_text())
        facts.success_rate = value.success_rate
        facts.episodes = value.episodes
        facts.env_steps = value.env_steps
        facts.stop_reason = value.stop_reason or None
        facts.error = value.error
    stats = folder / "stats.jsonl"
    rows = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()] if stats.exists() else []
    if rows:
        first, last = rows[0].get("components", {}), rows[-1].get("components", {})
        facts.components = {k: (round(first.get(k, 0.0), 4), round(last.get(k, 0.0), 4)) for k in last}
        rates = [r["success_rate"] for r in rows if r.get("success_rate") is not None]
        facts.best_training_success = max(rates) if rates else None
    return facts


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def explain(result: RunResult) -> Explanation:
    """The run's story from its folder: scene rounds, amendments, the plan, every attempt, retrains, the end."""
    run_dir = Path(result.run_dir)
    view = run_view(result)
    lines = [f"run {view.run_id} ('{view.request}'): {STATUS_TEXT.get(view.status, view.status)}"]
    if view.reason:
        lines.append(f"why it ended so: {view.reason}")
    events = _events(run_dir)
    for e in events:
        kind = e.get("kind")
        if kind == "critique":
            findings = "; ".join(e.get("findings") or []) or "no findings"
            lines.append(f"critic: {e.get('verdict')} ({findings})")
        elif kind == "check_failed":
            lines.append(f"the scene could not be checked: {e.get('error')}")
        elif kind == "amendment":
            lines.append(f"you asked for a change: '{e.get('text')}'")
        elif kind == "approved":
            lines.append("you approved the scene")
        elif kind == "critic_rounds_exhausted":
            lines.append(
                f"the critic still wanted changes after {e.get('rounds')} rounds; the scene was used as it was"
            )
    if view.plan:
        lines.append("plan: " + ", ".join(view.plan))
    passed = set((result.state.get("passed") or {}).keys())
    names = [p.split(" (")[0] for p in view.plan] or sorted(p.name for p in (run_dir / "subtasks").glob("*"))
    reflections = {
        (name, a.get("attempt")): a.get("reflection")
        for name, attempts in (result.state.get("attempts") or {}).items()
        for a in attempts
    }
    retrained = {(e.get("subtask"), e.get("attempt")) for e in events if e.get("kind") == "retrain"}
    all_facts: list[AttemptFacts] = []
    for name in names:
        facts = [attempt_facts(f, name) for f in attempt_folders(run_dir, name)]
        all_facts += facts
        if not facts:
            lines.append(f"{name}: not reached")
            continue
        lines.append(f"{name}: {'passed' if name in passed else 'not passed'}, {len(facts)} attempt(s)")
        for f in facts:
            lines.append(
                "  " + _attempt_text(f) + (" (a retrain from the chat)" if (name, f.attempt) in retrained else "")
            )
            if reflections.get((name, f.attempt)):
                lines.append(f"    the reward-writer's change before it: {reflections[(name, f.attempt)]}")
    for e in events:
        if e.get("kind") == "judged_failed":
            lines.append(f"judged {e.get('subtask')}: {e.get('why')}")
        elif e.get("kind") == "retrain":
            lines.append(
                f"retrained {e.get('subtask')} (attempt {e.get('attempt')}, budget {e.get('budget'):,} env steps): "
                + (f"error {e.get('error')}" if e.get("error") else f"success {_pct(e.get('success_rate'))}")
            )
        elif e.get("kind") in ("run_failed", "archive_failed", "recall_failed"):
            lines.append(f"{e['kind'].replace('_', ' ')}: {e.get('reason') or e.get('error')}")
    if view.task_success_rate is not None:
        lines.append(f"whole-task success of the chained episodes: {_pct(view.task_success_rate)}")
    if view.report:
        lines.append(f"report: {view.report}")
    return Explanation(
        run_id=view.run_id,
        run_dir=view.run_dir,
        status=view.status,
        reason=view.reason,
        attempts=all_facts,
        text="\n".join(lines),
    )


def _attempt_text(f: AttemptFacts) -> str:
    if f.success_rate is None and f.error is None:
        return f"attempt {f.attempt}: no outcome (interrupted or still running) in {f.folder}"
    text = f"attempt {f.attempt}: " + (
        f"error: {f.error}"
        if f.error
        else f"success {_pct(f.success_rate)} over {f.episodes} episodes, {f.env_steps or 0:,} env steps"
        + (f", stopped by {f.stop_reason}" if f.stop_reason else "")
    )
    if f.best_training_success is not None:
        text += f"; best success while training {_pct(f.best_training_success)}"
    if f.components:
        moving = [f"{k} {a:.3f} -> {b:.3f}" for k, (a, b) in f.components.items() if a or b]
        silent = [k for k, (a, b) in f.components.items() if not (a or b)]
        text += "; reward components, first -> last iteration: " + (", ".join(moving) or "all zero")
        if silent:
            text += f"; always zero (never reached): {', '.join(silent)}"
    return text
