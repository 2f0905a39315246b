"""The reward-writer's tools: check a program, dry-run it on a real batch of this scene's metrics, read a
failed attempt's training statistics, watch its policy.

`check_reward` and `training_stats` answer at once. `dry_run_reward` runs the program in the sandbox on a
batch recorded by the scene check or by the previous subtask (its end states), in a worker that imports
torch but not Genesis (a few seconds); when no batch exists yet, a worker builds one. `rollout_frames`
films the failed attempt's policy in a Genesis worker.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from dexforge.tools.base import RoleTool, Scope, ToolError, ToolResult
from dexforge.tools.common import run_worker


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceArgs(_Args):
    source: str = Field(description="Python source defining compute_reward(m) -> (reward, components).")


# check_reward -----------------------------------------------------------------------------------------------
class CheckRewardResult(ToolResult):
    keys_used: list[str] = Field(description="Metric keys the program reads.")

    def summary(self) -> str:
        return f"reward program accepted; it reads {', '.join(self.keys_used) or 'no metrics'}"


def _keys(scope: Scope) -> list[str]:
    from dexforge.tools.sim_tools import metric_keys

    return sorted(metric_keys(scope.spec()))


def check_reward(args: SourceArgs, scope: Scope) -> CheckRewardResult:
    from dexforge.policies.rewards.check import RewardCheckError, check_program

    try:
        checked = check_program(args.source, _keys(scope))
    except RewardCheckError as exc:
        raise ToolError(f"reward program rejected: {exc}") from None
    return CheckRewardResult(keys_used=sorted(checked.keys_used))


# dry_run_reward ---------------------------------------------------------------------------------------------
class DryRunRewardResult(ToolResult):
    batch: str = Field(description="Where the batch came from: the scene check, or the previous subtask's ends.")
    num_envs: int
    reward: dict = Field(description="Statistics of the total reward: mean, std, min, max, nonzero.")
    components: dict[str, dict] = Field(description="The same statistics per component.")
    keys_used: list[str]

    def summary(self) -> str:
        rows = [("reward", self.reward), *self.components.items()]
        stats = "\n".join(
            f"{k}: mean {s['mean']:.4g} std {s['std']:.4g} min {s['min']:.4g} max {s['max']:.4g} "
            f"nonzero {s['nonzero']:.0%}"
            for k, s in rows
        )
        return f"dry run passed on {self.num_envs} envs ({self.batch}); every value finite, shapes right\n{stats}"


def _batch(scope: Scope) -> tuple[str, str]:
    """A metrics batch for the current subtask: (path, where it came from); builds one when none exists."""
    if scope.start_metrics and Path(scope.start_metrics).exists():
        return scope.start_metrics, "the previous subtask's end states"
    if scope.start_states is None and scope.spec_dir and (Path(scope.spec_dir) / "metrics_batch.pt").exists():
        return str(Path(scope.spec_dir) / "metrics_batch.pt"), "the scene check's initial layout"
    key = hashlib.sha1(f"{scope.spec_yaml}|{scope.start_states}".encode()).hexdigest()[:12]
    out = scope.run_path / "tools" / "metrics_batches"
    path = out / f"{key}.pt"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        run_worker(
            "metrics_batch",
            {
                "spec_yaml": scope.spec_yaml,
                "out_path": str(path),
                "start_states": scope.start_states,
                "backend": scope.backend,
            },
            out,
            scope.job_timeout_s,
            hint="no batch of metrics could be simulated for this scene",
        )
    return str(path), "a fresh simulated batch" + (" from the previous subtask's ends" if scope.start_states else "")


def dry_run_reward(args: SourceArgs, scope: Scope) -> DryRunRewardResult:
    check_reward(args, scope)  # the static check first: its errors name the line
    path, origin = _batch(scope)
    out = scope.tool_dir("dry_run_reward")
    value = run_worker(
        "dry_run_reward",
        {"source": args.source, "metrics_path": path},
        out,
        min(scope.job_timeout_s, 120.0),
        hint="the dry run could not start",
    )
    if not value.get("ok"):
        where = f" (line {value['line']})" if value.get("line") else ""
        raise ToolError(f"dry run failed: {value.get('error_kind')}{where}: {value.get('error')}")
    return DryRunRewardResult(
        batch=origin,
        num_envs=value["num_envs"],
        reward=value["reward"],
        components=value["components"],
        keys_used=value["keys_used"],
    )


# training_stats ---------------------------------------------------------------------------------------------
class AttemptArgs(_Args):
    subtask: str | None = Field(default=None, description="The subtask; none: the one being rewarded.")
    attempt: int = Field(default=-1, description="Attempt number (0 = the first); -1: the last one.")


class TrainingStatsResult(ToolResult):
    subtask: str
    attempt: int
    success_rate: float | None = Field(description="Evaluated success rate of the attempt.")
    env_steps: int | None = None
    stop_reason: str | None = None
    error: str | None = Field(default=None, description="Why the attempt failed outright, if it did.")
    training_success_best: float | None = Field(default=None, description="Best success rate seen in training.")
    final: dict[str, float] = Field(
        default_factory=dict, description="Component -> mean weighted value per step over the last quarter of training."
    )
    curves: dict[str, list[tuple[int, float]]] = Field(
        default_factory=dict, description="Component -> (env steps, mean per step), at most 8 points."
    )
    ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Component -> (min, max) over training."
    )
    by_outcome: dict[str, dict] = Field(
        default_factory=dict,
        description="success / failure -> episodes (n) and, per component, the mean, min and max per step "
        "over the episodes that ended that way (last quarter of training).",
    )

    def summary(self) -> str:
        rate, best = _pct(self.success_rate), _pct(self.training_success_best)
        head = (
            f"{self.subtask} attempt {self.attempt}: success {rate} after {self.env_steps} env steps "
            f"(stopped by {self.stop_reason or 'n/a'}); best in training {best}"
        )
        if self.error:
            head += f"; error: {self.error}"
        rows = []
        for k, v in self.final.items():
            lo, hi = self.ranges.get(k, (v, v))
            curve = " ".join(f"{s // 1000}k:{m:.3g}" for s, m in self.curves.get(k, []))
            rows.append(f"{k}: final {v:.4g} (range {lo:.3g}..{hi:.3g}); curve {curve}")
        for outcome, data in self.by_outcome.items():
            means = ", ".join(f"{k} {v:.3g}" for k, v in (data.get("mean") or {}).items())
            rows.append(f"in {data.get('n', 0)} {outcome} episodes: {means or '-'}")
        return "\n".join([head, *rows]) if rows else head + "\n(no training statistics recorded)"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _attempt(scope: Scope, subtask: str | None, attempt: int) -> tuple[str, int, Path, dict]:
    name = subtask or scope.subtask
    if not name:
        raise ToolError("name the subtask")
    folders = sorted(
        (p for p in (scope.run_path / "subtasks" / name).glob("attempt*") if p.name[7:].isdigit()),
        key=lambda p: int(p.name[7:]),
    )
    if not folders:
        raise ToolError(f"subtask '{name}' has no attempts yet; there is nothing to read")
    numbers = [int(p.name[7:]) for p in folders]
    k = numbers[-1] if attempt == -1 else attempt
    if k not in numbers:
        raise ToolError(f"subtask '{name}' has attempts {numbers}, not {attempt}")
    outcome_file = folders[numbers.index(k)] / "outcome.json"
    outcome = json.loads(outcome_file.read_text()) if outcome_file.exists() else {}
    return name, k, folders[numbers.index(k)], outcome


def training_stats(args: AttemptArgs, scope: Scope) -> TrainingStatsResult:
    name, k, folder, outcome = _attempt(scope, args.subtask, args.attempt)
    known = next((a for a in scope.attempts if a.get("attempt") == k), {}) if name == scope.subtask else {}
    rows = []
    if (folder / "stats.jsonl").exists():
        rows = [json.loads(line) for line in (folder / "stats.jsonl").read_text().splitlines() if line.strip()]
    result = TrainingStatsResult(
        subtask=name,
        attempt=k,
        success_rate=known.get("success_rate", outcome.get("success_rate")),
        env_steps=known.get("env_steps", outcome.get("env_steps")),
        stop_reason=known.get("stop_reason", outcome.get("stop_reason")),
        error=known.get("error"),
    )
    if not rows:
        return result
    tail = rows[-max(1, len(rows) // 4) :]
    keys = sorted({c for r in rows for c in r.get("components", {})})
    result.final = {c: round(sum(r["components"].get(c, 0.0) for r in tail) / len(tail), 5) for c in keys}
    step = max(1, len(rows) // 8)
    result.curves = {
        c: [(int(r["env_steps"]), round(r["components"].get(c, 0.0), 5)) for r in rows[::step]] for c in keys
    }
    result.ranges = {
        c: (
            round(min(r["components"].get(c, 0.0) for r in rows), 5),
            round(max(r["components"].get(c, 0.0) for r in rows), 5),
        )
        for c in keys
    }
    rates = [r["success_rate"] for r in rows if r.get("success_rate") is not None]
    result.training_success_best = round(max(rates), 3) if rates else 0.0
    result.by_outcome = _by_outcome(tail)
    return result


def _by_outcome(rows: list[dict]) -> dict[str, dict]:
    """Episode components by how the episodes ended, pooled over `rows` (weighted by episode counts)."""
    out: dict[str, dict] = {}
    for outcome in ("success", "failure"):
        parts = [(r.get("episode_components") or {}).get(outcome) or {} for r in rows]
        parts = [p for p in parts if p.get("n")]
        n = sum(p["n"] for p in parts)
        if not n:
            out[outcome] = {"n": 0}
            continue
        keys = sorted({k for p in parts for k in p.get("mean", {})})
        out[outcome] = {
            "n": n,
            "mean": {k: round(sum(p["mean"].get(k, 0.0) * p["n"] for p in parts) / n, 5) for k in keys},
            "min": {k: round(min(p["min"].get(k, 0.0) for p in parts), 5) for k in keys},
            "max": {k: round(max(p["max"].get(k, 0.0) for p in parts), 5) for k in keys},
        }
    return out


# rollout_frames ---------------------------------------------------------------------------------------------
class FramesArgs(AttemptArgs):
    frames: int = Field(default=6, ge=1, le=12, description="Frames to return, evenly spaced over one episode.")


class RolloutFramesResult(ToolResult):
    subtask: str
    attempt: int
    frames: list[str]
    success: bool = Field(description="Whether the filmed episode succeeded.")
    steps: int
    components: dict[str, float] = Field(description="Mean per step of each reward component in that episode.")

    def summary(self) -> str:
        comps = ", ".join(f"{k} {v:.3g}" for k, v in self.components.items())
        return (
            f"{self.subtask} attempt {self.attempt}: one episode of {self.steps} steps, "
            f"{'succeeded' if self.success else 'failed'}; {len(self.frames)} frames; components per step: {comps}"
        )

    def images(self) -> list[str]:
        return list(self.frames)


def rollout_frames(args: FramesArgs, scope: Scope) -> RolloutFramesResult:
    name, k, _, outcome = _attempt(scope, args.subtask, args.attempt)
    checkpoint = outcome.get("checkpoint")
    if not checkpoint or not Path(checkpoint).exists():
        raise ToolError(f"attempt {k} of '{name}' left no policy checkpoint (it failed before training ended)")
    plan = scope.plan()
    names = [s.name for s in plan.subtasks]
    if name not in names:
        raise ToolError(f"no subtask '{name}' in the current plan; subtasks: {', '.join(names)}")
    out = scope.tool_dir("rollout_frames")
    value = run_worker(
        "rollout_frames",
        {
            "spec_yaml": scope.spec_yaml,
            "plan_yaml": scope.plan_yaml,
            "index": names.index(name),
            "checkpoint": checkpoint,
            "out_dir": str(out),
            "start_states": scope.start_states,
            "frames": args.frames,
            "backend": scope.backend,
        },
        out,
        scope.job_timeout_s,
        hint="the policy could not be filmed",
    )
    return RolloutFramesResult(
        subtask=name,
        attempt=k,
        frames=value["frames"],
        success=value["success"],
        steps=value["steps"],
        components=value.get("components", {}),
    )


TOOLS = [
    RoleTool(
        "check_reward",
        "Check a reward program statically: only arithmetic and torch/math calls on m[...], no imports, no names "
        "starting with _, the right signature, only metrics this task publishes. Instant; the error says which "
        "line to change and how.",
        SourceArgs,
        CheckRewardResult,
        check_reward,
    ),
    RoleTool(
        "dry_run_reward",
        "Run a reward program on a real batch of this scene's metrics (from where the subtask starts) in the "
        "sandbox: shapes, finite values, and each component's mean, std, min, max and how often it is nonzero. "
        "Use it before answering; an error (NaN, a wrong shape, an exception) names its cause. A few seconds.",
        SourceArgs,
        DryRunRewardResult,
        dry_run_reward,
    ),
    RoleTool(
        "training_stats",
        "How an attempt's training went: success, env steps, stop reason, and per reward component its final mean "
        "per step, its curve and range, and its means in successful and in failed episodes. Read it before "
        "rewriting a reward that failed: a component that never moves gives the policy nothing to follow; one "
        "that is as high in failed episodes as in successful ones pays for the wrong thing.",
        AttemptArgs,
        TrainingStatsResult,
        training_stats,
    ),
    RoleTool(
        "rollout_frames",
        "Film one episode of an attempt's trained policy: frames (they come back to you), whether it succeeded "
        "and its reward components. Use it to see how a policy fails (slides off, never closes, pushes the object "
        "away). Takes 20-60 seconds.",
        FramesArgs,
        RolloutFramesResult,
        rollout_frames,
    ),
]
