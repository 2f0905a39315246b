"""The typed arguments and results of DexGen's worker jobs (dexgen_collect, dexgen_train, dexgen_eval,
dexgen_assist; policies.dexgen.jobs). Pydantic only: the CLI's and the agent's processes import this without
torch or Genesis. The worker validates a job's arguments with its model before the call and its result after
it (dexforge.jobs.TYPES); callers read the result model, never a dict. Times are seconds, latencies ms."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


Out = Annotated[str, Field(description="The DexGen folder: experts/<object>/, data.hdf5, dexgen.pt, eval.json.")]
Asset = Annotated[
    str | None,
    Field(
        description="Catalog id (with an optional @scale) of the object whose expert is corrupted; None: the first "
        "object DexGen was trained on that has such an expert in the folder."
    ),
]
Skill = Annotated[str, Field(description="The expert corrupted: hold, or spin_normal / spin_thumb / spin_fingers.")]
Envs = Annotated[int, Field(ge=1, description="Parallel envs; hold times are their mean.")]
Seconds = Annotated[float, Field(gt=0, description="Simulated seconds per run; hold times are capped at it.")]
NonNegative = Annotated[float, Field(ge=0)]


# dexgen_collect -------------------------------------------------------------------------------------------
class DexGenCollectArgs(_Model):
    out: Out
    assets: list[str] | None = Field(
        default=None, description="Objects to hold, catalog ids optionally scaled as cube@1.2; None: the defaults."
    )
    n_envs: int = Field(default=64, ge=1, description="Parallel envs of expert training and collection.")
    expert_steps: int = Field(default=200_000, ge=1, description="PPO env steps per hold expert (at most).")
    spin_steps: int = Field(default=400_000, ge=1, description="PPO env steps per spin expert.")
    runs: int = Field(default=2, ge=1, description="Collection runs per expert (new randomisation each).")
    steps: int = Field(default=400, ge=1, description="Steps per collection run (0.01 s each).")
    seed: int = Field(default=0, description="Seed of the experts' training and of the collection.")
    recollect: bool = Field(default=False, description="Collect again although out/data.hdf5 exists.")
    skills: list[str] | None = Field(
        default=None, description="Experts per object (hold first, then spin_<axis>); None: the defaults."
    )


class ExpertSummary(_Model):
    """One expert (an object and a skill): trained now, kept from before, or skipped."""

    asset: str = Field(description="The object's catalog id, with its @scale.")
    skill: str = Field(description="hold or spin_<axis>.")
    best_success: float | None = Field(default=None, description="Best training success, 0..1; None if skipped.")
    env_steps: int | None = Field(default=None, description="PPO env steps it trained for; None if skipped.")
    stop_reason: str | None = Field(default=None, description="Why its training stopped; None if skipped.")
    skipped: str | None = Field(default=None, description="Why it was not trained (the scripted pick held nothing).")


class CollectWallTimes(_Model):
    experts: float = Field(description="Seconds spent training (or finding) the experts.")
    collect: float = Field(description="Seconds spent rolling them out into data.hdf5 (about 0 when it was kept).")


class DexGenCollectResult(_Model):
    folder: str = Field(description="The DexGen folder.")
    experts: list[ExpertSummary] = Field(description="Every expert asked for, in the order trained.")
    data: str = Field(description="Path of data.hdf5.")
    data_kept: bool = Field(description="data.hdf5 existed and was kept (no recollect).")
    data_mb: float = Field(description="Size of data.hdf5, MB.")
    wall_s: CollectWallTimes = Field(description="Wall time of each stage.")


# dexgen_train ---------------------------------------------------------------------------------------------
class DexGenTrainArgs(_Model):
    out: Out
    epochs: int = Field(default=6, ge=1, description="Passes over the data.")
    seed: int = Field(default=0, description="Seed of the initialisation and the batches.")


class EpochLosses(_Model):
    """Mean training losses over one epoch's batches (policies.dexgen.train.fit's history row)."""

    epoch: float = Field(description="The epoch, 0-based.")
    diffusion: float = Field(description="Keypoint-motion diffusion loss.")
    inverse_mse: float = Field(description="Inverse dynamics: mean squared error of the joint targets.")
    inverse_nll: float = Field(description="Inverse dynamics: negative log-likelihood of the joint targets.")
    fk_mse: float = Field(description="Forward kinematics: mean squared error of the keypoints.")


class DexGenTrainResult(_Model):
    model: str = Field(description="Path of dexgen.pt.")
    epochs: int = Field(description="Epochs trained.")
    windows: int = Field(description="Training windows made from data.hdf5.")
    train_s: float = Field(description="Seconds of training.")
    final_losses: EpochLosses = Field(description="The last epoch's losses.")


# dexgen_eval and dexgen_assist ------------------------------------------------------------------------------
class DexGenEvalArgs(_Model):
    out: Out
    asset: Asset = None
    n_envs: Envs = 64
    seconds: Seconds = 8.0
    noise: list[NonNegative] = Field(default=[1.0, 2.0, 4.0], description="Uniform action noises U(-e, e) to try.")
    slow: list[NonNegative] = Field(default=[0.5], description="Slowings U(0, a) * action to try.")
    strengths: list[NonNegative] = Field(default=[0.01, 0.1, 1.0], description="DexGen guidance strengths to try.")
    skill: Skill = "hold"


class HoldRun(_Model):
    """One run of the corrupted expert, alone or through DexGen (evaluate.HoldResult without per-env times)."""

    corruption: str = Field(description='The corruption\'s label, e.g. "noise U(-1,1)" or "slow U(0,0.5)".')
    strength: float | None = Field(description="DexGen's guidance strength; None: the expert alone.")
    hold_s: float = Field(description="Mean time until the drop, capped at the run's length.")
    held_to_end: float = Field(description="Fraction of envs that never dropped the object.")
    envs: int = Field(description="Envs in the run.")
    latency_ms: float | None = Field(default=None, description="Mean ms per DexGen call (the batch); None alone.")
    expert: str = Field(default="hold", description="The expert's skill.")
    goals: float | None = Field(default=None, description="Spin experts: mean 45-degree turns per env; else None.")
    turned_deg: float | None = Field(default=None, description="Spin experts: mean turn while held, deg; else None.")


class CorruptionSummary(_Model):
    """One corruption: the expert alone against DexGen at its best strength."""

    raw_hold_s: float = Field(description="The expert alone: mean hold time.")
    dexgen_best_hold_s: float = Field(description="Through DexGen at its best strength: mean hold time.")
    best_strength: float = Field(description="The strength with the longest hold.")
    ratio: float = Field(description="dexgen_best_hold_s / raw_hold_s.")


class JudgedCorruption(CorruptionSummary):
    judged_at: str = Field(
        description="The corruption DexGen is judged at: the highest noise at which the expert alone drops within "
        "3 s on average and in most envs."
    )


class GoalsSummary(_Model):
    """One corruption of a spin expert: goals alone against DexGen at its best strength by goals."""

    raw_goals: float | None = Field(description="The expert alone: mean goals per env.")
    dexgen_best_goals: float | None = Field(description="Through DexGen at its best strength: mean goals per env.")
    best_strength: float = Field(description="The strength with the most goals (then the longest hold).")
    raw_hold_s: float = Field(description="The expert alone: mean hold time.")
    dexgen_hold_s: float = Field(description="Through DexGen at that strength: mean hold time.")


class Latency(_Model):
    """DexGen's time per action for one env (batch 1), guided, on the machine that measured it."""

    median_ms: float = Field(description="Median ms per action.")
    p95_ms: float = Field(description="95th percentile ms per action.")
    ddim_steps: int = Field(description="Denoising steps per action.")
    torch_threads: int = Field(description="Torch CPU threads during the measurement.")


class EvalTarget(_Model):
    """The targets of benchmarks/dexgen.py: 10x the hold time at the judged noise, <= 27 ms per action."""

    judged: JudgedCorruption | None = Field(description="None: the expert alone held 3 s or more at every noise.")
    meets_10x: bool = Field(description="DexGen holds at least 10x as long as the expert alone at the judged noise.")
    latency_ms_batch1: Latency = Field(description="DexGen's time per action at batch 1.")
    meets_latency: bool = Field(description="The median latency is at most 27 ms.")


class DexGenEvalResult(_Model):
    """eval's result, also written to out/eval.json."""

    asset: str = Field(description="The object whose expert was corrupted.")
    skill: str = Field(description="The expert's skill.")
    envs: int = Field(description="Parallel envs per run.")
    seconds_cap: float = Field(description="Simulated seconds per run.")
    results: list[HoldRun] = Field(description="Every run, the expert alone first for each corruption.")
    summary: dict[str, CorruptionSummary] = Field(description="Corruption label -> its summary.")
    goals: dict[str, GoalsSummary] | None = Field(
        default=None, description="Spin experts: corruption label -> goals; None for a hold expert."
    )
    target: EvalTarget = Field(description="The benchmark's targets and whether they are met.")
    model: str = Field(description="Path of dexgen.pt.")
    wall_s: float = Field(description="Seconds the job took.")


class DexGenAssistArgs(_Model):
    out: Out
    asset: Asset = None
    n_envs: Envs = 64
    seconds: Seconds = 8.0
    noise: float = Field(default=1.0, ge=0, description="Uniform noise U(-noise, noise) on the expert's actions.")
    strength: float = Field(default=1.0, ge=0, description="DexGen's guidance: 0 ignores the expert.")
    skill: Skill = "hold"


class DexGenAssistResult(_Model):
    asset: str = Field(description="The object whose expert was corrupted.")
    skill: str = Field(description="The expert's skill.")
    corruption: str = Field(description='The corruption\'s label, e.g. "noise U(-1,1)".')
    strength: float = Field(description="DexGen's guidance strength.")
    envs: int = Field(description="Parallel envs per run.")
    seconds_cap: float = Field(description="Simulated seconds per run.")
    raw_hold_s: float = Field(description="The expert alone: mean hold time.")
    dexgen_hold_s: float = Field(description="Through DexGen: mean hold time.")
    ratio: float = Field(description="dexgen_hold_s / raw_hold_s.")
    raw_held_to_end: float = Field(description="The expert alone: fraction of envs that never dropped.")
    dexgen_held_to_end: float = Field(description="Through DexGen: fraction of envs that never dropped.")
    latency_ms: float | None = Field(description="Mean ms per batched DexGen call; None if none was timed.")
    model: str = Field(description="Path of dexgen.pt.")
    raw_goals: float | None = Field(default=None, description="Spin experts: goals per env alone; else None.")
    dexgen_goals: float | None = Field(default=None, description="Spin experts: goals per env through DexGen.")
