"""Success predicates on hand-made metrics (N = 4 envs) and the quaternion helpers against scipy (no Genesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from scipy.spatial.transform import Rotation

from dexforge.sim.predicates import compile_predicates, evaluate, held, lifted, moved, touching
from dexforge.sim.rotations import quat_apply, quat_from_euler, quat_from_yaw, quat_mul, tilt_angle, twist_angle
from dexforge.sim.spec import (
    Held,
    Inside,
    Lifted,
    Moved,
    ObjectSpec,
    On,
    Opened,
    Pose,
    Rotated,
    SpecError,
    TaskSpec,
    Touching,
)

N = 4
IDENTITY = (1.0, 0.0, 0.0, 0.0)


def wxyz(rot: Rotation, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """scipy's (x, y, z, w) quaternions as (w, x, y, z) tensors, like Genesis."""
    return torch.tensor(np.roll(rot.as_quat(), 1, axis=-1), dtype=dtype)


def vecs(rows: list[tuple[float, ...]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def only(spec: TaskSpec, m: dict[str, torch.Tensor]) -> list[bool]:
    """The batched result of the spec's single predicate, as a list."""
    fns = compile_predicates(spec)
    assert len(fns) == 1
    out = fns[0](m)
    assert out.shape == (N,) and out.dtype == torch.bool
    return out.tolist()


def at(base: tuple[float, float, float], offsets: list[tuple[float, float, float]]) -> torch.Tensor:
    return vecs([(base[0] + dx, base[1] + dy, base[2] + dz) for dx, dy, dz in offsets])


# lifted, touching, held --------------------------------------------------------------------------------


def test_lifted() -> None:
    spec = TaskSpec(objects=[ObjectSpec(asset="cube")], success=[Lifted(object="cube", height=0.1)])
    m = {"cube.lift": vecs([0.0, 0.099, 0.101, 0.3]), "cube.pos": torch.zeros(N, 3)}
    assert only(spec, m) == [False, False, True, True]
    assert lifted("cube", 0.25)(m).tolist() == [False, False, False, True]


def test_touching() -> None:
    spec = TaskSpec(objects=[ObjectSpec(asset="ball")], success=[Touching(object="ball", min_fingers=2)])
    m = {"ball.n_contacts": torch.tensor([0, 1, 2, 6])}
    assert only(spec, m) == [False, False, True, True]
    assert touching("ball", 1)(m).tolist() == [False, True, True, True]


def test_touching_with_named_parts_needs_each_of_them() -> None:
    # thumb, index, middle, ring, little, palm: a palm-and-little pinch, a thumb-index pinch, the thumb alone,
    # and a thumb-and-palm push
    contacts = torch.tensor(
        [[0, 0, 0, 0, 1, 1], [1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 1]], dtype=torch.bool
    )
    m = {"cube.contacts": contacts, "cube.n_contacts": contacts.sum(-1)}
    thumb = Touching(object="cube", parts=["thumb"], min_fingers=2)
    assert only(TaskSpec(objects=[ObjectSpec(asset="cube")], success=[thumb]), m) == [False, True, False, True]
    both = Touching(object="cube", parts=["thumb", "index"])  # two named parts: at least two in contact
    assert only(TaskSpec(objects=[ObjectSpec(asset="cube")], success=[both]), m) == [False, True, False, False]
    with pytest.raises(ValidationError):
        Touching(object="cube", parts=["wrist"])


def test_held() -> None:
    spec = TaskSpec(objects=[ObjectSpec(asset="cube")], success=[Held(object="cube", duration=0.5)])
    m = {"cube.grasp_time": vecs([0.0, 0.49, 0.5, 2.0])}
    assert only(spec, m) == [False, False, True, True]
    assert held("cube", 1.0)(m).tolist() == [False, False, False, True]


# inside ------------------------------------------------------------------------------------------------

BOWL = (0.05, 0.15, 0.03)  # bowl: 16 x 16 x 6 cm outside, 14 x 14 cm cavity


def apple_in_bowl(bowl_scale: float = 1.0) -> TaskSpec:
    return TaskSpec(
        objects=[ObjectSpec(asset="apple"), ObjectSpec(asset="bowl", scale=bowl_scale, pose=Pose(pos=BOWL))],
        success=[Inside(object="apple", container="bowl")],
    )


def test_inside_needs_the_cavity_below_the_rim_and_rest() -> None:
    m = {
        "apple.pos": at(BOWL, [(0.02, -0.01, 0.02), (0.10, 0.0, 0.02), (0.0, 0.0, 0.10), (0.0, 0.02, 0.02)]),
        "apple.linvel": vecs([(0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, -0.5)]),
        "bowl.pos": vecs([BOWL] * N),
        "bowl.quat": vecs([IDENTITY] * N),
    }
    # inside and still; outside the cavity in x; above the rim; inside but falling through
    assert only(apple_in_bowl(), m) == [True, False, False, False]


def test_inside_reads_the_cavity_in_the_container_frame() -> None:
    tipped = wxyz(Rotation.from_euler("x", 90, degrees=True)).tolist()
    yawed = wxyz(Rotation.from_euler("z", 45, degrees=True)).tolist()
    m = {
        # 6 cm along world y: within the upright cavity, but below the tipped bowl's bottom (its z is world -y)
        "apple.pos": at(BOWL, [(0.0, 0.06, 0.0), (0.0, 0.06, 0.0), (0.065, 0.065, 0.0), (0.065, 0.065, 0.0)]),
        "apple.linvel": torch.zeros(N, 3),
        "bowl.pos": vecs([BOWL] * N),
        # (6.5, 6.5) cm is inside the square cavity, but 9.2 cm along the yawed bowl's x axis
        "bowl.quat": vecs([IDENTITY, tipped, IDENTITY, yawed]),
    }
    assert only(apple_in_bowl(), m) == [True, False, True, False]


def test_inside_cavity_scales_with_the_container() -> None:
    m = {
        "apple.pos": at(BOWL, [(0.10, 0.0, 0.02), (0.0, 0.12, 0.02), (0.15, 0.0, 0.02), (0.0, 0.0, 0.07)]),
        "apple.linvel": torch.zeros(N, 3),
        "bowl.pos": vecs([BOWL] * N),
        "bowl.quat": vecs([IDENTITY] * N),
    }
    assert only(apple_in_bowl(1.0), m) == [False, False, False, False]
    assert only(apple_in_bowl(2.0), m) == [True, True, False, True]


# on ----------------------------------------------------------------------------------------------------

PLATE = (-0.1, 0.2, 0.0075)  # plate: 22 cm across, 1.5 cm thick; the cube is 5 cm


def test_on_plate() -> None:
    spec = TaskSpec(
        objects=[ObjectSpec(asset="cube"), ObjectSpec(asset="plate", pose=Pose(pos=PLATE))],
        success=[On(object="cube", surface="plate")],
    )
    resting = 0.0075 + 0.025
    m = {
        "cube.pos": at(PLATE, [(0.05, -0.03, resting), (0.15, 0.0, resting), (0.0, 0.0, 0.2), (0.0, 0.0, resting)]),
        "cube.linvel": vecs([(0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.3, 0.0, 0.0)]),
        "plate.pos": vecs([PLATE] * N),
        "plate.quat": vecs([IDENTITY] * N),
    }
    # resting on it; beside it; high above it; sliding over it
    assert only(spec, m) == [True, False, False, False]
    below = dict(m, **{"cube.pos": at(PLATE, [(0.0, 0.0, -0.03)] * N), "cube.linvel": torch.zeros(N, 3)})
    assert only(spec, below) == [False] * N


def test_on_reads_the_surface_in_its_own_frame() -> None:
    spec = TaskSpec(
        objects=[ObjectSpec(asset="cube"), ObjectSpec(asset="chopping_board")],
        success=[On(object="cube", surface="chopping_board")],
    )
    yawed = wxyz(Rotation.from_euler("z", 90, degrees=True)).tolist()
    z = 0.0073 + 0.025  # board (30 x 20.6 cm, 1.5 cm thick) top plus half the cube
    m = {
        "cube.pos": vecs([(0.13, 0.0, z), (0.0, 0.13, z), (0.13, 0.0, z), (0.0, 0.13, z)]),
        "cube.linvel": torch.zeros(N, 3),
        "chopping_board.pos": torch.zeros(N, 3),
        "chopping_board.quat": vecs([IDENTITY, IDENTITY, yawed, yawed]),
    }
    assert only(spec, m) == [True, False, False, True]


# rotated -----------------------------------------------------------------------------------------------

START = Rotation.from_euler("xyz", [10.0, 20.0, 30.0], degrees=True)


def turned(axis: str, degrees: list[float]) -> torch.Tensor:
    """The start orientation turned about a world axis by each angle (one env per angle)."""
    return wxyz(Rotation.from_euler(axis, np.asarray(degrees)[:, None], degrees=True) * START)


def rotated_spec(axis: str, angle: float, tolerance: float = 15.0) -> TaskSpec:
    return TaskSpec(
        objects=[ObjectSpec(asset="cube")],
        success=[Rotated(object="cube", axis=axis, angle=angle, tolerance=tolerance)],
    )


def rotation_metrics(quat: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"cube.quat": quat, "cube.start_quat": wxyz(START).expand(N, 4)}


def test_rotated_about_z() -> None:
    quat = torch.cat(
        [turned("z", [90.0, 0.0]), wxyz(Rotation.from_euler("x", [[90.0]], degrees=True) * START), turned("z", [100.0])]
    )
    assert only(rotated_spec("z", 90.0), rotation_metrics(quat)) == [True, False, False, True]


def test_rotated_ignores_the_quaternion_sign() -> None:
    quat = turned("z", [90.0, 90.0, 110.0, -90.0])
    quat[1] = -quat[1]
    assert only(rotated_spec("z", 90.0), rotation_metrics(quat)) == [True, True, False, False]


def test_rotated_wraps_around() -> None:
    quat = turned("z", [-179.0, 179.0, 160.0, 0.0])
    assert only(rotated_spec("z", 180.0), rotation_metrics(quat)) == [True, True, False, False]
    assert only(rotated_spec("z", -90.0), rotation_metrics(turned("z", [270.0, -90.0, 90.0, -110.0]))) == [
        True,
        True,
        False,
        False,
    ]


def test_rotated_about_x_with_a_tolerance() -> None:
    quat = turned("x", [-45.0, 45.0, -50.0, -60.0])
    assert only(rotated_spec("x", -45.0, tolerance=10.0), rotation_metrics(quat)) == [True, False, True, False]


# opened ------------------------------------------------------------------------------------------------


def opened_spec(asset: str, scale: float = 1.0, fraction: float = 0.5) -> TaskSpec:
    return TaskSpec(objects=[ObjectSpec(asset=asset, scale=scale)], success=[Opened(object=asset, fraction=fraction)])


def test_opened_drawer() -> None:
    m = {"cabinet_drawer.joint_pos": vecs([[0.05], [0.15], [0.0], [0.2]])}
    assert only(opened_spec("cabinet_drawer"), m) == [False, True, False, True]
    assert only(opened_spec("cabinet_drawer", fraction=0.9), m) == [False, False, False, True]


def test_opened_drawer_travel_scales() -> None:
    m = {"cabinet_drawer.joint_pos": vecs([[0.05], [0.15], [0.25], [0.4]])}
    # 40 cm of travel at scale 2: half open is 20 cm
    assert only(opened_spec("cabinet_drawer", scale=2.0), m) == [False, False, True, True]


def test_opened_door_angle_does_not_scale() -> None:
    m = {"cabinet_door.joint_pos": vecs([[0.0], [0.7], [0.8], [1.5]])}
    expected = [False, False, True, True]  # half of 90 degrees is 0.785 rad at any scale
    assert only(opened_spec("cabinet_door"), m) == expected
    assert only(opened_spec("cabinet_door", scale=2.0), m) == expected


def test_opened_named_joint() -> None:
    spec = TaskSpec(
        objects=[ObjectSpec(asset="cabinet_drawer")],
        success=[Opened(object="cabinet_drawer", joint="drawer_joint", fraction=0.25)],
    )
    assert only(spec, {"cabinet_drawer.joint_pos": vecs([[0.0], [0.04], [0.06], [0.2]])}) == [False, False, True, True]


# moved -------------------------------------------------------------------------------------------------

CAN_START = (0.02, -0.01, 0.06)  # wherever the reset put it: `moved` measures from `start_pos`


def moved_metrics(offsets: list[tuple[float, float, float]]) -> dict[str, torch.Tensor]:
    return {"can.pos": at(CAN_START, offsets), "can.start_pos": vecs([CAN_START] * N)}


def moved_spec(offset: tuple[float, float, float], tolerance: float = 0.03) -> TaskSpec:
    return TaskSpec(
        objects=[ObjectSpec(asset="can")], success=[Moved(object="can", offset=offset, tolerance=tolerance)]
    )


def test_moved_measures_the_xy_displacement_since_the_start() -> None:
    # pushed 10 cm to +y; 8 cm (within 3 cm); not moved; moved 10 cm the wrong way (+x)
    m = moved_metrics([(0.0, 0.1, 0.0), (0.0, 0.08, 0.0), (0.0, 0.0, 0.0), (0.1, 0.0, 0.0)])
    assert only(moved_spec((0.0, 0.1, 0.0)), m) == [True, True, False, False]
    assert moved("can", (0.1, 0.0, 0.0), 0.03)(m).tolist() == [False, False, False, True]


def test_moved_ignores_z_and_the_start_position() -> None:
    # tipped over (centre 3 cm lower) or lifted: z is ignored, in the offset and in the positions
    m = moved_metrics([(0.0, 0.1, -0.03), (0.0, 0.1, 0.2), (0.0, 0.1, 0.0), (0.0, 0.0, 0.1)])
    assert only(moved_spec((0.0, 0.1, 0.5)), m) == [True, True, True, False]
    elsewhere = dict(m, **{"can.start_pos": vecs([(0.3, 0.3, 0.06)] * N)})  # the same positions, another start
    assert only(moved_spec((0.0, 0.1, 0.0)), elsewhere) == [False] * N


def test_moved_tolerance_is_inclusive() -> None:
    # binary-exact numbers: errors of exactly the tolerance along x and along y, just over it, none
    tol, step = 0.0625, 2.0**-10
    m = {
        "can.pos": vecs([(0.125 + tol, 0.0, 0.0), (0.125, -tol, 0.0), (0.125, tol + step, 0.0), (0.125, 0.0, 0.0)]),
        "can.start_pos": torch.zeros(N, 3),
    }
    assert only(moved_spec((0.125, 0.0, 0.0), tolerance=tol), m) == [True, True, False, True]
    assert only(moved_spec((0.125, 0.0, 0.0), tolerance=tol - step), m) == [False, False, False, True]


def test_moved_round_trips_through_yaml() -> None:
    spec = TaskSpec.from_yaml(
        "objects:\n  - asset: can\nsuccess:\n  - {kind: moved, object: can, offset: [0.0, 0.1, 0.0], tolerance: 0.03}\n"
    )
    assert spec.success == [Moved(object="can", offset=(0.0, 0.1, 0.0), tolerance=0.03)]
    again = TaskSpec.from_yaml(spec.to_yaml())
    assert again == spec and isinstance(again.success[0], Moved)
    assert Moved(object="can") == Moved(object="can", offset=(0.1, 0.0, 0.0), tolerance=0.03)  # the defaults


def test_moved_on_an_unknown_object_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"success\.0: no object named 'box'; objects: \['can'\]"):
        TaskSpec.from_yaml("objects:\n  - asset: can\nsuccess:\n  - {kind: moved, object: box, offset: [0, 0.1, 0]}\n")
    with pytest.raises(SpecError, match="tolerance"):
        TaskSpec.from_yaml("objects:\n  - asset: can\nsuccess:\n  - {kind: moved, object: can, tolerance: 0}\n")


# evaluate ----------------------------------------------------------------------------------------------


def test_evaluate_without_predicates_never_succeeds() -> None:
    spec = TaskSpec(objects=[ObjectSpec(asset="cube")])
    fns = compile_predicates(spec)
    assert fns == []
    success, parts = evaluate(fns, {"cube.lift": torch.ones(N)}, N)
    assert success.tolist() == [False] * N
    assert parts.shape == (N, 0)


def test_evaluate_needs_every_predicate() -> None:
    spec = TaskSpec(
        objects=[ObjectSpec(asset="cube")],
        success=[Lifted(object="cube", height=0.1), Held(object="cube", duration=0.5)],
    )
    m = {"cube.lift": vecs([0.2, 0.2, 0.0, 0.0]), "cube.grasp_time": vecs([1.0, 0.0, 1.0, 0.0])}
    success, parts = evaluate(compile_predicates(spec), m, N)
    assert parts.tolist() == [[True, True], [True, False], [False, True], [False, False]]
    assert success.tolist() == [True, False, False, False]


# rotations against scipy -------------------------------------------------------------------------------


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def same_rotation(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    """q and -q are the same rotation."""
    return bool(
        torch.allclose((a.double() * b.double()).sum(-1).abs(), torch.ones(a.shape[0], dtype=torch.float64), atol=atol)
    )


def test_quat_from_euler_matches_scipy_extrinsic_xyz(rng: np.random.Generator) -> None:
    euler = rng.uniform(-180.0, 180.0, size=(64, 3))
    q = quat_from_euler(euler.tolist())
    assert q.shape == (64, 4)
    assert same_rotation(q, wxyz(Rotation.from_euler("xyz", euler, degrees=True)), atol=1e-5)
    assert not same_rotation(q, wxyz(Rotation.from_euler("XYZ", euler, degrees=True)), atol=1e-3)


def test_quat_from_yaw_matches_scipy(rng: np.random.Generator) -> None:
    yaw = rng.uniform(-math.pi, math.pi, size=32)
    q = quat_from_yaw(torch.tensor(yaw))
    assert same_rotation(q, wxyz(Rotation.from_euler("z", yaw[:, None]), torch.float64), atol=1e-12)


def test_quat_apply_and_mul_match_scipy(rng: np.random.Generator) -> None:
    r1 = Rotation.random(64, random_state=rng)
    r2 = Rotation.random(64, random_state=rng)
    v = rng.normal(size=(64, 3))
    q1, q2 = wxyz(r1, torch.float64), wxyz(r2, torch.float64)
    out = quat_apply(q1, torch.tensor(v))
    np.testing.assert_allclose(out.numpy(), r1.apply(v), atol=1e-12)
    assert same_rotation(quat_mul(q1, q2), wxyz(r1 * r2, torch.float64), atol=1e-12)


@pytest.mark.parametrize("swing_first", [True, False])
def test_twist_angle_recovers_the_twist(rng: np.random.Generator, swing_first: bool) -> None:
    axis = rng.normal(size=(64, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    twist = rng.uniform(-0.95 * math.pi, 0.95 * math.pi, size=64)
    swing_axis = np.cross(axis, rng.normal(size=(64, 3)))
    swing_axis /= np.linalg.norm(swing_axis, axis=1, keepdims=True)
    swing = Rotation.from_rotvec(swing_axis * rng.uniform(0.0, 0.9 * math.pi, size=(64, 1)))
    turn = Rotation.from_rotvec(axis * twist[:, None])
    q = wxyz(swing * turn if swing_first else turn * swing, torch.float64)
    ax = torch.tensor(axis)
    np.testing.assert_allclose(twist_angle(q, ax).numpy(), twist, atol=1e-9)
    np.testing.assert_allclose(twist_angle(-q, ax).numpy(), twist, atol=1e-9)


def test_tilt_angle_matches_scipy(rng: np.random.Generator) -> None:
    r, r0 = Rotation.random(64, random_state=rng), Rotation.random(64, random_state=rng)
    z = np.array([0.0, 0.0, 1.0])
    expected = np.arccos(np.clip((r.apply(z) * r0.apply(z)).sum(-1), -1.0, 1.0))
    np.testing.assert_allclose(tilt_angle(wxyz(r), wxyz(r0)).numpy(), expected, atol=2e-3)
    spun = r0 * Rotation.from_euler("z", rng.uniform(-180.0, 180.0, size=(64, 1)), degrees=True)  # about body z
    np.testing.assert_allclose(tilt_angle(wxyz(spun), wxyz(r0)).numpy(), 0.0, atol=2e-3)


def test_tilt_angle_in_float64() -> None:
    q = wxyz(Rotation.from_euler("x", [[30.0], [90.0]], degrees=True), torch.float64)
    np.testing.assert_allclose(tilt_angle(q, wxyz(Rotation.identity(2), torch.float64)).numpy(), np.radians([30, 90]))


def test_reached_measures_the_palm_against_an_offset_goal() -> None:
    from dexforge.sim.predicates import reached

    m = {
        "palm_pos": torch.tensor([[0.0, 0.0, 0.13], [0.0, 0.0, 0.2], [0.01, 0.0, 0.13]]),
        "cube.pos": torch.zeros(3, 3),
    }
    fn = reached("cube", (0.0, 0.0, 0.13), 0.015)
    assert fn(m).tolist() == [True, False, True]
