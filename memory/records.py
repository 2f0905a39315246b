"""What the experience store keeps: tasks, subtasks (with their policies) and failures.

Each record is a pydantic model with a `schema_version`. Records are stored as JSON and read back
through `load_record`, which upgrades older layouts first, so a store written by an older dexforge
stays readable:
  v1: a line of the plain-file run archive (`agents/experience.py`): `request`, `family`, `status`,
      `reason`, `task_success_rate`, `spec`, `plan`, `run_id`, no `schema_version` key. Tasks only.
  v2: the layout below (tasks, subtasks, failures).
A record written by a newer dexforge (a higher version) is refused with a clear error rather than
read wrongly.

Besides the JSON, each record gives chromadb the text to embed (`document_text`) and flat metadata
to filter on (`record_metadata`): kind, family, hand, backend, outcome, the object ids as one
comma-joined string (`objects`) and one `obj:<id>` = True key per object (`where_object`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dexforge.home import DexforgeError

SCHEMA_VERSION = 2
RecordKind = Literal["task", "subtask", "failure"]
KINDS: tuple[RecordKind, ...] = ("task", "subtask", "failure")
Metadata = dict[str, str | int | float | bool]


class RecordError(DexforgeError):
    """A stored record that cannot be read (unknown kind, newer schema, malformed)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Critique(_Model):
    """One round of the critic, as the agent state keeps it."""

    findings: list[str] = Field(default_factory=list, description="What the critic saw, each with its evidence.")
    corrections: list[dict[str, Any]] = Field(default_factory=list, description="Typed corrections, as dicts.")
    verdict: str = Field(description="accept, revise or fail.")


class TaskMetrics(_Model):
    task_success_rate: float | None = Field(default=None, description="Whole-task success, chained, 0..1.")
    env_steps: int | None = Field(default=None, description="RL environment steps spent on the task.")
    wall_time_s: float | None = Field(default=None, description="Wall-clock seconds of the run.")
    extra: dict[str, float] = Field(default_factory=dict, description="Any other scalar metric by name.")


class Cost(_Model):
    usd: float | None = Field(default=None, description="Model cost in US dollars, when the provider reports it.")
    input_tokens: int = Field(default=0, description="Prompt tokens over all model calls.")
    output_tokens: int = Field(default=0, description="Completion tokens over all model calls.")
    model_calls: int = Field(default=0, description="Number of model calls.")


class _Common(_Model):
    schema_version: int = Field(default=SCHEMA_VERSION, description="Layout version of this record.")
    run_id: str = Field(default="", description="The agent run that produced it ('' when none).")
    family: str = Field(default="", description="Task family: lift, place, rotate, open, push.")
    hand: str = Field(default="shadow_hand", description="Catalog id of the hand.")
    objects: list[str] = Field(default_factory=list, description="Catalog ids of the objects involved.")
    backend: str = Field(default="", description="Simulator backend it ran on (cpu, gpu).")
    created_at: dt.datetime = Field(default_factory=_now, description="When it was recorded (UTC).")


class TaskRecord(_Common):
    """A finished agent run: what was asked, what was built, how it went."""

    kind: Literal["task"] = "task"
    request: str = Field(description="The user's sentence.")
    spec_yaml: str = Field(default="", description="The final TaskSpec, YAML.")
    critiques: list[Critique] = Field(default_factory=list, description="The critic's rounds, in order.")
    plan_yaml: str = Field(default="", description="The final plan, YAML.")
    status: Literal["succeeded", "failed"] = Field(description="How the run ended.")
    reason: str = Field(default="", description="Why it failed or stopped early ('' on success).")
    metrics: TaskMetrics = Field(default_factory=TaskMetrics)
    cost: Cost = Field(default_factory=Cost)


class ComponentStats(_Model):
    """Per-episode statistics of one reward component (the feedback a reward writer gets)."""

    mean: float
    std: float = 0.0
    min: float | None = None
    max: float | None = None


class SubtaskRecord(_Common):
    """One trained or executed subtask, with the policy that can warm-start a similar one."""

    kind: Literal["subtask"] = "subtask"
    task_id: str = Field(default="", description="Id of the TaskRecord it belongs to ('' when unknown).")
    name: str = Field(description="Subtask name in its plan.")
    description: str = Field(default="", description="What the subtask does, in words (this is what is embedded).")
    controller: str = Field(description="Controller kind: motion_plan, rl or scripted.")
    active_dofs: list[str] = Field(default_factory=list, description="Joint groups or joint names it drives.")
    reward_program: str = Field(default="", description="Reward program source (rl).")
    reward_components: dict[str, ComponentStats] = Field(default_factory=dict, description="By component name.")
    success_rate: float | None = Field(default=None, description="Evaluated success rate, 0..1.")
    env_steps: int | None = Field(default=None, description="RL environment steps spent.")
    checkpoint: str | None = Field(default=None, description="Path of the policy checkpoint (rl).")
    obs_size: int | None = Field(default=None, description="Policy observation size, (num_obs,).")
    act_size: int | None = Field(default=None, description="Policy action size, (num_actions,).")


class FailureRecord(_Common):
    """Something that went wrong, and why, so the agent can avoid it next time."""

    kind: Literal["failure"] = "failure"
    task_id: str = Field(default="", description="Id of the TaskRecord it belongs to ('' when unknown).")
    request: str = Field(default="", description="The user's sentence.")
    stage: str = Field(description="Where it failed: understand, spec, checks, plan, reward, train, eval, ...")
    subtask: str = Field(default="", description="The subtask concerned ('' when the whole task).")
    reason: str = Field(description="Why, in one or two sentences.")
    details: str = Field(default="", description="Evidence: error text, statistics, findings.")


Record = TaskRecord | SubtaskRecord | FailureRecord
MODELS: dict[RecordKind, type[TaskRecord] | type[SubtaskRecord] | type[FailureRecord]] = {
    "task": TaskRecord,
    "subtask": SubtaskRecord,
    "failure": FailureRecord,
}


def _task_from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A plain-file archive line (v1) as a v2 task record."""
    status = data.get("status")
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": data.get("run_id") or "",
        "family": data.get("family") or "",
        "request": data["request"],
        "spec_yaml": data.get("spec") or "",
        "plan_yaml": data.get("plan") or "",
        "status": status if status in ("succeeded", "failed") else "failed",
        "reason": data.get("reason") or "",
        "metrics": {"task_success_rate": data.get("task_success_rate")},
        **({"created_at": data["created_at"]} if data.get("created_at") else {}),
    }


def load_record(kind: str, data: dict[str, Any]) -> Record:
    """A stored record of `kind` as the current model, upgrading older layouts."""
    if kind not in MODELS:
        raise RecordError(f"unknown record kind {kind!r}; expected one of {list(KINDS)}")
    version = int(data.get("schema_version", 1))
    if version > SCHEMA_VERSION:
        raise RecordError(
            f"a {kind} record has schema version {version}, newer than this dexforge's {SCHEMA_VERSION}; "
            "upgrade dexforge to read it"
        )
    if version == 1 and kind == "task":
        data = _task_from_v1(data)
    else:  # subtasks and failures first appeared in v2: a v1 one has the v2 layout
        data = {**data, "schema_version": SCHEMA_VERSION, "kind": kind}
    return MODELS[kind].model_validate(data)


def document_text(record: Record) -> str:
    """The text embedded for retrieval: the request (tasks), what a subtask does, a failure's reason."""
    if isinstance(record, TaskRecord):
        return record.request
    if isinstance(record, SubtaskRecord):
        what = record.description or record.name.replace("_", " ")
        objects = f" ({', '.join(record.objects)})" if record.objects else ""
        return f"{record.controller} subtask: {what}{objects}"
    prefix = f"{record.request}: " if record.request else ""
    return f"{prefix}{record.stage} failed: {record.reason}"


def object_key(object_id: str) -> str:
    """The metadata key that is True for records involving `object_id`."""
    return f"obj:{object_id}"


def where_object(object_id: str) -> dict[str, Any]:
    """A chromadb `where` filter selecting records that involve `object_id`."""
    return {object_key(object_id): True}


def record_metadata(record: Record) -> Metadata:
    """Flat chromadb metadata for filtering; None values are left out."""
    meta: dict[str, Any] = {
        "kind": record.kind,
        "schema_version": record.schema_version,
        "run_id": record.run_id,
        "family": record.family,
        "hand": record.hand,
        "backend": record.backend,
        "objects": ",".join(sorted(set(record.objects))),
        "created_at": record.created_at.timestamp(),
    }
    meta.update({object_key(o): True for o in record.objects})
    if isinstance(record, TaskRecord):
        meta.update(
            outcome=record.status,
            task_success_rate=record.metrics.task_success_rate,
            env_steps=record.metrics.env_steps,
        )
    elif isinstance(record, SubtaskRecord):
        meta.update(
            task_id=record.task_id,
            name=record.name,
            controller=record.controller,
            success_rate=record.success_rate,
            env_steps=record.env_steps,
            has_checkpoint=bool(record.checkpoint),
            obs_size=record.obs_size,
            act_size=record.act_size,
        )
    else:
        meta.update(task_id=record.task_id, stage=record.stage, subtask=record.subtask, outcome="failed")
    return {k: v for k, v in meta.items() if v is not None}


@dataclass(frozen=True)
class Entry:
    id: str
    kind: RecordKind
    record: Record
    document: str


@dataclass(frozen=True)
class Hit(Entry):
    distance: float
    """Cosine distance, 0 for the same direction; `similarity` is 1 - distance."""

    @property
    def similarity(self) -> float:
        return 1.0 - self.distance
