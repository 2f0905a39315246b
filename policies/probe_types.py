"""Results of the policy probes (`dexforge.policies.probe`) and per-episode reward statistics, importable
without torch or Genesis.

The agent process reads these from worker jobs' JSON (`Model.model_validate(job_result.value)`); the
descriptions are what a language model sees. Lengths are metres.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DryRunResult(BaseModel):
    """A reward program run once on a real metrics batch: statistics of each term, or why it failed."""

    ok: bool = Field(description="The program passed the static check and returned finite (num_envs,) tensors.")
    num_envs: int = Field(description="Envs (rows) in the metrics batch.")
    reward: dict | None = Field(
        default=None, description="Statistics of the total reward over envs: mean, std, min, max, nonzero (fraction)."
    )
    components: dict[str, dict] = Field(
        default_factory=dict,
        description="Statistics of each returned component, as for `reward`; a term that is always 0 says nothing.",
    )
    keys_used: list[str] = Field(default_factory=list, description='Metric keys the program reads as `m["key"]`.')
    error_kind: str | None = Field(
        default=None,
        description="When not ok: the error's class, e.g. RewardNotFinite, RewardShapeError, RewardRuntimeError, "
        "RewardTimeout, RewardUnknownKeyError, RewardForbiddenError, RewardSyntaxError.",
    )
    error: str | None = Field(default=None, description="When not ok: what is wrong and what to do about it.")
    line: int | None = Field(default=None, description="When known: the program line the error points at.")


class ProbeMotionResult(BaseModel):
    """One planned or scripted subtask run on a few envs: did the palm get there, what did the hand hit."""

    subtask: str = Field(description="The subtask's name.")
    controller: str = Field(description="Its controller kind: motion_plan or scripted.")
    episodes: int = Field(description="Envs that ran the leg at once (one episode each).")
    reached_rate: float = Field(
        description="Fraction of envs where the subtask's success predicates hold at the end of the leg; without "
        "predicates, where the palm ends within 2 cm of its goal."
    )
    final_error_m: float = Field(
        description="Mean distance between the palm's centre at the end and the planner's goal for it, m; for a "
        "scripted leg (the wrist holds), how far the palm drifted from where it started."
    )
    collisions: list[dict] = Field(
        description='Contacts the leg should not make, each {"a": hand part (thumb, index, middle, ring, little, '
        'palm), "hand" (another hand link) or "arm", "b": body name ("ground" or an object), "envs": fraction of '
        "envs where it happened at some step}. The ground always counts; an object counts unless the leg is "
        "about it (its goal's object, its predicates' objects, objects the hand touched at the start)."
    )
    moved_objects: dict[str, float] = Field(
        description="Mean displacement of each object's centre over the leg, m (a push or a knock shows here)."
    )
    steps: int = Field(description="Control steps the leg took.")


class RolloutFramesResult(BaseModel):
    """One episode of a trained rl subtask's policy on one env, filmed."""

    subtask: str = Field(description="The subtask's name.")
    frames: list[str] = Field(description="PNG paths, evenly spaced over the episode; the first before any action.")
    success: bool = Field(description="The subtask's success predicates hold at the episode's last step.")
    steps: int = Field(description="Control steps of the episode.")
    components: dict[str, float] = Field(
        description="Mean per step of each component of the subtask's reward program over the episode."
    )


class EpisodeComponents(BaseModel):
    """Reward components per episode, over a group of finished episodes (successes or failures)."""

    n: int = Field(description="Episodes in the group.")
    mean: dict[str, float] = Field(
        default_factory=dict, description="Component -> mean over the episodes of its mean per step."
    )
    min: dict[str, float] = Field(
        default_factory=dict, description="Component -> smallest per-episode mean per step in the group."
    )
    max: dict[str, float] = Field(
        default_factory=dict, description="Component -> largest per-episode mean per step in the group."
    )


# the jobs' arguments (dexforge.jobs.TYPES: the worker validates them before the call) ---------------------
class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DryRunRewardArgs(_Args):
    source: str = Field(description="The reward program's source (defines compute_reward(m)).")
    metrics_path: str = Field(description="A metrics batch saved with torch.save (metrics_batch.pt, end_metrics.pt).")
    check_keys: bool = Field(default=True, description='Check the program\'s m["key"] lookups against the batch.')


class ProbeMotionArgs(_Args):
    spec_yaml: str = Field(description="The TaskSpec as YAML.")
    plan_yaml: str = Field(description="The Plan as YAML.")
    index: int = Field(ge=0, description="Which subtask of the plan (0-based); motion_plan or scripted.")
    start_states: str | None = Field(default=None, description="end_states.pt of the previous subtask.")
    n_envs: int = Field(default=4, description="Envs that run the leg at once.")
    backend: str = Field(default="cpu", description="Genesis backend: cpu or gpu.")


class RolloutFramesArgs(_Args):
    spec_yaml: str = Field(description="The TaskSpec as YAML.")
    plan_yaml: str = Field(description="The Plan as YAML (the subtask's reward program with it).")
    index: int = Field(ge=0, description="Which subtask of the plan (0-based); rl.")
    checkpoint: str = Field(description="The subtask's trained policy (checkpoint.pt or best.pt).")
    out_dir: str = Field(description="Folder for the PNG frames.")
    start_states: str | None = Field(default=None, description="end_states.pt of the previous subtask.")
    frames: int = Field(default=6, description="Pictures, evenly spaced over the episode (1 to 30).")
    width: int = Field(default=320, description="Image width, pixels.")
    height: int = Field(default=240, description="Image height, pixels.")
    backend: str = Field(default="cpu", description="Genesis backend: cpu or gpu.")
