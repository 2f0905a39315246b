"""Reward templates: complete reward programs for the usual subtask kinds, parameterised by object names.

`render("lift", obj="cube", height=0.15, weights={"grasp": 2.0})` returns program source. Object parameters
fill `{obj}`-style placeholders inside metric keys; numbers and axes become named constants at the top of
the program, next to one weight constant `W_<COMPONENT>` per component, so a reward-writer can read and
adjust them on retry (in `weights=` or by editing the text). Every component is bounded (`exp(-k d)`,
`1 - tanh(k d)`, fractions, booleans) and already weighted; the reward is the sum of the components. The
component names follow the GenDexHand overview: fingertip proximity, contacts, lift, object-to-goal
distance, object stability, action penalty, success bonus.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

from dexforge.policies.rewards.check import RewardError

_OBJECT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
PALM_AXES = {"thumb": (1.0, 0.0, 0.0), "normal": (0.0, -1.0, 0.0), "fingers": (0.0, 0.0, 1.0)}
"""Axes of the palm link's frame by what they point at: toward the thumb, out of the palm, along the fingers."""
ACTION_PENALTY = 0.01  # default weight of the action penalty in every template
SUCCESS_BONUS = 5.0  # default weight of the success bonus in every template


class RewardTemplateError(RewardError):
    """A template id, parameter or weight that does not exist, or a value of the wrong kind."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    """"object" (a name in the scene), "number", "axis" (world x, y or z) or "palm_axis" (thumb, normal, fingers)."""
    default: float | str | None = None
    """None: required."""
    description: str = ""


@dataclass(frozen=True)
class RewardTemplate:
    id: str
    description: str
    params: tuple[Param, ...]
    weights: dict[str, float]
    """Component name -> default weight; the components the program returns, in order."""
    body: str
    """Shaping constants and `compute_reward`, with `{object-param}` placeholders."""


_ACTION = 'm["actions"].pow(2).sum(-1) / max(m["actions"].shape[-1], 1)'
_SHARED = {"action_penalty": (ACTION_PENALTY, f"-{_ACTION}"), "success_bonus": (SUCCESS_BONUS, 'm["success"].float()')}
_OBJ = Param("obj", "object", None, "The object to act on.")
_CONTAINER = Param("container", "object", None, "The container or target object.")
_TIPS = 'tip = m["{obj}.fingertip_dist"].mean(-1)'
_SPIN = 'm["{obj}.angvel"].norm(dim=-1)'
_SPEED = 'm["{obj}.linvel"].norm(dim=-1)'


def _template(
    id: str,
    description: str,
    params: tuple[Param, ...],
    scales: dict[str, float],
    lines: tuple[str, ...],
    terms: dict[str, tuple[float, str]],
    helpers: str = "",
) -> RewardTemplate:
    """A template from its shaping scales, body lines and `component -> (default weight, expression)`."""
    terms = {**terms, **_SHARED}
    head = "# shaping scales\n" + "".join(f"{k} = {v!r}\n" for k, v in scales.items())
    body = "".join(f"    {line}\n" for line in lines)
    entries = "".join(
        f'        "{name}": {"-" if expr.startswith("-") else ""}W_{name.upper()} * {expr.removeprefix("-")},\n'
        for name, (_, expr) in terms.items()
    )
    program = f"{head}{helpers}\n\ndef compute_reward(m):\n{body}    comps = {{\n{entries}    }}\n"
    program += "    return sum(comps.values()), comps\n"
    return RewardTemplate(id, description, params, {k: w for k, (w, _) in terms.items()}, program)


_QUAT = """

def quat_mul(a, b):
    aw, ax, ay, az = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
    bw, bx, by, bz = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    w = aw * bw - ax * bx - ay * by - az * bz
    x = aw * bx + ax * bw + ay * bz - az * by
    y = aw * by - ax * bz + ay * bw + az * bx
    z = aw * bz + ax * by - ay * bx + az * bw
    return torch.stack([w, x, y, z], -1)


def twist(q, axis):
    angle = 2.0 * torch.atan2((q[:, 1:] * axis).sum(-1), q[:, 0])
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
"""

TEMPLATES: dict[str, RewardTemplate] = {
    t.id: t
    for t in [
        _template(
            "reach",
            "Bring the fingertips and palm close to the object without pushing it away.",
            (_OBJ,),
            {"K_TIP": 10.0, "K_PALM": 10.0, "K_MOVE": 20.0},
            (_TIPS, 'moved = (m["{obj}.pos"] - m["{obj}.start_pos"]).norm(dim=-1)'),
            {
                "fingertip_proximity": (1.0, "torch.exp(-K_TIP * tip)"),
                "palm_proximity": (0.5, '(1 - torch.tanh(K_PALM * m["{obj}.palm_dist"]))'),
                "object_stability": (0.5, "torch.exp(-K_MOVE * moved)"),
            },
        ),
        _template(
            "approach",
            "Bring the palm's centre to the point (`dx`, `dy`, `dz`) m from the object's centre, without moving it.",
            (
                _OBJ,
                Param("dx", "number", 0.0, "Goal offset from the object's centre along x, m."),
                Param("dy", "number", 0.0, "Goal offset along y, m."),
                Param("dz", "number", 0.1, "Goal offset along z, m."),
            ),
            {"K_GOAL": 10.0, "K_MOVE": 20.0},
            (
                'goal = m["{obj}.pos"] + torch.tensor([DX, DY, DZ], device=m["palm_pos"].device)',
                'dist = (m["palm_pos"] - goal).norm(dim=-1)',
                'moved = (m["{obj}.pos"] - m["{obj}.start_pos"]).norm(dim=-1)',
            ),
            {
                "goal_distance": (2.0, "torch.exp(-K_GOAL * dist)"),
                "object_stability": (0.5, "torch.exp(-K_MOVE * moved)"),
            },
        ),
        _template(
            "grasp",
            "Close the thumb and fingers around the object so that it is held (thumb or palm plus a finger) and "
            "rises with the palm in a lift test.",
            (_OBJ, Param("height", "number", 0.08, "The lift test's rise, m: the object rising with it pays.")),
            {"K_TIP": 10.0, "K_MOVE": 10.0, "F_GRIP": 150.0},
            (
                _TIPS,
                'c = m["{obj}.contacts"].float()',
                'moved = (m["{obj}.pos"][:, :2] - m["{obj}.start_pos"][:, :2]).norm(dim=-1)',
                'grip = torch.clamp(m["{obj}.contact_force"].sum(-1) / F_GRIP, 0.0, 1.0)',
            ),
            {
                "fingertip_proximity": (1.0, "torch.exp(-K_TIP * tip)"),
                "contact": (1.0, "(0.5 * c[:, 0] + 0.5 * c[:, 1:5].mean(-1))"),
                "grasp": (2.0, 'm["{obj}.grasped"].float()'),
                "squeeze": (1.0, 'grip * m["{obj}.grasped"].float()'),
                "carry": (2.0, 'torch.clamp(m["{obj}.lift"] / HEIGHT, 0.0, 1.0) * m["{obj}.grasped"].float()'),
                "closure": (1.0, 'm["hand_closure"] * (c.sum(-1) > 0).float()'),
                "object_stability": (0.5, "torch.exp(-K_MOVE * moved)"),
            },
        ),
        _template(
            "lift",
            "Grasp the object and raise it `height` metres above where it started.",
            (_OBJ, Param("height", "number", 0.1, "Lift height, m.")),
            {"K_TIP": 10.0, "K_SPIN": 0.5},
            (_TIPS, 'held = m["{obj}.grasped"].float()', 'rise = torch.clamp(m["{obj}.lift"] / HEIGHT, 0.0, 1.0)'),
            {
                "fingertip_proximity": (0.5, "torch.exp(-K_TIP * tip)"),
                "grasp": (1.0, "held"),
                "lift": (3.0, "rise * held"),
                "object_stability": (0.5, f"torch.exp(-K_SPIN * {_SPIN})"),
            },
        ),
        _template(
            "transport",
            "Carry the held object to `clearance` metres above the container's centre.",
            (_OBJ, _CONTAINER, Param("clearance", "number", 0.1, "Height above the container's centre, m.")),
            {"K_GOAL": 5.0, "K_SPIN": 0.5, "MIN_LIFT": 0.03},
            (
                'held = m["{obj}.grasped"].float()',
                'goal = m["{container}.pos"] + torch.tensor([0.0, 0.0, CLEARANCE], device=held.device)',
                'dist = (m["{obj}.pos"] - goal).norm(dim=-1)',
            ),
            {
                "grasp": (1.0, "held"),
                "lift": (0.5, 'torch.clamp(m["{obj}.lift"] / MIN_LIFT, 0.0, 1.0) * held'),
                "goal_distance": (3.0, "torch.exp(-K_GOAL * dist) * held"),
                "object_stability": (0.5, f"torch.exp(-K_SPIN * {_SPIN})"),
            },
        ),
        _template(
            "place",
            "Lower the held object slowly to `height` metres above the container's centre, aligned over it.",
            (_OBJ, _CONTAINER, Param("height", "number", 0.03, "Goal height of the object above the container, m.")),
            {"K_XY": 20.0, "K_GOAL": 10.0, "K_SPEED": 2.0},
            (
                'rel = m["{obj}.pos"] - m["{container}.pos"]',
                "xy = rel[:, :2].norm(dim=-1)",
                "dz = (rel[:, 2] - HEIGHT).abs()",
            ),
            {
                "alignment": (1.0, "torch.exp(-K_XY * xy)"),
                "goal_distance": (2.0, "torch.exp(-K_GOAL * (xy + dz))"),
                "contact": (0.5, '(m["{obj}.n_contacts"] >= 2).float()'),
                "object_stability": (0.5, f"torch.exp(-K_SPEED * {_SPEED})"),
            },
        ),
        _template(
            "release",
            "Open the hand and withdraw the fingers, leaving the object resting at the container.",
            (_OBJ, _CONTAINER),
            {"K_CLEAR": 10.0, "K_XY": 20.0, "K_SPEED": 2.0},
            (_TIPS, 'xy = (m["{obj}.pos"][:, :2] - m["{container}.pos"][:, :2]).norm(dim=-1)'),
            {
                "hand_clearance": (1.0, "torch.tanh(K_CLEAR * tip)"),
                "no_contact": (1.0, '(1 - m["{obj}.contacts"].float().mean(-1))'),
                "goal_distance": (1.0, "torch.exp(-K_XY * xy)"),
                "object_stability": (1.0, f"torch.exp(-K_SPEED * {_SPEED})"),
            },
        ),
        _template(
            "hold",
            "Keep the held object in the hand, off the ground and steady, while the wrist moves and turns.",
            (_OBJ,),
            {"K_PALM": 10.0, "K_SPIN": 0.5},
            ('held = m["{obj}.grasped"].float()',),
            {
                "grasp": (2.0, "held"),
                "aloft": (1.0, '(1.0 - m["{obj}.on_ground"].float())'),
                "near_palm": (1.0, 'torch.exp(-K_PALM * m["{obj}.palm_dist"])'),
                "object_stability": (0.5, f"torch.exp(-K_SPIN * {_SPIN})"),
            },
        ),
        _template(
            "rotate",
            "Turn the object in the hand by `angle` degrees about the world `axis`, keeping it held in place.",
            (_OBJ, Param("axis", "axis", "z", "World axis: x, y or z."), Param("angle", "number", 90.0, "deg.")),
            {"K_ROT": 2.0, "K_MOVE": 10.0, "SPIN": 2.0, "TOL": 0.1, "DROP": 0.05},
            (
                'q0 = m["{obj}.start_quat"] * torch.tensor([1.0, -1.0, -1.0, -1.0], device=m["{obj}.quat"].device)',
                "axis = torch.tensor(AXIS, device=q0.device)",
                "target = math.radians(ANGLE)",
                'turned = twist(quat_mul(m["{obj}.quat"], q0), axis)',
                "err = (torch.remainder(turned - target + math.pi, 2 * math.pi) - math.pi).abs()",
                'spin = (m["{obj}.angvel"] * axis).sum(-1) * (1.0 if target >= 0 else -1.0)',
                'moved = (m["{obj}.pos"] - m["{obj}.start_pos"]).norm(dim=-1)',
            ),
            {
                "rotation": (2.0, "torch.exp(-K_ROT * err)"),
                "rotation_velocity": (0.5, "torch.tanh(spin / SPIN) * (err > TOL).float()"),
                "contact": (0.5, '(m["{obj}.n_contacts"] >= 2).float()'),
                "object_stability": (0.5, "torch.exp(-K_MOVE * moved)"),
                "drop_penalty": (2.0, '-(m["{obj}.lift"] < -DROP).float()'),
            },
            helpers=_QUAT,
        ),
        _template(
            "spin",
            "Keep turning the held object about an axis of the palm (toward the thumb, out of the palm, or along the "
            "fingers) at `speed` rad/s while it stays in the hand, whatever the wrist does: in-hand rotation.",
            (
                _OBJ,
                Param("axis", "palm_axis", "normal", "Palm axis: thumb, normal or fingers."),
                Param("speed", "number", 1.0, "rad/s about the axis; negative turns the other way."),
            ),
            {"K_PALM": 10.0},
            (
                'held = m["{obj}.grasped"].float()',
                'w = m["{obj}.angvel_in_palm"]',
                "axis = torch.tensor(AXIS, device=w.device)",
                "along = (w * axis).sum(-1)",
                "off = (w - along[:, None] * axis).norm(dim=-1)",
            ),
            {
                "grasp": (1.0, "held"),
                "spin": (2.0, "torch.clamp(along / SPEED, -1.0, 1.0) * held"),
                "off_axis": (0.3, "-torch.tanh(off / abs(SPEED)) * held"),
                "near_palm": (1.0, 'torch.exp(-K_PALM * m["{obj}.palm_dist"])'),
                "aloft": (1.0, '(1.0 - m["{obj}.on_ground"].float())'),
            },
        ),
        _template(
            "push",
            "Push the object along the support by (dx, dy) metres from where it started, keeping it upright.",
            (_OBJ, Param("dx", "number", 0.1, "m, world x."), Param("dy", "number", 0.0, "m, world y.")),
            {"K_PALM": 10.0, "K_GOAL": 10.0, "K_SPIN": 0.5},
            (
                'goal = m["{obj}.start_pos"][:, :2] + torch.tensor([DX, DY], device=m["{obj}.pos"].device)',
                'dist = (m["{obj}.pos"][:, :2] - goal).norm(dim=-1)',
            ),
            {
                "palm_proximity": (0.5, '(1 - torch.tanh(K_PALM * m["{obj}.palm_dist"]))'),
                "contact": (0.5, 'm["{obj}.contacts"].any(-1).float()'),
                "goal_distance": (3.0, "torch.exp(-K_GOAL * dist)"),
                "object_stability": (0.5, f'm["{{obj}}.on_ground"].float() * torch.exp(-K_SPIN * {_SPIN})'),
            },
        ),
        _template(
            "pull_open",
            "Open the articulated object (drawer, door, lid) to `fraction` of its first joint's range.",
            (_OBJ, Param("fraction", "number", 0.5, "Target open fraction, 0..1.")),
            {"K_TIP": 10.0},
            ('tip = m["{obj}.fingertip_dist"].min(-1).values',),
            {
                "fingertip_proximity": (0.5, "torch.exp(-K_TIP * tip)"),
                "contact": (1.0, '(m["{obj}.n_contacts"] >= 2).float()'),
                "open_progress": (3.0, 'torch.clamp(m["{obj}.open_fraction"] / max(FRACTION, 1e-3), 0.0, 1.0)'),
            },
        ),
    ]
}


def _value(template: RewardTemplate, p: Param, value: float | str) -> str:
    """The literal a parameter value becomes in the program, after checking its kind."""
    if p.kind == "object":
        if not (isinstance(value, str) and _OBJECT_NAME.match(value)):
            raise RewardTemplateError(f"{template.id}: `{p.name}` must be an object name, got {value!r}")
        return value
    if p.kind == "axis":
        if value not in AXES:
            raise RewardTemplateError(f"{template.id}: `{p.name}` must be one of x, y, z, got {value!r}")
        return repr(AXES[str(value)])
    if p.kind == "palm_axis":
        if value not in PALM_AXES:
            raise RewardTemplateError(f"{template.id}: `{p.name}` must be one of {', '.join(PALM_AXES)}, got {value!r}")
        return repr(PALM_AXES[str(value)])
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RewardTemplateError(f"{template.id}: `{p.name}` must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise RewardTemplateError(f"{template.id}: `{p.name}` must be finite, got {value!r}")
    return repr(number)


def render(template_id: str, *, weights: Mapping[str, float] | None = None, **params: float | str) -> str:
    """The program source of a template with its parameters and weights filled in."""
    if template_id not in TEMPLATES:
        raise RewardTemplateError(f"unknown reward template `{template_id}`; choose one of {', '.join(TEMPLATES)}")
    t = TEMPLATES[template_id]
    names = {p.name for p in t.params}
    if unknown := sorted(set(params) - names):
        raise RewardTemplateError(f"{t.id}: unknown parameter(s) {unknown}; it takes {sorted(names)}")
    if unknown := sorted(set(weights or {}) - set(t.weights)):
        raise RewardTemplateError(f"{t.id}: unknown weight(s) {unknown}; its components are {list(t.weights)}")
    body, constants = t.body, []
    for p in t.params:
        value = params.get(p.name, p.default)
        if value is None:
            raise RewardTemplateError(f"{t.id}: parameter `{p.name}` is required ({p.description})")
        literal = _value(t, p, value)
        if p.kind == "object":
            body = body.replace("{" + p.name + "}", literal)
        else:
            constants.append(f"{p.name.upper()} = {literal}  # {p.description}")
    merged = {**t.weights, **(weights or {})}
    for name, w in merged.items():
        if not math.isfinite(float(w)):
            raise RewardTemplateError(f"{t.id}: weight `{name}` must be finite, got {w!r}")
    lines = [f"W_{name.upper()} = {float(w)!r}" for name, w in merged.items()]
    comps = textwrap.fill(f"Components (weighted; the reward is their sum): {', '.join(t.weights)}.", 100)
    doc = f'"""{t.id}: {t.description}\n\n{comps}\n"""'
    return "\n".join([doc, "", "# weights", *lines, *(["# parameters", *constants] if constants else []), "", body])


def describe_templates() -> str:
    """One paragraph per template: what it rewards, its parameters, components and default weights."""
    out = []
    for t in TEMPLATES.values():
        params = ", ".join(
            f"{p.name} ({p.kind}{'' if p.default is None else f', default {p.default}'})" for p in t.params
        )
        weights = ", ".join(f"{k}={v:g}" for k, v in t.weights.items())
        out.append(f"{t.id}: {t.description}\n  params: {params}\n  components (default weights): {weights}")
    return "\n".join(out)
