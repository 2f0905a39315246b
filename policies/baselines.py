"""The controls a decomposed plan is measured against (GenDexHand's table), built from that plan itself.

- `plain_staged_plan`: one rl subtask on every joint from the initial layout, with a *staged* reward made of
  the decomposed plan's own terms: stage k's program is the reward the plan uses for subtask k (its rl
  reward, or the template that matches what a planned or scripted subtask does: approach (palm to the goal point) for an
  approach, lift, transport, release, pull_open), and stage k counts as passed when subtask k's success predicates
  hold. The reward is the number of stages passed plus the next stage's own reward squashed into [0, 1),
  plus a success bonus and an action penalty: the usual staged reward, nothing the decomposition lacks.
- `freeze_only_plan`: the decomposed plan's subtasks with their frozen joints, but every motion-planned
  subtask learnt by rl (on the same joints, with the same stage reward and success) instead of planned.

Both get the same total env-step budget, split evenly over their rl subtasks.
"""

from __future__ import annotations

import textwrap

from dexforge.policies.rewards.templates import TEMPLATES, render
from dexforge.policies.subtask import Budget, Plan, SubtaskSpec
from dexforge.sim.spec import Held, Inside, Lifted, On, Opened, Reached, TaskSpec, Touching

STAGE_WEIGHT = 1.0  # per stage passed
TERM_WEIGHT = 1.0  # the next stage's own reward, squashed into [0, 1)
SUCCESS_BONUS = 5.0
ACTION_PENALTY = 0.01


def stage_source(sub: SubtaskSpec, spec: TaskSpec) -> tuple[str, float]:
    """(reward program, its scale) of one subtask as a stage: the scale is the sum of the template's absolute
    weights (a reward of that size squashes to tanh(1)), 5 for a written program."""
    if sub.controller == "rl":
        if sub.reward:
            return sub.reward, 5.0
        return render(sub.reward_template or "", **sub.reward_params), _scale(sub.reward_template or "")
    template, params = stage_template(sub, spec)
    return render(template, **params), _scale(template)


def stage_template(sub: SubtaskSpec, spec: TaskSpec) -> tuple[str, dict]:
    """The reward template that pays for what a planned or scripted subtask does."""
    obj = next((p.object for p in spec.success), spec.objects[0].key)
    place = next((p for p in spec.success if isinstance(p, Inside | On)), None)
    target = None if place is None else place.container if isinstance(place, Inside) else place.surface
    g = sub.goal
    if sub.controller == "motion_plan" and g is not None:
        if g.pull is not None:
            return "pull_open", {"obj": g.relative_to, "fraction": g.pull}
        if g.lift is not None:
            return "lift", {"obj": obj, "height": g.lift}
        if g.grip > 0 and g.relative_to is not None and g.relative_to != obj:  # carrying the object to a target
            return "transport", {"obj": obj, "container": g.relative_to, "clearance": round(g.offset[2], 4)}
        dx, dy, dz = (round(v, 4) for v in g.offset)
        return "approach", {"obj": g.relative_to or obj, "dx": dx, "dy": dy, "dz": dz}
    if sub.script == "open_hand" and target is not None:
        return "release", {"obj": obj, "container": target}
    opened = next((p for p in spec.success if isinstance(p, Opened)), None)
    if opened is not None:
        return "pull_open", {"obj": opened.object, "fraction": opened.fraction}
    return "reach", {"obj": obj}


def _scale(template_id: str) -> float:
    return sum(abs(w) for w in TEMPLATES[template_id].weights.values()) if template_id in TEMPLATES else 5.0


def condition(sub: SubtaskSpec) -> str:
    """Code (a bool tensor from `m`) that holds when the subtask's success predicates hold; predicates with no
    simple metric form (inside, on, moved, rotated) read the task's own `m["success"]`."""
    parts = []
    for p in sub.success:
        if isinstance(p, Reached):
            goal = f'm["{p.object}.pos"] + torch.tensor({list(p.offset)!r}, device=m["palm_pos"].device)'
            parts.append(f'((m["palm_pos"] - ({goal})).norm(dim=-1) < {p.tolerance!r})')
        elif isinstance(p, Lifted):
            parts.append(f'(m["{p.object}.lift"] >= {p.height!r})')
        elif isinstance(p, Held):
            parts.append(f'(m["{p.object}.grasp_time"] >= {p.duration!r})')
        elif isinstance(p, Touching):
            parts.append(f'(m["{p.object}.n_contacts"] >= {p.min_fingers})')
        elif isinstance(p, Opened) and p.joint is None:
            parts.append(f'(m["{p.object}.open_fraction"] >= {p.fraction!r})')
        else:
            parts.append('m["success"]')
    return " & ".join(parts) if parts else 'm["success"]'


def staged_reward(plan: Plan, spec: TaskSpec) -> str:
    """A reward program: stages from the plan's subtasks (see the module's docstring)."""
    out = ["# staged reward from the decomposed plan's subtasks: " + ", ".join(s.name for s in plan.subtasks)]
    out.append(f"W_STAGE = {STAGE_WEIGHT!r}\nW_TERM = {TERM_WEIGHT!r}\nW_SUCCESS_BONUS = {SUCCESS_BONUS!r}")
    out.append(f"W_ACTION_PENALTY = {ACTION_PENALTY!r}\n")
    scales = []
    for k, sub in enumerate(plan.subtasks):
        source, scale = stage_source(sub, spec)
        scales.append(scale)
        body = textwrap.indent(source.strip() + "\n\nreturn compute_reward(m)", "    ")
        out.append(f"def stage_{k}(m):\n    # subtask '{sub.name}' ({sub.controller})\n{body}\n")
        out.append(f"def passed_{k}(m):\n    return {condition(sub)}\n")
    n = len(plan.subtasks)
    lines = [
        "def compute_reward(m):",
        '    level = torch.zeros_like(m["step"]).long()',
    ]
    for k in range(n):
        lines.append(f"    level = torch.where(passed_{k}(m), torch.full_like(level, {k + 1}), level)")
    terms = ", ".join(f"torch.tanh(stage_{k}(m)[0] / {scales[k]!r})" for k in range(n))
    lines += [
        f"    terms = torch.stack([{terms}], -1)",
        "    nxt = torch.zeros_like(terms[:, 0])",
        f"    for k in range({n}):",
        "        nxt = torch.where(level == k, terms[:, k], nxt)",
        "    comps = {",
        '        "stage": W_STAGE * level.float(),',
        f'        "next_stage_term": W_TERM * nxt * (level < {n}).float(),',
        '        "success_bonus": W_SUCCESS_BONUS * m["success"].float(),',
        '        "action_penalty": -W_ACTION_PENALTY * m["actions"].pow(2).sum(-1) / max(m["actions"].shape[-1], 1),',
        "    }",
        "    return sum(comps.values()), comps",
    ]
    out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def _split(budget: int, parts: int, wall_time_s: float) -> Budget:
    return Budget(env_steps=max(1, budget // max(parts, 1)), wall_time_s=wall_time_s)


def plain_staged_plan(plan: Plan, spec: TaskSpec, budget: int, wall_time_s: float = 3600.0) -> Plan:
    """One rl subtask on every joint, the staged reward of `plan`, the task's success, `budget` env steps."""
    sub = SubtaskSpec(
        name="plain_staged",
        controller="rl",
        active=("all",),
        reward=staged_reward(plan, spec),
        success=list(spec.success),
        episode_length=spec.episode_length,
        target_success=0.97,
        budget=_split(budget, 1, wall_time_s),
        start="initial",
    )
    return Plan(task=plan.task, subtasks=[sub])


def freeze_only_plan(plan: Plan, spec: TaskSpec, budget: int, wall_time_s: float = 3600.0) -> Plan:
    """`plan` with every motion-planned subtask learnt by rl on the same joints; the rl budget split evenly."""
    n_rl = sum(s.controller in ("rl", "motion_plan") for s in plan.subtasks)
    subs = []
    for s in plan.subtasks:
        if s.controller == "motion_plan":
            template, params = stage_template(s, spec)
            s = SubtaskSpec(
                name=s.name,
                controller="rl",
                active=s.active,
                reward_template=template,
                reward_params=params,
                success=s.success,
                episode_length=max(s.episode_length, 100),
                target_success=0.9,
                start=s.start,
                budget=Budget(),
            )
        if s.controller == "rl":
            s = s.model_copy(update={"budget": _split(budget, n_rl, wall_time_s)})
        subs.append(s)
    return Plan(task=plan.task, subtasks=subs)
