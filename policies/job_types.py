"""The typed arguments and results of the training jobs the agent runs: train (or measure) one subtask,
collect the chained task. Pydantic only, so the agent process imports it without torch or Genesis; the
worker validates both sides (dexforge.jobs.TYPES)."""

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


class TrainSubtaskResult(BaseModel):
    """A subtask's outcome (policies.train.SubtaskOutcome) and the files it left."""

    model_config = ConfigDict(extra="forbid")

    name: str
    controller: str
    success_rate: float = Field(description="Evaluated success rate, 0..1.")
    episodes: int = Field(description="Evaluation episodes behind it.")
    env_steps: int = 0
    wall_s: float = 0.0
    stop_reason: str = ""
    reward_source: str | None = None
    reward_stats: dict | None = Field(default=None, description="Per-component statistics of the reward.")
    checkpoint: str | None = None
    error: str | None = None
    obs_size: int | None = None
    act_size: int | None = None
    warm_start: str | None = Field(default=None, description="The checkpoint training started from.")
    warm_start_skipped: list[str] = Field(default_factory=list)
    deterministic: bool | None = None
    selection: dict[str, float] = Field(default_factory=dict)
    end_states: str | None = Field(default=None, description="end_states.pt of the successful episodes.")
    end_metrics: str | None = Field(default=None, description="end_metrics.pt: the metrics at those end states.")
    history: list[dict] = Field(default_factory=list, description="Kept empty: stats.jsonl holds the history.")


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
