"""The metrics contract: every key `HandEnv` publishes each step, with its shape and unit.

Reward programs and success predicates read nothing else. Every tensor has `num_envs` (N) leading.
Keys about one object are prefixed with the object's name: `cube.pos`, `bowl.contacts`, ... Shapes
use N (envs), D (robot joints), A (active joints, the action size), J (the object's articulation
joints). `tests/test_env.py` checks that the environment publishes exactly these keys and shapes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDoc:
    shape: str
    unit: str
    description: str


PARTS = "thumb, index, middle, ring, little, palm"

GLOBAL_METRICS: dict[str, MetricDoc] = {
    "fingertip_pos": MetricDoc(
        "(N, 5, 3)", "m", "Fingertip positions, world frame: thumb, index, middle, ring, little."
    ),
    "palm_pos": MetricDoc("(N, 3)", "m", "Centre of the palm's surface, world frame."),
    "palm_quat": MetricDoc("(N, 4)", "quaternion wxyz", "Orientation of the palm link."),
    "palm_normal": MetricDoc("(N, 3)", "unit vector", "Direction the palm faces (out of the palm's surface)."),
    "palm_angvel": MetricDoc("(N, 3)", "rad/s", "Angular velocity of the palm link, world frame."),
    "joint_pos": MetricDoc("(N, D)", "rad or m", "Robot joint positions (wrist/arm joints first, then the hand)."),
    "joint_vel": MetricDoc("(N, D)", "rad/s or m/s", "Robot joint velocities."),
    "hand_closure": MetricDoc("(N,)", "1", "Mean flexion of the fingers' curling joints, 0 open .. 1 fully curled."),
    "targets": MetricDoc("(N, D)", "rad or m", "PD position targets of all robot joints (frozen ones hold theirs)."),
    "actions": MetricDoc("(N, A)", "1", "This step's actions in [-1, 1], one per active joint."),
    "prev_actions": MetricDoc("(N, A)", "1", "Previous step's actions."),
    "step": MetricDoc("(N,)", "steps", "Control steps since the episode began (after this step)."),
    "time": MetricDoc("(N,)", "s", "Simulated time since the episode began."),
    "success": MetricDoc("(N,)", "bool", "All success predicates of the task hold."),
    "success_parts": MetricDoc("(N, P)", "bool", "Each success predicate, in the order of the spec."),
}

OBJECT_METRICS: dict[str, MetricDoc] = {
    "pos": MetricDoc("(N, 3)", "m", "Centre of the object's bounding box, world frame."),
    "quat": MetricDoc("(N, 4)", "quaternion wxyz", "Orientation."),
    "linvel": MetricDoc("(N, 3)", "m/s", "Linear velocity."),
    "angvel": MetricDoc("(N, 3)", "rad/s", "Angular velocity."),
    "angvel_in_palm": MetricDoc(
        "(N, 3)",
        "rad/s",
        "Angular velocity relative to the palm, in the palm link's frame: x toward the thumb, y out of the back "
        "of the hand (minus the palm normal), z along the fingers. In-hand rotation, whatever the wrist does.",
    ),
    "start_pos": MetricDoc("(N, 3)", "m", "Position at the start of the episode."),
    "start_quat": MetricDoc("(N, 4)", "quaternion wxyz", "Orientation at the start of the episode."),
    "lift": MetricDoc("(N,)", "m", "Rise of the centre since the start of the episode."),
    "palm_dist": MetricDoc("(N,)", "m", "Distance from the palm's centre to the object's centre."),
    "fingertip_dist": MetricDoc("(N, 5)", "m", "Distance from each fingertip to the object's centre."),
    "contacts": MetricDoc("(N, 6)", "bool", f"Which hand parts touch the object: {PARTS}."),
    "contact_force": MetricDoc("(N, 6)", "N", f"Contact force magnitude per hand part: {PARTS}."),
    "n_contacts": MetricDoc("(N,)", "count", "Number of hand parts touching the object."),
    "on_ground": MetricDoc("(N,)", "bool", "The object touches the ground."),
    "grasped": MetricDoc("(N,)", "bool", "The thumb or palm and at least one finger touch the object."),
    "grasp_time": MetricDoc("(N,)", "s", "How long the object has been grasped and off the ground without a break."),
    "joint_pos": MetricDoc("(N, J)", "rad or m", "Articulation joint positions (articulated objects only)."),
    "open_fraction": MetricDoc("(N,)", "1", "First articulation joint's position as a fraction of its range."),
}
ARTICULATED_ONLY = ("joint_pos", "open_fraction")


def metric_doc(key: str) -> MetricDoc | None:
    """The documentation of a published key (`palm_pos`, `cube.lift`, ...)."""
    if key in GLOBAL_METRICS:
        return GLOBAL_METRICS[key]
    _, _, field = key.rpartition(".")
    return OBJECT_METRICS.get(field) if "." in key else None


def describe(objects: list[str] | None = None) -> str:
    """A table of the metrics for people and for a model writing reward code."""
    lines = ["key | shape | unit | meaning", "--- | --- | --- | ---"]
    for key, doc in GLOBAL_METRICS.items():
        lines.append(f"{key} | {doc.shape} | {doc.unit} | {doc.description}")
    for name in objects or ["<object>"]:
        for field, doc in OBJECT_METRICS.items():
            lines.append(f"{name}.{field} | {doc.shape} | {doc.unit} | {doc.description}")
    return "\n".join(lines)
