"""The offline reward-writer: a reward template rendered with the subtask's objects and tuned weights.

The template is the subtask's own (`reward_template`), else the one its success predicates or its name
point to. On a retry the weights start from the previous program's `W_*` constants (read with `ast`) and
move by the training statistics (per component, the weighted mean per step): a shaping component whose
unweighted mean stays near zero doubles; when the success bonus never fired, the stepping-stone
components (the ones nearest success: grasp, lift, goal distance, rotation, open progress) grow by half
and a component already saturated (above 0.9, paid for doing nothing) halves. Without statistics the
stepping stones grow. Every program passes `check_program` before it is returned.
"""

from __future__ import annotations

import ast
import math

from dexforge.agents.schemas import RewardBrief, RewardDraft
from dexforge.policies.rewards.check import RewardCheckError, check_program
from dexforge.policies.rewards.templates import TEMPLATES, render
from dexforge.policies.subtask import SubtaskSpec
from dexforge.sim.spec import Inside, Lifted, Moved, On, Opened, Reached, Rotated, TaskSpec, Touching

STEPPING = {
    "reach": ("fingertip_proximity", "palm_proximity"),
    "grasp": ("grasp", "squeeze"),
    "lift": ("lift", "grasp"),
    "transport": ("goal_distance",),
    "place": ("goal_distance", "alignment"),
    "release": ("no_contact", "goal_distance"),
    "rotate": ("rotation",),
    "push": ("goal_distance", "contact"),
    "pull_open": ("open_progress", "contact"),
}
FIXED = ("action_penalty", "success_bonus")  # not tuned: a constant cost and the goal itself
PENALTIES = ("drop_penalty",)
NEAR_ZERO = 0.05  # unweighted mean per step below which a shaping term gives the policy nothing to follow
SATURATED = 0.9
MAX_WEIGHT = 20.0
COMPONENTS = {
    "fingertip_proximity": "fingertips near the object",
    "palm_proximity": "palm near the object",
    "contact": "hand parts touching the object",
    "grasp": "the object held (thumb or palm plus a finger)",
    "squeeze": "grip force while held",
    "closure": "fingers curled while touching",
    "lift": "rise of the held object",
    "goal_distance": "object near its goal",
    "alignment": "object over the container",
    "hand_clearance": "fingertips away after release",
    "no_contact": "hand off the object",
    "rotation": "turned by the goal angle",
    "rotation_velocity": "spinning the right way",
    "open_progress": "joint opened towards the goal fraction",
    "object_stability": "object calm (not knocked or spun)",
    "drop_penalty": "object dropped",
    "action_penalty": "large actions",
    "success_bonus": "all success predicates hold",
}
NAME_HINTS = (
    ("grasp", "grasp"),
    ("lift", "lift"),
    ("rotat", "rotate"),
    ("turn", "rotate"),
    ("push", "push"),
    ("pull", "pull_open"),
    ("open", "pull_open"),
    ("transport", "transport"),
    ("carry", "transport"),
    ("place", "place"),
    ("release", "release"),
    ("reach", "reach"),
    ("approach", "reach"),
)


def choose_template(sub: SubtaskSpec) -> tuple[str, str]:
    """(template id, why) from the subtask's template, its success predicates or its name."""
    if sub.reward_template in TEMPLATES:
        return sub.reward_template, f"the subtask names the `{sub.reward_template}` template"
    kinds = [type(p) for p in sub.success]
    specific = ((Rotated, "rotate"), (Opened, "pull_open"), (Moved, "push"), (Inside, "place"), (On, "place"))
    for kind, template in specific:
        if kind in kinds:
            return template, f"its success predicate `{kind.__name__.lower()}` calls for `{template}`"
    for hint, template in NAME_HINTS:
        if hint in sub.name.lower():
            return template, f"its name '{sub.name}' calls for `{template}`"
    for kind, template in ((Lifted, "lift"), (Touching, "grasp"), (Reached, "reach")):
        if kind in kinds:
            return template, f"its success predicate `{kind.__name__.lower()}` calls for `{template}`"
    return "grasp", "nothing more specific fits; `grasp` is the usual first contact-rich step"


def template_params(template: str, sub: SubtaskSpec, spec: TaskSpec) -> dict[str, float | str]:
    """The template's parameters: the subtask's own, completed from its predicates and the spec."""
    names = {p.name for p in TEMPLATES[template].params}
    params = {k: v for k, v in sub.reward_params.items() if k in names}
    preds = list(sub.success) or list(spec.success)
    obj = preds[0].object if preds else spec.objects[0].key
    params.setdefault("obj", obj)
    for p in preds:
        if isinstance(p, Inside | On) and "container" in names:
            params.setdefault("container", p.container if isinstance(p, Inside) else p.surface)
        if isinstance(p, Moved) and "dx" in names:
            params.setdefault("dx", round(p.offset[0], 4))
            params.setdefault("dy", round(p.offset[1], 4))
        if isinstance(p, Lifted) and template == "lift":
            params.setdefault("height", p.height)
        if isinstance(p, Rotated) and template == "rotate":
            params.setdefault("axis", p.axis)
            params.setdefault("angle", p.angle)
        if isinstance(p, Opened) and template == "pull_open":
            params.setdefault("fraction", p.fraction)
    if "container" in names and "container" not in params:
        others = [o.key for o in spec.objects if o.key != params["obj"]]
        params["container"] = others[0] if others else str(params["obj"])
    return {k: params[k] for k in sorted(params) if k in names}


def previous_weights(source: str | None, template: str) -> dict[str, float]:
    """The `W_<COMPONENT>` constants of a previous program (read with ast), for this template's components."""
    if not source:
        return {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    comps = {f"W_{name.upper()}": name for name in TEMPLATES[template].weights}
    out: dict[str, float] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = node.targets[0].id
            value = node.value
            if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub):
                value = ast.Constant(-value.operand.value) if isinstance(value.operand, ast.Constant) else value
            if key in comps and isinstance(value, ast.Constant) and isinstance(value.value, int | float):
                out[comps[key]] = float(value.value)
    return out


def component_means(stats: dict | None) -> dict[str, float]:
    """Component -> weighted mean per step, from `{"components": {...}}` or a flat dict."""
    if not stats:
        return {}
    comps = stats.get("components", stats)
    out: dict[str, float] = {}
    for key, value in comps.items():
        if isinstance(value, dict):
            value = value.get("mean")
        if isinstance(value, int | float) and math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


def tune(template: str, weights: dict[str, float], stats: dict | None) -> tuple[dict[str, float], list[str]]:
    """New weights from the last attempt's statistics, and one line per change."""
    means = component_means(stats)
    new = dict(weights)
    why: list[str] = []
    raw = {c: means[c] / w for c, w in weights.items() if c in means and w != 0}
    stepping = [c for c in STEPPING.get(template, ()) if c in weights]
    if not raw:
        for c in stepping:
            new[c] = _cap(weights[c] * 1.5)
            why.append(f"{c} {weights[c]:g} -> {new[c]:g}: no statistics; the stepping stones to success grow")
        return new, why
    bonus_fired = raw.get("success_bonus", 0.0) > 1e-3
    for c, w in weights.items():
        if c in FIXED or c not in raw:
            continue
        if c in PENALTIES:
            if raw[c] < -0.1:
                new[c] = _cap(w * 1.5)
                why.append(f"{c} {w:g} -> {new[c]:g}: it fires in {-raw[c]:.0%} of steps; it should cost more")
        elif abs(raw[c]) < NEAR_ZERO:
            new[c] = _cap(w * 2.0)
            why.append(f"{c} {w:g} -> {new[c]:g}: its mean stayed at {raw[c]:.3f}, near zero; doubled")
    if not bonus_fired:
        for c in stepping:
            if new[c] == weights[c]:
                new[c] = _cap(weights[c] * 1.5)
                why.append(f"{c} {weights[c]:g} -> {new[c]:g}: the success bonus never fired; a stepping stone")
        for c, w in weights.items():
            if c not in FIXED and c not in PENALTIES and c not in stepping and raw.get(c, 0.0) > SATURATED:
                new[c] = round(w * 0.5, 4)
                why.append(f"{c} {w:g} -> {new[c]:g}: saturated at {raw[c]:.2f}, it pays for standing still")
    if new == weights:
        for c in stepping:
            new[c] = _cap(weights[c] * 1.25)
        why.append("no component stood out; the stepping stones grow by a quarter so the retry differs")
    return new, why


def _cap(w: float) -> float:
    return round(min(w, MAX_WEIGHT), 4)


def remembered_reward(brief: RewardBrief) -> RewardDraft | None:
    """The reward program that passed for this subtask in the most similar task that succeeded, on a
    first attempt, when it only reads metrics this scene publishes."""
    if brief.attempt > 0 or brief.error:
        return None
    for ex in brief.examples:
        source = ex.rewards.get(brief.subtask.name)
        if not source:
            continue
        try:
            check_program(source, available_keys=list(brief.metrics) or None)
        except RewardCheckError:
            continue
        why = (
            f"The reward program that passed for '{brief.subtask.name}' in '{ex.request}' (memory {ex.id}, "
            f"similarity {ex.similarity:.2f}), unchanged."
        )
        return RewardDraft(reasoning=why, subtask=brief.subtask.name, source=source)
    return None


def write_reward(brief: RewardBrief) -> RewardDraft:
    sub = brief.subtask
    remembered = remembered_reward(brief)
    if remembered is not None:
        return remembered
    template, why_template = choose_template(sub)
    params = template_params(template, sub, brief.spec)
    defaults = dict(TEMPLATES[template].weights)
    weights = {**defaults, **previous_weights(brief.previous, template)}
    lines = [f"Template `{template}` ({why_template}): {TEMPLATES[template].description}"]
    lines.append("Parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()) + ".")
    if brief.attempt > 0:
        weights, changes = tune(template, weights, brief.stats)
        failure = f" after: {brief.failure.strip()}" if brief.failure else ""
        lines.append(f"Attempt {brief.attempt + 1}{failure}. Weight changes: " + "; ".join(changes) + ".")
    lines.append(
        "Components (weight): " + "; ".join(f"{k} ({v:g}): {COMPONENTS.get(k, k)}" for k, v in weights.items()) + "."
    )
    source = render(template, weights=weights, **params)
    check_program(source, available_keys=list(brief.metrics) or None)
    return RewardDraft(reasoning=" ".join(lines), subtask=sub.name, source=source)
