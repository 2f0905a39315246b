"""SubtaskSpec and Plan: how a task is split into controllable pieces.

A plan is an ordered list of subtasks. Each names its controller kind (`motion_plan` for approach
and transport, `rl` for the contact-rich parts, `scripted` for synergies such as opening the hand),
the joints it drives (the rest are frozen at their targets), its success predicates (the same
models as a TaskSpec's), for RL a reward program or template, a budget, and where its start states
come from (the task's initial layout, or the end states of the previous subtask's successes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dexforge.home import DexforgeError
from dexforge.sim.spec import Predicate, TaskSpec, describe_validation_error, load_yaml

ControllerKind = Literal["motion_plan", "rl", "scripted", "dexgen"]
Vec3 = tuple[float, float, float]


class PlanError(DexforgeError):
    """A plan that cannot be read, or does not fit its task."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Model):
    env_steps: int = Field(default=300_000, ge=1, description="Most environment steps (all envs) to spend.")
    wall_time_s: float = Field(default=900.0, gt=0, description="Most wall-clock seconds to spend.")


class MotionGoal(_Model):
    """Where a motion-planned subtask takes the palm: relative to an object, or to a fixed point."""

    relative_to: str | None = Field(default=None, description="Object name; None means world coordinates.")
    offset: Vec3 = Field(default=(0.0, 0.0, 0.1), description="Palm-centre goal minus the object centre, m.")
    euler: Vec3 | None = Field(default=None, description="Palm orientation at the goal (deg); None keeps it.")
    lift: float | None = Field(
        default=None, description="Instead of a goal point: raise the palm by this much (m) from where it is."
    )
    pull: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Instead of a goal point: move the palm with the articulation joint of `relative_to` (an "
        "articulated object whose handle the hand holds or hooks) until the joint would reach this fraction of its "
        "range: along the joint's axis for a prismatic joint, around it for a revolute one, the palm turning with "
        "it. The axis is read from the simulator at the start; the palm moves at `speed` (m/s).",
    )
    joint: str | None = Field(default=None, description="With `pull`: the joint to move; default the object's first.")
    align_yaw: bool = Field(
        default=False,
        description="Turn the offset and the palm's yaw with the object's yaw (modulo a quarter turn: box-like).",
    )
    clearance: float = Field(default=0.05, ge=0.0, le=0.5, description="Height kept above other objects, m.")
    speed: float = Field(default=0.3, gt=0.0, le=2.0, description="Palm speed along the path, m/s.")
    grip: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="Extra flexion (rad) added to the grasping joints' targets before moving, so that a held "
        "object is squeezed harder while the palm accelerates (position-controlled fingers press by their "
        "target error).",
    )
    carried: str | None = Field(
        default=None,
        description="A held object that this goal places: `offset` is then where that object's centre goes "
        "(relative to `relative_to`'s centre), and the palm goes wherever puts it there, by the hold's offset "
        "from the palm measured when the motion starts (a grasp seldom holds the object where it was planned).",
    )

    @model_validator(mode="after")
    def _pull_needs_object(self) -> MotionGoal:
        if self.pull is not None and (self.relative_to is None or self.lift is not None):
            raise ValueError("a `pull` goal moves an articulated object's joint: it needs `relative_to` and no `lift`")
        if self.carried is not None and (self.lift is not None or self.pull is not None):
            raise ValueError("a `carried` goal places the held object at a point: it takes no `lift` or `pull`")
        return self


class DexGenUse(_Model):
    """A `dexgen` subtask: DexGen moves the fingers (the wrist holds), by itself or after a coarse command."""

    model: str | None = Field(
        default=None, description="DexGen bundle (dexgen.pt); default $DEXFORGE_HOME/dexgen/default/dexgen.pt."
    )
    mode: Literal["hold", "rotate", "release"] = Field(default="hold", description="The intent given to DexGen.")
    fingertip_offset: Vec3 | None = Field(
        default=None,
        description="Coarse command: every fingertip moves by this much (m, palm frame) per step; None: no command.",
    )
    strength: float = Field(default=1.0, ge=0.0, le=1000.0, description="Guidance strength toward the command.")


class SubtaskSpec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Short identifier, unique in the plan.")
    controller: ControllerKind = Field(description="motion_plan, rl, scripted or dexgen.")
    active: tuple[str, ...] = Field(
        default=("all",), description="Joint groups (wrist, fingers, thumb, index, ...) or joint names it drives."
    )
    success: list[Predicate] = Field(default_factory=list, description="All must hold for the subtask to succeed.")
    reward: str | None = Field(default=None, description="Reward program source (rl).")
    reward_template: str | None = Field(default=None, description="Reward template id, when no program is given.")
    reward_params: dict[str, float | str] = Field(default_factory=dict, description="Template parameters.")
    goal: MotionGoal | None = Field(default=None, description="Target of a motion-planned subtask.")
    script: Literal["open_hand", "close_hand", "power_grasp", "hold"] | None = Field(
        default=None, description="What a scripted subtask does."
    )
    dexgen: DexGenUse | None = Field(
        default=None,
        description="How a dexgen subtask uses the DexGen model (the fingers; the wrist holds); None: defaults.",
    )
    safety_filter: DexGenUse | None = Field(
        default=None,
        description="rl only: once trained, the policy's actions pass through DexGen (its `mode`; `strength`: "
        "how closely DexGen follows the policy), which keeps the fingers to motions its data showed hold the "
        "object; applies when the plan runs and collects trajectories, not in training.",
    )
    action_mode: Literal["delta", "absolute"] = Field(
        default="delta", description="rl: actions move targets by steps (delta) or set them in the joint range."
    )
    lift_test: float | None = Field(
        default=None,
        ge=0.0,
        le=0.3,
        description="rl with a frozen wrist: raise the palm this much (m) over the last `lift_test_steps` steps "
        "of every episode, in training and in use, so that success (e.g. `lifted`) means a grasp that holds.",
    )
    lift_test_steps: int = Field(default=20, ge=1, le=500, description="Steps of the lift test's rise.")
    lift_test_hold: int = Field(
        default=0,
        ge=0,
        le=500,
        description="Steps at the end of the episode, after the rise, with the palm kept up: a grasp that only "
        "carries the object while the palm accelerates drops it here (success is judged at the end).",
    )
    lift_test_shift: tuple[float, float] | None = Field(
        default=None,
        description="Palm move (m, world x and y) over the first `lift_test_steps` steps of the hold, after the "
        "rise: a lift test that also asks what a carry sideways will ask (a pinch that holds still drops here).",
    )
    episode_length: int = Field(default=150, ge=1, le=100_000, description="Control steps per episode.")
    target_success: float = Field(default=0.8, gt=0.0, le=1.0, description="RL stops early at this success rate.")
    budget: Budget = Field(default_factory=Budget)
    start: Literal["initial", "previous"] = Field(
        default="previous", description="Start from the task's layout, or from the previous subtask's end states."
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> SubtaskSpec:
        if self.controller == "rl" and not (self.reward or self.reward_template):
            raise ValueError(f"subtask '{self.name}': an rl subtask needs `reward` or `reward_template`")
        if self.controller == "motion_plan" and self.goal is None:
            raise ValueError(f"subtask '{self.name}': a motion_plan subtask needs a `goal`")
        if self.safety_filter is not None and self.controller != "rl":
            raise ValueError(f"subtask '{self.name}': only an rl subtask's policy can go through a `safety_filter`")
        if self.safety_filter is not None and self.safety_filter.fingertip_offset is not None:
            raise ValueError(f"subtask '{self.name}': a `safety_filter` follows the policy, not a fingertip_offset")
        if self.controller == "scripted" and self.script is None:
            raise ValueError(f"subtask '{self.name}': a scripted subtask needs a `script`")
        if self.lift_test and self.lift_test_steps + self.lift_test_hold >= self.episode_length:
            raise ValueError(
                f"subtask '{self.name}': the lift test ({self.lift_test_steps} steps rising + {self.lift_test_hold} "
                f"held) must leave time to grasp within episode_length {self.episode_length}"
            )
        if self.lift_test_shift is not None and not (self.lift_test and self.lift_test_hold >= self.lift_test_steps):
            raise ValueError(
                f"subtask '{self.name}': `lift_test_shift` moves the palm during the lift test's hold, so it needs "
                f"`lift_test` and `lift_test_hold` >= `lift_test_steps` ({self.lift_test_steps})"
            )
        return self


class Plan(_Model):
    task: str = Field(description="Name of the TaskSpec this plan is for.")
    subtasks: list[SubtaskSpec] = Field(min_length=1, description="In execution order.")

    @model_validator(mode="after")
    def _unique(self) -> Plan:
        names = [s.name for s in self.subtasks]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"subtask names must be unique; repeated: {sorted(dup)}")
        return self

    def check_against(self, spec: TaskSpec) -> None:
        """Object names in goals and predicates must exist in the task; raises PlanError."""
        names = [o.key for o in spec.objects]
        for sub in self.subtasks:
            refs = [p.object for p in sub.success] + [getattr(p, "container", None) for p in sub.success]
            refs += [getattr(p, "surface", None) for p in sub.success]
            if sub.goal is not None:
                refs.append(sub.goal.relative_to)
            for ref in refs:
                if ref is not None and ref not in names:
                    raise PlanError(f"subtask '{sub.name}': no object named '{ref}' in task '{spec.name}'; {names}")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: Path) -> Path:
        Path(path).write_text(self.to_yaml())
        return Path(path)

    @classmethod
    def load(cls, path: Path | str) -> Plan:
        path = Path(path)
        if not path.is_file():
            raise PlanError(f"no such plan file: {path}")
        try:
            data = load_yaml(path.read_text())
        except yaml.YAMLError as exc:
            raise PlanError(f"{path}: malformed YAML: {' '.join(str(exc).split())}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PlanError(f"{path}: {describe_validation_error(exc)}") from None
