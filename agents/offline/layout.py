"""Scene layout: an `Intent` becomes a `TaskSpec` laid out like the working examples.

The numbers come from `sim/examples/*.yaml` and `policies/examples/place_cube.yaml`: the floating hand
palm-down at 0.2 m (higher over tall objects), fingers along +x; the manipulated object in front of the
hand under the palm (the palm centre sits `grasp_offset` from it, as the approach will put it); a
container or surface 0.12 m beside it on +y so that the transport is short; the manipulated object
randomised by +-2 cm and +-10 degrees; a cabinet 15 cm in front of the origin with the hand 30 cm behind.
Objects longer along x than across (a marker, a mug with its handle) are turned a quarter so the fingers
close across them. A push succeeds when the object's centre has `moved` by the requested distance along
the requested direction (world xy; "left" is +y, as seen by a person behind the hand facing +x, see
`words.DIRECTIONS`), within `push_tolerance`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from dexforge.agents.offline.understand import GroundingError, Intent
from dexforge.agents.offline.words import DIRECTION_NAMES
from dexforge.sim.catalog import Catalog, ObjectAsset
from dexforge.sim.checks import MAX_GRASP_WIDTH, MIN_GRASP_WIDTH
from dexforge.sim.spec import (
    HandSpec,
    Held,
    Inside,
    Lifted,
    Moved,
    ObjectSpec,
    On,
    Opened,
    Pose,
    PoseNoise,
    Rotated,
    TaskSpec,
)

Vec3 = tuple[float, float, float]
HAND_HEIGHT = 0.2  # m: palm height at the start in the examples
HAND_CLEARANCE = 0.1  # m: at least this much above the top of the object under the palm
PLACE_OBJECT_Y = -0.12  # m: the object's side in place_cube.yaml; the target stands on +y
TARGET_GAP = 0.08  # m: free space between the object's and the target's footprints
NOISE = PoseNoise(xy=0.02, yaw=10.0)
OPEN_HAND: Vec3 = (-0.3, 0.0, 0.25)
OPEN_CABINET_X = 0.15
EPISODES = {"lift": 250, "place": 400, "rotate": 400, "open": 300, "push": 250}
GRASP_RANGE = (MIN_GRASP_WIDTH * 1.25, MAX_GRASP_WIDTH * 0.9)  # thinnest side, with margin to the checks
MAX_EXTENT = 0.3  # m: longest side of anything the hand handles
LIMITS = {"height": (0.03, 0.4), "angle": (-360.0, 360.0), "fraction": (0.1, 0.95), "distance": (0.05, 0.3)}


def rotation(euler_deg: Vec3) -> np.ndarray:
    """Extrinsic x-y-z Euler angles (degrees, as in TaskSpec) -> rotation matrix."""
    a, b, c = (math.radians(v) for v in euler_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def aabb(asset: ObjectAsset, scale: float, euler: Vec3 = (0.0, 0.0, 0.0)) -> np.ndarray:
    """World-frame extents (x, y, z) of an object at `scale` turned by `euler`."""
    return np.abs(rotation(euler)) @ (np.asarray(asset.size, dtype=float) * scale)


def lies_across(asset: ObjectAsset) -> bool:
    """Long along x: turn it a quarter so the fingers (along +x) close across it."""
    return asset.graspable and asset.size[0] > 1.3 * asset.size[1]


def grasp_offset(ext: np.ndarray) -> Vec3:
    """Palm centre minus object centre for a top grasp: (-0.04, 0, 0.029) for the 5 cm cube of the examples."""
    return (round(float(-(ext[0] / 2 + 0.015)), 4), 0.0, round(float(ext[2] / 2 + 0.004), 4))


def push_offset(ext: np.ndarray, direction: tuple[float, float]) -> Vec3:
    """Palm centre minus object centre beside the object, low, so the hand's leading edge pushes it.

    Pushing +x the fingertips lead (they reach 0.15 m past the palm centre); -x the heel of the palm;
    +y the thumb side (0.08 m from the centre); -y the little-finger side (0.055 m).
    """
    dx, dy = direction
    reach = {(1.0, 0.0): ext[0] / 2 + 0.16, (-1.0, 0.0): ext[0] / 2 + 0.06}
    reach |= {(0.0, 1.0): ext[1] / 2 + 0.08, (0.0, -1.0): ext[1] / 2 + 0.055}
    r = reach.get((dx, dy), max(ext[0], ext[1]) / 2 + 0.16)
    palm_z = min(max(0.5 * ext[2], 0.025), 0.05)
    return (round(float(-dx * r), 4) + 0.0, round(float(-dy * r), 4) + 0.0, round(float(palm_z - ext[2] / 2), 4))


def push_tolerance(distance: float) -> float:
    """Allowed xy error of a push's end point, m: 30 % of the distance, at least 2 cm."""
    return round(max(0.02, 0.3 * distance), 4)


def push_displacement(intent: Intent) -> Vec3:
    """The object's displacement a push asks for: distance along the (unit) direction, world xy."""
    dx, dy = intent.direction
    return (round(dx * intent.distance, 4) + 0.0, round(dy * intent.distance, 4) + 0.0, 0.0)


def clamp(value: float, name: str) -> float:
    lo, hi = LIMITS[name]
    return min(max(value, lo), hi)


def clamp_scale(asset: ObjectAsset, scale: float, role: str) -> tuple[float, str | None]:
    """A scale the hand can work with for the role (graspable object, pushed object, target, cabinet)."""
    size = np.sort(np.asarray(asset.size, dtype=float))
    lo, hi = (0.6, 1.5) if role == "articulated" else (0.5, 2.0) if role == "target" else (0.3, 3.0)
    if role == "grasp":
        lo = max(lo, GRASP_RANGE[0] / size[0])
        hi = min(hi, GRASP_RANGE[1] / size[0], 2 * GRASP_RANGE[1] / size[1])
    if role != "articulated":
        hi = min(hi, MAX_EXTENT / size[2])
    new = round(min(max(scale, lo), max(hi, lo)), 3)
    if abs(new - scale) > 1e-3:
        return new, f"{asset.id} scale {scale:.2f} -> {new:.2f} to stay within what the hand can handle"
    return new, None


def keys(intent: Intent) -> tuple[str, str | None]:
    """Object names in the spec: the catalog id; a second object of the same asset gets `_2`."""
    if intent.target is None or intent.family == "push":
        return intent.obj, None
    return intent.obj, intent.target if intent.target != intent.obj else f"{intent.target}_2"


def default_xy(intent: Intent, catalog: Catalog) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """Where the object and the target (container or surface) stand before nudges."""
    obj = catalog.objects[intent.obj]
    if intent.family == "open":
        return (OPEN_CABINET_X, 0.0), None
    ext = aabb(obj, intent.scale, _euler(obj))
    if intent.family in ("lift", "rotate", "push"):
        return (0.0, 0.0), None
    target = catalog.objects[intent.target or ""]
    t_ext = aabb(target, intent.target_scale)
    y = max(0.12, PLACE_OBJECT_Y + max(ext[:2]) / 2 + max(t_ext[:2]) / 2 + TARGET_GAP)
    return (0.0, PLACE_OBJECT_Y), (0.0, round(y, 4))


def _euler(asset: ObjectAsset) -> Vec3:
    return (0.0, 0.0, 90.0) if lies_across(asset) else (0.0, 0.0, 0.0)


def normalise(intent: Intent, catalog: Catalog) -> tuple[Intent, list[str]]:
    """Clamp scales and goal numbers to what the hand and the predicates allow; say what changed."""
    notes: list[str] = []
    obj = catalog.objects[intent.obj]
    role = {"open": "articulated", "push": "push"}.get(intent.family, "grasp")
    scale, note = clamp_scale(obj, intent.scale, role)
    notes += [note] if note else []
    intent = replace(intent, scale=scale)
    for name in ("height", "angle", "fraction", "distance"):
        value = clamp(getattr(intent, name), name)
        if abs(value - getattr(intent, name)) > 1e-9 and _uses(intent.family, name):
            notes.append(f"{name} {getattr(intent, name):g} -> {value:g} (the range is {LIMITS[name]})")
        intent = replace(intent, **{name: value})
    if intent.family == "rotate" and abs(intent.angle) < 10.0:
        intent = replace(intent, angle=math.copysign(10.0, intent.angle or 1.0))
        notes.append("a rotation under 10 degrees is within the predicate's tolerance; using 10")
    if intent.family == "place" and intent.target is not None:
        intent, more = _fit_target(intent, catalog)
        notes += more
    return intent, notes


def _uses(family: str, name: str) -> bool:
    return {"height": "lift", "angle": "rotate", "fraction": "open", "distance": "push"}[name] == family


def _fit_target(intent: Intent, catalog: Catalog) -> tuple[Intent, list[str]]:
    """Grow a container whose cavity is narrower than the object (within the target scale range)."""
    obj, target = catalog.objects[intent.obj], catalog.objects[intent.target or ""]
    scale, note = clamp_scale(target, intent.target_scale, "target")
    notes = [note] if note else []
    footprint = float(max(aabb(obj, intent.scale, _euler(obj))[:2]))
    if "container" in target.tags:
        inner = min((target.inner or target.size)[:2])
        if footprint + 0.01 > inner * scale:
            need = round((footprint + 0.02) / inner, 3)
            if need > 2.0:
                raise GroundingError(
                    f"the {obj.id} ({footprint * 100:.0f} cm across) does not fit the {target.id}'s "
                    f"{inner * 100:.0f} cm opening even at twice its size; use a smaller object or a larger container",
                    [a.id for a in catalog.with_tag("container")],
                    catalog,
                )
            notes.append(f"{target.id} scaled {scale:.2f} -> {need:.2f} so the {obj.id} fits its opening")
            scale = need
    return replace(intent, target_scale=scale), notes


def layout(intent: Intent, catalog: Catalog) -> tuple[TaskSpec, Intent, list[str]]:
    """The TaskSpec of an intent, the intent as laid out (clamped) and notes on what was adjusted."""
    intent, notes = normalise(intent, catalog)
    obj = catalog.objects[intent.obj]
    obj_key, target_key = keys(intent)
    euler = _euler(obj) if intent.family != "open" else (0.0, 0.0, 0.0)
    ext = aabb(obj, intent.scale, euler)
    (ox, oy), target_xy = default_xy(intent, catalog)
    ox, oy = ox + intent.nudge[0], oy + intent.nudge[1]
    noise = PoseNoise() if intent.family == "open" else NOISE
    objects = [
        ObjectSpec(
            asset=obj.id, scale=intent.scale, pose=Pose(pos=_p(ox, oy, ext[2] / 2), euler=euler), randomize=noise
        )
    ]
    top = float(ext[2])
    if intent.family == "open":
        hand = OPEN_HAND
    elif intent.family == "push":
        off = push_offset(ext, intent.direction)
        hand = _p(ox + off[0], oy + off[1], max(HAND_HEIGHT, top + HAND_CLEARANCE))
    else:
        off = grasp_offset(ext)
        hand = _p(ox + off[0], oy, max(HAND_HEIGHT, top + HAND_CLEARANCE))
    if intent.family == "place" and target_xy is not None:
        target = catalog.objects[intent.target or ""]
        t_ext = aabb(target, intent.target_scale)
        tx, ty = target_xy[0] + intent.target_nudge[0], target_xy[1] + intent.target_nudge[1]
        objects.append(
            ObjectSpec(
                name=target_key if target_key != target.id else None,
                asset=target.id,
                scale=intent.target_scale,
                pose=Pose(pos=_p(tx, ty, t_ext[2] / 2)),
            )
        )
    spec = TaskSpec(
        name=spec_name(intent, relation(intent, catalog)),
        description=describe(intent, obj_key, target_key, relation(intent, catalog)),
        hand=HandSpec(pose=Pose(pos=hand)),
        objects=objects,
        success=success(intent, obj_key, target_key, catalog),
        episode_length=EPISODES[intent.family],
    )
    return spec, intent, notes


def _p(x: float, y: float, z: float) -> Vec3:
    return (round(float(x), 4), round(float(y), 4), round(float(z), 4))


def success(intent: Intent, obj: str, target: str | None, catalog: Catalog) -> list:
    if intent.family == "lift":
        return [Lifted(object=obj, height=intent.height), Held(object=obj, duration=0.5)]
    if intent.family == "rotate":
        tol = round(min(15.0, max(2.0, abs(intent.angle) / 3)), 2)
        return [
            Rotated(object=obj, axis=intent.axis, angle=intent.angle, tolerance=tol),
            Held(object=obj, duration=0.5),
        ]
    if intent.family == "open":
        return [Opened(object=obj, fraction=intent.fraction)]
    if intent.family == "push":
        return [Moved(object=obj, offset=push_displacement(intent), tolerance=push_tolerance(intent.distance))]
    if relation(intent, catalog) == "in":
        return [Inside(object=obj, container=target or "")]
    return [On(object=obj, surface=target or "")]


def relation(intent: Intent, catalog: Catalog) -> str:
    """'in' a container, 'on' a surface (place tasks)."""
    if intent.target is None:
        return ""
    return "in" if "container" in catalog.objects[intent.target].tags else "on"


def spec_name(intent: Intent, rel: str) -> str:
    if intent.family == "place":
        return f"place_{intent.obj}_{rel}_{intent.target}"
    if intent.family == "rotate":
        return f"rotate_{intent.obj}_{abs(intent.angle):g}deg_{intent.axis}".replace(".", "_")
    if intent.family == "push":
        return f"push_{intent.obj}_{DIRECTION_NAMES.get(intent.direction, 'along')}"
    return f"{intent.family}_{intent.obj}"


def describe(intent: Intent, obj: str, target: str | None, rel: str) -> str:
    """Three parts: what to do; what is randomised; what counts as success."""
    noise = f"Randomised: the {obj}'s position (+-{NOISE.xy * 100:g} cm) and yaw (+-{NOISE.yaw:g} degrees)."
    if intent.family == "lift":
        cm = intent.height * 100
        return (
            f"Pick up the {obj} and hold it {cm:g} cm above the table. {noise} Success: the {obj} is {cm:g} cm "
            f"higher than at the start and has been held off the table for 0.5 s."
        )
    if intent.family == "place":
        return f"Put the {obj} {rel} the {target}. {noise} Success: the {obj} rests {rel} the {target}."
    if intent.family == "rotate":
        turn = f"{abs(intent.angle):g} degrees {'clockwise' if intent.angle < 0 else 'counter-clockwise'}"
        return (
            f"Pick up the {obj} and turn it {turn} about the world {intent.axis} axis in the hand. {noise} "
            f"Success: the {obj} is turned {turn} about {intent.axis} (within tolerance) and held off the table."
        )
    if intent.family == "open":
        return (
            f"Open the {obj} to {intent.fraction * 100:g}% of its travel. Randomised: nothing. "
            f"Success: the {obj}'s joint is open by at least {intent.fraction * 100:g}% of its range."
        )
    where = DIRECTION_NAMES.get(intent.direction, f"along {intent.direction}")
    cm = intent.distance * 100
    return (
        f"Push the {obj} {cm:g} cm {where} along the table. {noise} Success: the {obj}'s centre is {cm:g} cm "
        f"{where} of where it started, within {push_tolerance(intent.distance) * 100:g} cm."
    )
