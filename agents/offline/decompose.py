"""The offline decomposer: a plan per task family, like `policies/examples/*.plan.yaml`.

The proven numbers of the lift and place plans are kept (80-step approach at 0.3 m/s with `align_yaw`,
an rl grasp of the fingers with the `grasp` template and a 0.08 m lift test over 30 steps, 400k-step
budgets, a 70-step scripted release); the offsets follow the object's size at its scale (the examples'
(-0.04, 0, 0.029) is the 5 cm cube's). Rotate adds an rl in-hand turn after the grasp; open approaches
the handle the catalog's `grip` names (palm facing it, fingers across the bar), closes the hand so the
fingertips hook behind the bar, and carries the palm along or around the joint's axis by motion planning
(a drawer, a door, a microwave and a chest lid open this way without RL); push
approaches beside the object, low, and learns the push with the wrist's translation. On a failure the
plan is revised: the failed subtasks (named in the failure, else every rl one) get longer episodes and
budgets, approaches a slower path, more tolerance and a slightly higher goal; a carry that dropped its
object also has the rl grasp before it trained again with twice the budget (the hold was weak).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from dexforge.agents.offline.layout import aabb, grasp_offset, push_offset
from dexforge.agents.offline.words import tokenize
from dexforge.agents.schemas import DecomposeBrief, Decomposition
from dexforge.home import DexforgeError
from dexforge.policies.subtask import Budget, MotionGoal, Plan, SubtaskSpec
from dexforge.sim.catalog import Catalog
from dexforge.sim.spec import Held, Inside, Lifted, Moved, On, Opened, Reached, Rotated, TaskSpec, Touching, load_yaml

SPEED = 0.3  # m/s along motion-planned paths
# rad of extra finger flexion while a planned lift or transport carries a grasped object: none. The squeeze
# lands on the fingers at once, and a grasp the lift test passed (the fingers as the policy left them, carried
# up and sideways) then slips. Tuning seed 101's bottle kept 58% of its grasps through the planned lift at 0.4,
# 91% with none (another of its policies: 50% at 0.4, 64% at 0.2, 56% with 0.4 reached over 15 steps, 77% with
# none); the apple's transport (64 envs x 2 chains from the initial layout, the grasp's policy as trained for
# 300k env steps), seed 101: 37% at 0.6, 59% at 0.4, 78% at 0.2, 85% with none; seed 102: 67% at 0.4, 82% at
# 0.2, 81% with none. (0.4 once helped, 29% -> 89%, when the grasp's test only lifted straight up.)
CARRY_GRIP = 0.0
RL_BUDGET = Budget(env_steps=600_000, wall_time_s=1200.0)
ROTATE_BUDGET = Budget(env_steps=1_000_000, wall_time_s=1800.0)  # in-hand turning learns slower than a grasp
LIFT_TEST, LIFT_TEST_STEPS = 0.08, 30
# Steps to close the hand before the lift test begins (the grasp's episode: these + the test's rise and hold).
# 100, not 40. Tuning seeds, 300k env steps each, 120- vs 180-step episodes: first step of success, bottle
# 101/102/103 at 23k/63k/25k vs 45k/never/123k, apple 101 35k vs 94k, cube 101 35k vs 23k (but a 50% window at
# 213k vs 272k); measured after training, bottle 101 grasp 0.87 vs 1.00, bottle 102 0.02 vs 0, bottle 103 0.27
# vs 0, apple 101 0.88 vs 0, cube 101 0.96 vs 0.89 with the whole task (the planned lift) 0.97 vs 0.67. With
# finger steps of 0.1 rad and a policy's noise, 40 steps left too little time to wrap a tall or round object;
# the re-decomposition after a failed grasp lengthened the episode to 180 already, and that passed on the
# bottle's slowest reported seed.
GRASP_STEPS = 100
# Steps the palm stays up after the rise: a grasp that only carries while rising drops here. 20 let through
# grasps that were already slipping: every drop in the planned lift (16 of 128 grasps, seed 103) also
# dropped within 30 more static steps, and no grasp that held 30 more steps dropped in the lift.
LIFT_TEST_HOLD = 50
# Before a transport, the lift test also carries the palm sideways toward the container at the transport's
# speed: a thumb-and-little-finger pinch held an apple through the static test (100 %) and dropped it in
# every planned carry (0 %). And it holds the object up as long as the transport's episode (`carry` below, 120
# steps for the apple), not 50 steps: a grasp whose fingers then stop creeps out of the hand over time, not
# from the motion. With one apple policy (tuning seed 101), slower carries kept fewer of its grasps
# (0.3 m/s 89 %, 0.15 m/s 59 %, 0.1 m/s 19 %); with another, 150 steps held still lost 44 %. Trained to the
# longer hold, tuning seeds 102 / 101: transport 100 % / 95 % of the grasps (84 % / 87 % with 50), whole task
# 1.00 / 0.80 (0.81 / 0.62 with 50; 101's measured before carried goals stopped following dropped objects).
CARRY_TEST_SHARE = 0.4  # at most this share of the way to the container, so the test never reaches it
GRASP_SLIP = 0.03  # m the object may slip in the lift test and still count (0.01 proved too hard to learn)
GRASP_TARGET = 0.97  # the examples stop grasp training at 97 %: a weaker grasp drops the object later
PALM_TO_FRONT = 0.012  # m between the handle's face and the palm
FINGER_REACH = 0.07  # m up the fingers from the palm's centre to where the bar crosses them (a hook of the fist)
DRAWER_EULER = (0.0, -90.0, 0.0)  # palm faces +x (the cabinet), fingers up: they curl round a horizontal bar
PULL_MARGIN = 0.3  # a hooked handle trails the palm: pull to the asked fraction + this (a drawer: 0.8 -> 0.79)
PULL_SPEED = 0.15  # m/s along a pull: slow enough for the hook to keep the bar
FAMILY_TEMPLATE = {"lift": "lift", "place": "place", "rotate": "rotate", "open": "pull_open", "push": "push"}


def decompose(brief: DecomposeBrief, catalog: Catalog) -> Decomposition:
    spec = brief.spec
    try:
        plan, why = family_plan(brief.family, spec, catalog)
    except (DexforgeError, KeyError, StopIteration) as exc:
        plan, why = plain_plan(brief.family, spec), f"The spec does not fit the {brief.family} plan ({exc}); "
        why += "one rl subtask on every joint with the family's reward template, as in the *.plain.yaml baselines."
    reused = _reusable(brief)
    if reused is not None:  # budgets are this run's to choose (the stored plan may carry a run's cap)
        budgets = {sub.name: sub.budget for sub in plan.subtasks}
        kept = [s.model_copy(update={"budget": budgets.get(s.name, s.budget)}) for s in reused[0].subtasks]
        plan, why = reused[0].model_copy(update={"subtasks": kept}), reused[1]
    if brief.failure:
        base = brief.previous if brief.previous is not None and _fits(brief.previous, spec) else plan
        plan, changes = revise(base, brief.failure)
        why = f"Re-decomposed after: {brief.failure.strip()}. Changes: {'; '.join(changes)}. Base plan: {why}"
    plan.check_against(spec)
    return Decomposition(reasoning=why, plan=plan)


def _reusable(brief: DecomposeBrief) -> tuple[Plan, str] | None:
    """The plan of the most similar task that succeeded, when it is of the same family and fits this spec."""
    for ex in brief.examples:
        if ex.family != brief.family or not ex.plan_yaml:
            continue
        try:
            plan = Plan.model_validate(load_yaml(ex.plan_yaml))
        except (DexforgeError, ValueError):
            continue
        if _fits(plan, brief.spec):
            rate = "n/a" if ex.task_success_rate is None else f"{ex.task_success_rate:.0%}"
            why = f"The plan that worked for '{ex.request}' (whole-task success {rate}, memory {ex.id}) fits this scene"
            why += "; reused with this run's budgets."
            return plan, why
    return None


def _fits(plan: Plan, spec: TaskSpec) -> bool:
    try:
        plan.check_against(spec)
    except DexforgeError:
        return False
    return plan.task == spec.name


def _obj(spec: TaskSpec) -> str:
    return next(p.object for p in spec.success)


def _ext(spec: TaskSpec, name: str, catalog: Catalog):
    o = spec.object_spec(name)
    return aabb(catalog.object(o.asset), o.scale, o.pose.euler)


def _steps(path: float, dt: float, extra: int, floor: int) -> int:
    return max(floor, math.ceil(path / (SPEED * dt)) + extra)


def approach(
    spec: TaskSpec, catalog: Catalog, obj: str, offset, *, align: bool, euler=None, tol: float = 0.02
) -> SubtaskSpec:
    pos = spec.object_spec(obj).pose.pos
    goal = [p + o for p, o in zip(pos, offset, strict=True)]
    hand = spec.hand.pose.pos
    tops = [o.pose.pos[2] + _ext(spec, o.key, catalog)[2] / 2 for o in spec.objects]
    cruise = max([t + 0.05 for t in tops] + [hand[2], goal[2]])  # rise, transit, descend (policies/motion.py)
    path = (cruise - hand[2]) + math.hypot(goal[0] - hand[0], goal[1] - hand[1]) + (cruise - goal[2])
    return SubtaskSpec(
        name="approach",
        controller="motion_plan",
        active=("wrist",),
        goal=MotionGoal(relative_to=obj, offset=offset, align_yaw=align, euler=euler, speed=SPEED),
        success=[Reached(object=obj, offset=offset, tolerance=tol)],
        episode_length=_steps(path, spec.dt, 30, 80),
        start="initial",
    )


def grasp(
    obj: str, target_success: float, shift: tuple[float, float] | None = None, hold: int = LIFT_TEST_HOLD
) -> SubtaskSpec:
    return SubtaskSpec(
        name="grasp",
        controller="rl",
        active=("fingers",),
        reward_template="grasp",
        reward_params={"obj": obj, "height": LIFT_TEST},
        lift_test=LIFT_TEST,
        lift_test_steps=LIFT_TEST_STEPS,
        lift_test_hold=hold,
        lift_test_shift=shift,
        success=[Lifted(object=obj, height=LIFT_TEST - GRASP_SLIP)],
        episode_length=GRASP_STEPS + LIFT_TEST_STEPS + hold,
        target_success=target_success,
        budget=RL_BUDGET,
    )


def family_plan(family: str, spec: TaskSpec, catalog: Catalog) -> tuple[Plan, str]:
    obj = _obj(spec)
    ext = _ext(spec, obj, catalog)
    size = f"{obj} {ext[0] * 100:.1f} x {ext[1] * 100:.1f} x {ext[2] * 100:.1f} cm"
    if family in ("lift", "place", "rotate"):
        off = grasp_offset(ext)
        subs = [approach(spec, catalog, obj, off, align=True), grasp(obj, GRASP_TARGET)]
        why = (
            f"Approach by motion planning to {off} from the {size} (palm behind its centre by half its depth "
            f"+ 1.5 cm, 4 mm above its top), learn the grasp with the fingers only (wrist frozen, lift test "
            f"{LIFT_TEST} m so success means a hold), "
        )
        if family == "lift":
            height = next((p.height for p in spec.success if isinstance(p, Lifted)), 0.1)
            lift = round(height + 0.02, 4)
            subs.append(
                SubtaskSpec(
                    name="lift",
                    controller="motion_plan",
                    active=("wrist",),
                    goal=MotionGoal(lift=lift, speed=SPEED, grip=CARRY_GRIP),
                    success=[Lifted(object=obj, height=round(max(height - 0.02, 0.01), 4))],
                    episode_length=_steps(lift, spec.dt, 50, 90),
                )
            )
            why += f"then raise the palm {lift} m by motion planning."
        elif family == "place":
            goal_pred = next(p for p in spec.success if isinstance(p, Inside | On))
            target = goal_pred.container if isinstance(goal_pred, Inside) else goal_pred.surface
            t_ext, t_pos = _ext(spec, target, catalog), spec.object_spec(target).pose.pos
            # the apple's centre over the bowl's, its bottom 1.6 cm above the rim; the palm goes where the hold puts it
            over = (0.0, 0.0, float(round(t_ext[2] / 2 + ext[2] / 2 + 0.016, 4)))
            o_pos = spec.object_spec(obj).pose.pos
            travel = math.hypot(t_pos[0] - o_pos[0], t_pos[1] - o_pos[1])
            reach = min(SPEED * LIFT_TEST_STEPS * spec.dt, CARRY_TEST_SHARE * travel)
            shift, carry = None, _steps(travel + 0.06, spec.dt, 20, 120)  # the transport's episode
            if travel > 1e-6:
                ux, uy = (t_pos[0] - o_pos[0]) / travel, (t_pos[1] - o_pos[1]) / travel
                shift = (round(reach * ux, 4), round(reach * uy, 4))
                subs[1] = grasp(obj, GRASP_TARGET, shift, hold=max(LIFT_TEST_HOLD, carry))
            subs += [
                SubtaskSpec(
                    name="transport",
                    controller="motion_plan",
                    active=("wrist",),
                    goal=MotionGoal(
                        relative_to=target, carried=obj, offset=over, clearance=0.06, speed=SPEED, grip=CARRY_GRIP
                    ),
                    success=[Held(object=obj, duration=0.5)],
                    episode_length=carry,
                ),
                SubtaskSpec(
                    name="release",
                    controller="scripted",
                    script="open_hand",
                    active=("fingers",),
                    success=[goal_pred],
                    episode_length=70,
                ),
            ]
            if shift is not None:
                why += (
                    f"the test then carries the palm {reach:.2f} m toward the {target} as the transport will and "
                    f"holds it up {subs[1].lift_test_hold} steps, as long as the carry, "
                )
            why += (
                f"carry it so that its centre is {over[2]} m above the {target}'s (its bottom 1.6 cm above the rim; "
                f"the palm goes where the hold puts it there) and open the hand."
            )
        else:
            turn = next(p for p in spec.success if isinstance(p, Rotated))
            subs.append(
                SubtaskSpec(
                    name="rotate",
                    controller="rl",
                    active=("fingers",),
                    reward_template="rotate",
                    reward_params={"obj": obj, "axis": turn.axis, "angle": turn.angle},
                    success=[turn, Held(object=obj, duration=0.5)],
                    episode_length=200,
                    target_success=0.8,
                    budget=ROTATE_BUDGET,
                )
            )
            why += f"then learn the in-hand turn of {turn.angle:g} degrees about {turn.axis} with the fingers."
    elif family == "open":
        opened = next(p for p in spec.success if isinstance(p, Opened))
        off, euler, what, kind = handle_goal(spec, obj, catalog, opened.joint)
        pull_to = round(min(1.0, opened.fraction + PULL_MARGIN), 3)
        subs = [
            approach(spec, catalog, obj, off, align=False, euler=euler, tol=0.03),
            SubtaskSpec(
                name="hook",
                controller="scripted",
                script="close_hand",
                active=("fingers",),
                success=[Touching(object=obj, min_fingers=2)],
                episode_length=80,
            ),
            SubtaskSpec(
                name="pull",
                controller="motion_plan",
                active=("wrist",),
                goal=MotionGoal(relative_to=obj, pull=pull_to, joint=opened.joint, speed=PULL_SPEED),
                success=[opened],
                episode_length=300,
            ),
        ]
        how = "along" if kind == "prismatic" else "around"
        why = (
            f"Approach the {what} of the {obj} by motion planning, palm facing it at {off} with euler {euler} "
            f"(the bar crosses the fingers {FINGER_REACH * 100:g} cm from the palm's centre), close the hand so the "
            f"fingertips hook behind the bar, then carry the palm {how} the {kind} joint's axis (read from the "
            f"simulator) until the joint would reach {pull_to:g} of its range, {PULL_MARGIN:g} beyond the "
            f"{opened.fraction:g} asked for, since a hook trails the palm. No RL: the joint says where the handle goes."
        )
    elif family == "push":
        moved = next(p for p in spec.success if isinstance(p, Moved))
        dx, dy = moved.offset[0], moved.offset[1]
        dist = math.hypot(dx, dy) or 1.0
        direction = (round(dx / dist), round(dy / dist)) if abs(dx) < 1e-6 or abs(dy) < 1e-6 else (dx / dist, dy / dist)
        off = push_offset(ext, (float(direction[0]), float(direction[1])))
        push = SubtaskSpec(
            name="push",
            controller="rl",
            active=("wrist_translation",),
            reward_template="push",
            reward_params={"obj": obj, "dx": round(dx, 4), "dy": round(dy, 4)},
            success=[moved],
            episode_length=150,
            target_success=0.8,
            budget=RL_BUDGET,
        )
        subs = [approach(spec, catalog, obj, off, align=False, tol=0.03), push]
        why = (
            f"Approach beside the {size}, low, at {off} (the hand's leading edge behind it), then learn the push "
            f"of ({dx:.2f}, {dy:.2f}) m with the wrist's translation only (fingers straight; push template with "
            f"dx, dy = the `moved` offset, success = that predicate); a motion plan would rise over the object, "
            f"so the push is learned."
        )
    else:
        raise KeyError(family)
    return Plan(task=spec.name, subtasks=subs), why


def handle_goal(spec: TaskSpec, obj: str, catalog: Catalog, joint: str | None = None):
    """Palm goal relative to an articulated object's centre, its orientation (deg), what it grips and the
    joint's kind, from the catalog's `grip` of the joint's handle (palm PALM_TO_FRONT in front of the bar's
    face, the bar FINGER_REACH up the fingers); without one, the middle of the object's front (-x) face."""
    o = spec.object_spec(obj)
    asset = catalog.object(o.asset)
    art = next((j for j in asset.articulation if j.name == joint), asset.articulation[0])
    grip = art.grip
    if grip is None:
        sx = asset.size[0] * o.scale
        return (round(-sx / 2 - PALM_TO_FRONT, 4), 0.0, -FINGER_REACH), DRAWER_EULER, "front", art.kind
    normal, fingers = np.array(grip.normal, dtype=float), np.array(grip.fingers, dtype=float)
    palm = np.array(grip.face) * o.scale + normal * PALM_TO_FRONT - fingers * FINGER_REACH
    offset = tuple(round(float(v), 4) for v in palm)
    bar = "horizontal" if abs(fingers[2]) > 0.5 else "vertical"
    return offset, palm_euler(normal, fingers), f"{bar} handle bar ({art.name})", art.kind


def palm_euler(normal, fingers) -> tuple[float, float, float]:
    """Extrinsic x-y-z angles (deg) of a palm that faces against `normal` with the fingers along `fingers`.

    At zero the palm faces -z with the fingers along +x and the thumb along +y (the floating mount)."""
    from scipy.spatial.transform import Rotation

    f = np.asarray(fingers, dtype=float)
    z = np.asarray(normal, dtype=float)  # the hand's +z (out of the back) ends up along the face's normal
    matrix = np.stack([f, np.cross(z, f), z], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gimbal lock (pitch +-90) still gives a valid triple
        angles = Rotation.from_matrix(matrix).as_euler("xyz", degrees=True)
    return tuple(round(float(a), 1) + 0.0 for a in angles)


def plain_plan(family: str, spec: TaskSpec) -> Plan:
    """One rl subtask on every joint (the *.plain.yaml baselines)."""
    obj = _obj(spec)
    template = FAMILY_TEMPLATE.get(family, "lift")
    params: dict[str, float | str] = {"obj": obj}
    for p in spec.success:
        if template == "place" and isinstance(p, Inside | On):
            params["container"] = p.container if isinstance(p, Inside) else p.surface
        if template == "rotate" and isinstance(p, Rotated):
            params |= {"axis": p.axis, "angle": p.angle}
        if template == "pull_open" and isinstance(p, Opened):
            params["fraction"] = p.fraction
        if template == "push" and isinstance(p, Moved):
            params |= {"dx": round(p.offset[0], 4), "dy": round(p.offset[1], 4)}
    if template == "place" and "container" not in params:
        template = "lift"
    sub = SubtaskSpec(
        name=f"{family}_rl",
        controller="rl",
        active=("all",),
        reward_template=template,
        reward_params=params,
        success=list(spec.success),
        episode_length=spec.episode_length,
        budget=RL_BUDGET,
        start="initial",
    )
    return Plan(task=spec.name, subtasks=[sub])


def revise(plan: Plan, failure: str) -> tuple[Plan, list[str]]:
    """Longer episodes and budgets for the failed subtasks; slower, more tolerant approaches; the grasp
    behind a carry that dropped its object trained again with twice the budget."""
    said = set(tokenize(failure.replace("_", " "))) | set(failure.lower().replace("'", " ").split())
    failed = {s.name for s in plan.subtasks if s.name.lower() in said}
    failed = failed or {s.name for s in plan.subtasks if s.controller == "rl"} or {s.name for s in plan.subtasks}
    holds = _dropped_holds(plan, failed)
    subs, changes = [], []
    for s in plan.subtasks:
        if s.name in holds and s.name not in failed:
            data = s.model_dump()
            data["budget"] = {"env_steps": min(s.budget.env_steps * 2, 4_000_000), "wall_time_s": s.budget.wall_time_s}
            subs.append(SubtaskSpec.model_validate(data))
            changes.append(
                f"{s.name}: trained again, budget {s.budget.env_steps} -> {data['budget']['env_steps']} env steps "
                f"({holds[s.name]} failed by dropping what {s.name} holds: a weak hold, not the path)"
            )
            continue
        if s.name not in failed:
            subs.append(s)
            continue
        data = s.model_dump()
        if s.controller == "rl":
            data["episode_length"] = min(round(s.episode_length * 1.5), 1000)
            data["budget"] = {
                "env_steps": min(s.budget.env_steps * 2, 4_000_000),
                "wall_time_s": min(s.budget.wall_time_s * 1.5, 7200.0),
            }
            changes.append(
                f"{s.name}: episode {s.episode_length} -> {data['episode_length']} steps, budget "
                f"{s.budget.env_steps} -> {data['budget']['env_steps']} env steps (more time to learn it)"
            )
        elif s.controller == "motion_plan" and s.goal is not None:
            goal = data["goal"]
            goal["speed"] = round(max(s.goal.speed * 0.67, 0.1), 3)
            if s.goal.lift is None:
                goal["offset"] = (s.goal.offset[0], s.goal.offset[1], round(s.goal.offset[2] + 0.005, 4))
            data["success"] = [_loosen(p, goal["offset"]) for p in s.success]
            data["episode_length"] = min(round(s.episode_length * 1.5) + 20, 1000)
            changes.append(
                f"{s.name}: speed {s.goal.speed} -> {goal['speed']} m/s, goal 5 mm higher, tolerance +1 cm, "
                f"episode {s.episode_length} -> {data['episode_length']} (a slower, looser path)"
            )
        else:
            data["episode_length"] = min(round(s.episode_length * 1.5), 1000)
            changes.append(f"{s.name}: episode {s.episode_length} -> {data['episode_length']} steps")
        subs.append(SubtaskSpec.model_validate(data))
    return Plan(task=plan.task, subtasks=subs), changes


def _dropped_holds(plan: Plan, failed: set[str]) -> dict[str, str]:
    """rl subtask -> the failed carry after it. A motion-planned subtask that moves a held object (`held`
    in its success, a `carried` goal or a `lift`) fails when the grip slips, its path being planned, so the
    rl subtask that made the hold is trained again with more budget rather than only slowing the carry."""
    out: dict[str, str] = {}
    for i, s in enumerate(plan.subtasks):
        if s.name not in failed or s.controller != "motion_plan":
            continue
        goal = s.goal
        carries = any(isinstance(p, Held) for p in s.success) or (
            goal is not None and (goal.carried is not None or goal.lift is not None)
        )
        before = [b for b in plan.subtasks[:i] if b.controller == "rl"]
        if carries and before:
            out.setdefault(before[-1].name, s.name)
    return out


def _loosen(pred, offset) -> object:
    if isinstance(pred, Reached):
        return Reached(object=pred.object, offset=tuple(offset), tolerance=min(pred.tolerance + 0.01, 0.5))
    return pred
