"""Training tools: check a reward program, train or measure one subtask, collect the chained task.

Training and collection run as worker jobs (minutes; a crash or a NaN stays in the worker). The
reward check runs here: it is pure `ast` work and needs no simulator.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.tools import ToolException, tool
from pydantic import BaseModel, Field

from dexforge.policies.job_types import CollectArgs as CollectJobArgs
from dexforge.policies.job_types import CollectResult, TrainSubtaskArgs, TrainSubtaskResult
from dexforge.tools.common import progress, run_worker


class RewardArgs(BaseModel):
    source: str = Field(description="Python source defining compute_reward(m) -> (reward, components).")
    metric_keys: list[str] | None = Field(
        default=None, description="The keys the task's environment publishes (see describe_metrics)."
    )


class TrainArgs(TrainSubtaskArgs):
    """The job's arguments, and how long the caller waits for it."""

    n_envs: int = Field(default=128, ge=1, description="Parallel envs.")
    timeout_s: float = Field(default=3600.0, gt=0, description="Most seconds the job may take.")


class CollectArgs(CollectJobArgs):
    n_envs: int = Field(default=128, ge=1, description="Parallel envs.")
    timeout_s: float = Field(default=3600.0, gt=0, description="Most seconds the job may take.")


@tool(args_schema=RewardArgs, response_format="content_and_artifact")
def check_reward(source: str, metric_keys: list[str] | None = None) -> tuple[str, dict]:
    """Check a reward program before training: only arithmetic and torch/math calls on `m[...]`, no
    imports, no names starting with `_`, no I/O, the right signature, and (given the keys) only metrics
    the environment publishes. The error says which line to change and how."""
    from dexforge.policies.rewards.check import RewardCheckError, check_program

    try:
        check_program(source, metric_keys)
    except RewardCheckError as exc:
        raise ToolException(f"reward program rejected: {exc}") from None
    return "reward program accepted", {"ok": True}


@tool(args_schema=TrainArgs, response_format="content_and_artifact")
def train_subtask(
    spec_yaml: str,
    plan_yaml: str,
    index: int,
    out_dir: str,
    start_states: str | None = None,
    n_envs: int = 128,
    eval_episodes: int = 64,
    backend: str = "cpu",
    timeout_s: float = 3600.0,
    init_checkpoint: str | None = None,
    warm_candidates: list[str] | None = None,
    attempt: int = 0,
) -> tuple[str, dict]:
    """Train one rl subtask with PPO (only its active joints, its reward program, its budget) or measure
    a motion-planned or scripted one, from the previous subtask's end states; then evaluate it. Returns
    the success rate, env steps, stop reason, per-component reward statistics and the checkpoint."""
    progress(event="train", index=index)
    args = TrainSubtaskArgs(
        spec_yaml=spec_yaml,
        plan_yaml=plan_yaml,
        index=index,
        out_dir=out_dir,
        start_states=start_states,
        n_envs=n_envs,
        eval_episodes=eval_episodes,
        backend=backend,
        init_checkpoint=init_checkpoint,
        warm_candidates=list(warm_candidates or []),
        attempt=attempt,
    )
    value = run_worker(
        "train_subtask",
        args,
        Path(out_dir),
        timeout_s,
        hint="if the reward program failed its dry run, rewrite it; otherwise shorten the subtask or its budget",
    )
    result = TrainSubtaskResult.model_validate(value)
    text = (
        f"{result.name}: success {result.success_rate:.0%} over {result.episodes} episodes, "
        f"{result.env_steps} env steps, stopped by {result.stop_reason or 'n/a'}"
    )
    return text, result.model_dump(mode="json")


@tool(args_schema=CollectArgs, response_format="content_and_artifact")
def collect(
    spec_yaml: str,
    plan_yaml: str,
    out_dir: str,
    checkpoints: dict[str, str] | None = None,
    n_envs: int = 128,
    eval_episodes: int = 64,
    video: bool = True,
    backend: str = "cpu",
    timeout_s: float = 3600.0,
) -> tuple[str, dict]:
    """Run every subtask in order from the task's initial layout, measure whole-task success, save the
    successful episodes as an HDF5 dataset and (with `video`) film one chained episode."""
    progress(event="collect")
    args = CollectJobArgs(
        spec_yaml=spec_yaml,
        plan_yaml=plan_yaml,
        out_dir=out_dir,
        checkpoints=checkpoints or {},
        n_envs=n_envs,
        eval_episodes=eval_episodes,
        video=video,
        backend=backend,
    )
    value = run_worker(
        "collect",
        args,
        Path(out_dir),
        timeout_s,
        hint="collection failed; check that every rl subtask has a checkpoint",
    )
    result = CollectResult.model_validate(value)
    return f"whole task: success {result.task_success_rate:.0%} over {result.episodes} episodes", result.model_dump(
        mode="json"
    )
