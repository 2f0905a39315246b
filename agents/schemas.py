"""What each role decides, as pydantic schemas (reasons before verdicts), and what each role is given.

The four roles (proposer, critic, decomposer, reward-writer) answer with these models whichever
backend runs them (a model behind an OpenAI-compatible endpoint, or the offline reasoner). Every
answer is validated before the graph uses it; an invalid one goes back to the role with the error.
The briefs (`*Brief`) are what a role is given: the same fields reach the prompt of a model and the
offline reasoner.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from dexforge.policies.subtask import Plan, SubtaskSpec
from dexforge.sim.spec import TaskSpec

Vec3 = tuple[float, float, float]
TaskFamily = Literal["lift", "place", "rotate", "open", "push"]
TASK_FAMILIES: tuple[str, ...] = ("lift", "place", "rotate", "open", "push")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# answers ----------------------------------------------------------------------------------------------
class TaskProposal(_Model):
    """The proposer's answer: a task grounded in the asset catalog."""

    reasoning: str = Field(description="How the request was understood: the objects, the goal, the numbers.")
    family: TaskFamily = Field(description="Kind of task: lift, place (in/on), rotate (in hand), open, push.")
    spec: TaskSpec = Field(description="The full task: hand, objects (catalog ids), success predicates.")


class Move(_Model):
    kind: Literal["move"] = "move"
    object: str = Field(description="Name of the object to move.")
    pos: Vec3 = Field(description="New position of the object's bounding-box centre, metres.")


class Scale(_Model):
    kind: Literal["scale"] = "scale"
    object: str = Field(description="Name of the object to rescale.")
    scale: float = Field(gt=0.0, le=10.0, description="New uniform scale factor (replaces the current one).")


class Rotate(_Model):
    kind: Literal["rotate"] = "rotate"
    object: str = Field(description="Name of the object to turn.")
    euler: Vec3 = Field(description="New orientation, degrees, extrinsic x-y-z.")


class Replace(_Model):
    kind: Literal["replace"] = "replace"
    object: str = Field(description="Name of the object to replace.")
    asset: str = Field(description="Catalog id of the new asset; the object keeps its name and pose.")


class Remove(_Model):
    kind: Literal["remove"] = "remove"
    object: str = Field(description="Name of the object to remove (not one the success predicates name).")


Correction = Annotated[Move | Scale | Rotate | Replace | Remove, Field(discriminator="kind")]


class Critique(_Model):
    """The critic's answer: what it sees first, then what to change, then the verdict."""

    findings: list[str] = Field(
        default_factory=list, description="What is wrong or doubtful in the scene, each with its evidence."
    )
    corrections: list[Correction] = Field(
        default_factory=list, description="Typed changes that fix the findings; applied to the spec by code."
    )
    verdict: Literal["accept", "revise"] = Field(description="accept: train this scene; revise: apply the changes.")


class Decomposition(_Model):
    """The decomposer's answer: an ordered plan of subtasks."""

    reasoning: str = Field(description="Why these subtasks, controllers and active joints.")
    plan: Plan = Field(description="The subtasks in execution order.")


class RewardDraft(_Model):
    """The reward-writer's answer for one rl subtask."""

    reasoning: str = Field(description="What each component rewards and why the weights are what they are.")
    subtask: str = Field(description="Name of the subtask this reward is for.")
    source: str = Field(
        description="Python source defining `compute_reward(m) -> (reward, components)`; only `m[...]`, "
        "`torch` and `math`; no imports."
    )


# briefs -----------------------------------------------------------------------------------------------
class Example(_Model):
    """A similar task solved before (from the experience store): what worked, to start from."""

    id: str = Field(description="Experience-store id of the task record.")
    request: str
    family: str = ""
    similarity: float = Field(description="Cosine similarity of its request to this one, 0..1.")
    task_success_rate: float | None = None
    plan_yaml: str = Field(default="", description="The plan that worked, YAML.")
    rewards: dict[str, str] = Field(default_factory=dict, description="rl subtask name -> reward program that passed.")


class ProposeBrief(_Model):
    request: str = Field(description="What the user asked for.")
    history: list[str] = Field(default_factory=list, description="Earlier requests of this conversation, oldest first.")
    memories: list[str] = Field(default_factory=list, description="Similar past tasks and how they went.")
    previous: TaskSpec | None = Field(default=None, description="The current proposal, when revising it.")
    amendment: str | None = Field(default=None, description="The user's change to the current proposal, in words.")
    error: str | None = Field(default=None, description="Why the last answer was rejected.")


class InventBrief(_Model):
    """Overnight: invent new tasks (the proposer's other job)."""

    count: int = Field(ge=1, le=50, description="How many new requests to invent.")
    avoid: list[str] = Field(
        default_factory=list, description="Requests already in memory or in this batch: invent something else."
    )
    seed: int = Field(default=0, description="Seed for whatever is drawn at random.")
    error: str | None = Field(default=None, description="Why the last answer was rejected.")


class Invention(_Model):
    reasoning: str = Field(description="Why these tasks: what they add to what is already held.")
    requests: list[str] = Field(description="New requests, each one sentence a user could have typed.")


class CritiqueBrief(_Model):
    request: str
    spec: TaskSpec
    findings: list[dict] = Field(default_factory=list, description="Physics-check findings (sim.checks.Finding).")
    renders: list[str] = Field(default_factory=list, description="Paths of the multi-view renders (PNG).")
    round: int = Field(default=0, description="Critic rounds already done for this task.")
    memories: list[str] = Field(default_factory=list, description="Known pitfalls from similar past tasks.")


class DecomposeBrief(_Model):
    request: str
    family: TaskFamily
    spec: TaskSpec
    memories: list[str] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list, description="Similar tasks solved before, best first.")
    previous: Plan | None = Field(default=None, description="The plan that failed, when decomposing again.")
    failure: str | None = Field(default=None, description="Why the previous plan failed.")
    error: str | None = Field(default=None, description="Why the last answer was rejected.")


class RewardBrief(_Model):
    request: str
    spec: TaskSpec
    subtask: SubtaskSpec
    metrics: dict[str, str] = Field(default_factory=dict, description="Metric key -> shape and meaning.")
    attempt: int = Field(default=0, description="Reward attempts already made for this subtask.")
    previous: str | None = Field(default=None, description="The last reward program for this subtask.")
    stats: dict | None = Field(default=None, description="Training statistics of the last attempt per component.")
    failure: str | None = Field(default=None, description="Why the last attempt failed (success rate, error).")
    memories: list[str] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list, description="Similar tasks solved before, best first.")
    error: str | None = Field(default=None, description="Why the last answer was rejected.")
