"""The typed arguments and results of the training jobs: train (or measure) one subtask, collect the chained
task (the agent runs these), run a whole plan (`dexforge train`). Pydantic only, so the agent process imports
it without torch or Genesis; the worker validates both sides (dexforge.jobs.TYPES)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainSubtaskArgs(_Model):
    spec_yaml: str = Field(description="The TaskSpec as YAML.")
    plan_yaml: str = Field(description="The Plan as YAML (rl subtasks carry their reward program).")
    index: int = Field(ge=0, description="Which subtask of the plan to train or measure (0-based).")
    out_dir: str = Field(description="Folder for this attempt's files.")
    start_states: str | None = Field(default=None, description="end_states.pt of the previous subtask.")
    n_envs: int = Field(default=32, ge=1, description="Parallel envs.")
    eval_episodes: int = Field(default=64, ge=1, description="Evaluation episodes.")
    backend: str = Field(default="cpu", description="Genesis backend: cpu or gpu.")
    init_checkpoint: str | None = Field(default=None, description="A checkpoint of this subtask to continue from.")
    warm_candidates: list[str] = Field(
        default_factory=list, description="Policies of similar past subtasks, best first (without init_checkpoint)."
    )
    attempt: int = Field(
        default=0, ge=0, description="Which attempt at the subtask this is: RL's seed is the spec's + 1000 x attempt."
    )


class SubtaskOutcomeResult(_Model):
    """A subtask's outcome (policies.train.SubtaskOutcome): how it was trained or measured, and how well it did."""

    name: str = Field(description="The subtask's name.")
    controller: str = Field(description="Its controller kind: rl, motion_plan, scripted or dexgen.")
    success_rate: float = Field(description="Evaluated success rate, 0..1.")
    episodes: int = Field(description="Evaluation episodes behind it.")
    env_steps: int = Field(default=0, description="Env steps of rl training (0 for other controllers).")
    wall_s: float = Field(default=0.0, description="Seconds spent on the subtask.")
    stop_reason: str = Field(default="", description="Why rl training stopped: target, plateau or budget.")
    reward_source: str | None = Field(default=None, description="The rl subtask's reward program.")
    reward_stats: dict | None = Field(default=None, description="Per-component statistics of the reward.")
    checkpoint: str | None = Field(default=None, description="The chosen policy checkpoint (rl).")
    error: str | None = Field(default=None, description="What went wrong, when something did.")
    obs_size: int | None = Field(default=None, description="rl: the policy's observation size.")
    act_size: int | None = Field(default=None, description="rl: the policy's action size.")
    warm_start: str | None = Field(default=None, description="The checkpoint training started from.")
    warm_start_skipped: list[str] = Field(default_factory=list, description="Candidates that did not fit, and why.")
    deterministic: bool | None = Field(default=None, description="rl: the policy acts with its mean action.")
    env_groups: int = Field(default=1, description="rl: processes that stepped the training envs (one per core).")
    selection: dict[str, float] = Field(
        default_factory=dict, description="rl: checkpoint and action mode -> success over one batch of episodes."
    )
    history: list[dict] = Field(
        default_factory=list, description="rl: PPO statistics per iteration (stats.jsonl's rows); else empty."
    )


class TrainSubtaskResult(SubtaskOutcomeResult):
    """A subtask's outcome (policies.train.SubtaskOutcome) and the files it left."""

    history: list[dict] = Field(default_factory=list, description="Kept empty: stats.jsonl holds the history.")
    end_states: str | None = Field(default=None, description="end_states.pt of the successful episodes.")
    end_metrics: str | None = Field(default=None, description="end_metrics.pt: the metrics at those end states.")


class CollectArgs(_Model):
    spec_yaml: str
    plan_yaml: str
    out_dir: str
    checkpoints: dict[str, str] = Field(default_factory=dict, description="rl subtask name -> policy checkpoint.")
    n_envs: int = Field(default=32, ge=1)
    eval_episodes: int = Field(default=64, ge=1)
    video: bool = True
    backend: str = "cpu"


class CollectResult(_Model):
    task_success_rate: float = Field(description="Whole-task success from the initial layout, 0..1.")
    episodes: int
    dataset: str | None = Field(default=None, description="dataset.hdf5 of the successful episodes.")
    video: str | None = Field(default=None, description="rollout.mp4 of one chained episode.")
    kept_after: dict[str, float] = Field(
        default_factory=dict,
        description="Share of the chained episodes still succeeding after each subtask, in plan order.",
    )


class RunPlanArgs(_Model):
    spec_yaml: str = Field(description="The TaskSpec as YAML.")
    plan_yaml: str = Field(description="The Plan as YAML (rl subtasks carry their reward program).")
    run_dir: str = Field(description="Run folder: reward programs, logs, checkpoints, outcome.json, dataset.hdf5.")
    n_envs: int = Field(default=32, ge=1, description="Parallel envs.")
    eval_episodes: int = Field(default=64, ge=1, description="Evaluation episodes per subtask and for the whole task.")


class RunPlanResult(_Model):
    """A whole plan's outcome (policies.train.PlanOutcome), as run_dir/outcome.json holds it."""

    task: str = Field(description="The task's name.")
    subtasks: list[SubtaskOutcomeResult] = Field(description="Each subtask trained or measured, in order.")
    task_success_rate: float = Field(
        description="Whole-task success from the initial layout, 0..1 (0 when a subtask left no end states)."
    )
    env_steps: int = Field(default=0, description="Env steps of rl training over all subtasks.")
    wall_s: float = Field(default=0.0, description="Seconds the whole plan took.")
    dataset: str | None = Field(default=None, description="dataset.hdf5 of the successful whole-task episodes.")
    episodes: int = Field(default=0, description="Whole-task evaluation episodes (0 when it was not measured).")
    kept_after: dict[str, float] = Field(
        default_factory=dict,
        description="Share of the chained episodes still succeeding after each subtask, in plan order.",
    )
