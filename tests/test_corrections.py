"""Typed corrections applied to a TaskSpec by code: each kind, and every way a correction can be refused."""

from __future__ import annotations

import pytest

from dexforge.agents.corrections import CorrectionError, apply_corrections
from dexforge.agents.schemas import Move, Remove, Replace, Rotate, Scale
from dexforge.sim.spec import Inside, ObjectSpec, Pose, TaskSpec


def place_spec() -> TaskSpec:
    return TaskSpec(
        name="place_cube",
        objects=[
            ObjectSpec(asset="cube", pose=Pose(pos=(0.0, -0.12, 0.025))),
            ObjectSpec(asset="bowl", pose=Pose(pos=(0.0, 0.12, 0.03))),
            ObjectSpec(name="extra", asset="ball", pose=Pose(pos=(0.2, 0.0, 0.0335))),
        ],
        success=[Inside(object="cube", container="bowl")],
    )


def test_move_scale_rotate_change_only_their_field_and_leave_the_input_alone():
    spec = place_spec()
    out = apply_corrections(
        spec,
        [
            Move(object="bowl", pos=(0.05, 0.2, 0.03)),
            Scale(object="cube", scale=0.8),
            Rotate(object="extra", euler=(0.0, 0.0, 45.0)),
        ],
    )
    assert out.object_spec("bowl").pose.pos == (0.05, 0.2, 0.03)
    assert out.object_spec("cube").scale == 0.8 and out.object_spec("cube").pose.pos == (0.0, -0.12, 0.025)
    assert out.object_spec("extra").pose.euler == (0.0, 0.0, 45.0)
    assert spec.object_spec("bowl").pose.pos == (0.0, 0.12, 0.03)  # frozen input unchanged
    assert spec.object_spec("cube").scale == 1.0


def test_corrections_apply_in_order_the_last_move_wins():
    out = apply_corrections(
        place_spec(), [Move(object="bowl", pos=(0.1, 0.1, 0.03)), Move(object="bowl", pos=(0.2, 0.1, 0.03))]
    )
    assert out.object_spec("bowl").pose.pos == (0.2, 0.1, 0.03)


def test_no_corrections_returns_the_same_spec():
    spec = place_spec()
    assert apply_corrections(spec, []) is spec


def test_replace_keeps_name_and_pose_and_resets_scale():
    spec = apply_corrections(place_spec(), [Scale(object="cube", scale=0.7)])
    out = apply_corrections(spec, [Replace(object="cube", asset="block")])  # a synonym resolves to its id
    obj = out.object_spec("cube")
    assert obj.name == "cube" and obj.asset == "cube"
    out = apply_corrections(spec, [Replace(object="cube", asset="ball")])
    obj = out.object_spec("cube")
    assert (obj.name, obj.asset, obj.scale, obj.pose.pos) == ("cube", "ball", 1.0, (0.0, -0.12, 0.025))
    assert out.success[0].object == "cube"  # the predicate still finds it


def test_replacing_the_container_with_a_non_container_is_refused():
    with pytest.raises(CorrectionError, match="not a container"):
        apply_corrections(place_spec(), [Replace(object="bowl", asset="cube")])


def test_replace_with_an_unknown_asset_names_the_closest():
    with pytest.raises(CorrectionError, match="closest") as info:
        apply_corrections(place_spec(), [Replace(object="cube", asset="bowel")])
    assert "bowl" in str(info.value)


def test_remove_an_object_no_predicate_names():
    out = apply_corrections(place_spec(), [Remove(object="extra")])
    assert [o.key for o in out.objects] == ["cube", "bowl"]


@pytest.mark.parametrize("name", ["cube", "bowl"])
def test_removing_an_object_the_predicates_need_is_refused(name):
    with pytest.raises(CorrectionError, match="success predicates name"):
        apply_corrections(place_spec(), [Remove(object=name)])


def test_an_unknown_object_is_refused_with_the_names():
    with pytest.raises(CorrectionError) as info:
        apply_corrections(place_spec(), [Move(object="mug", pos=(0.0, 0.0, 0.05))])
    message = str(info.value)
    assert "'mug'" in message and "cube, bowl, extra" in message


def test_a_correction_after_removing_its_object_is_refused():
    with pytest.raises(CorrectionError, match="no object named 'extra'"):
        apply_corrections(place_spec(), [Remove(object="extra"), Move(object="extra", pos=(0.0, 0.0, 0.03))])
