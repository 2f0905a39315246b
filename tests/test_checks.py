"""Physics checks on real, tiny Genesis scenes: each catches what it is for, and a good scene passes."""

from __future__ import annotations

import pytest

from dexforge.sim.checks import run_checks, static_checks
from dexforge.sim.spec import HandSpec, Lifted, ObjectSpec, Pose, TaskSpec

pytestmark = pytest.mark.genesis
HAND = HandSpec(pose=Pose(pos=(-0.1, 0.0, 0.3)))


def spec_with(*objects: ObjectSpec, name: str = "t") -> TaskSpec:
    return TaskSpec(name=name, hand=HAND, objects=list(objects), success=[Lifted(object=objects[0].key)])


def test_a_well_laid_out_scene_has_no_findings():
    report = run_checks(spec_with(ObjectSpec(asset="cube", pose=Pose(pos=(0.0, 0.0, 0.025)))))
    assert report.ok and report.findings == []
    assert set(report.checks_run) == {"interpenetration", "settling", "reach", "scale", "workspace"}


def test_interpenetration_names_the_pair_and_depth():
    spec = spec_with(
        ObjectSpec(asset="cube", pose=Pose(pos=(0.0, 0.0, 0.025))),
        ObjectSpec(asset="can", pose=Pose(pos=(0.03, 0.0, 0.0575))),  # 3 cm apart: 1.8 cm of overlap
    )
    report = run_checks(spec)
    found = report.by_check("interpenetration")
    assert [f.subject for f in found] == ["can <-> cube"]
    assert found[0].severity == "error" and 0.005 < found[0].values["depth"] < 0.04
    assert not report.ok


def test_an_object_in_mid_air_is_caught_by_settling():
    report = run_checks(spec_with(ObjectSpec(asset="ball", pose=Pose(pos=(0.1, 0.1, 0.25)))))
    found = report.by_check("settling")
    assert len(found) == 1 and found[0].subject == "ball"
    assert found[0].values["drop"] > 0.15 and "mid-air" in found[0].message
    assert report.by_check("interpenetration") == []


def test_an_object_that_rolls_away_is_caught():
    # a ball perched on the edge of a can rolls off
    spec = spec_with(
        ObjectSpec(asset="ball", pose=Pose(pos=(0.045, 0.0, 0.145))),
        ObjectSpec(asset="can", pose=Pose(pos=(0.0, 0.0, 0.0575))),
    )
    found = run_checks(spec).by_check("settling")
    assert "ball" in [f.subject for f in found]


def test_out_of_reach_and_out_of_workspace():
    far = spec_with(ObjectSpec(asset="cube", pose=Pose(pos=(1.5, 0.0, 0.025))))
    findings = static_checks(far)
    reach = [f for f in findings if f.check == "reach"]
    assert len(reach) == 1 and reach[0].values["gap"] > 0.5
    assert [f.check for f in findings if f.check == "workspace"] == ["workspace"]
    near = spec_with(ObjectSpec(asset="cube", pose=Pose(pos=(0.5, 0.3, 0.025))))
    assert static_checks(near) == []


def test_scale_against_the_hand():
    tiny = spec_with(ObjectSpec(asset="cube", scale=0.1, pose=Pose(pos=(0.0, 0.0, 0.0025))))
    huge = spec_with(ObjectSpec(asset="ball", scale=4.0, pose=Pose(pos=(0.0, 0.0, 0.134))))
    (small,) = [f for f in static_checks(tiny) if f.check == "scale"]
    assert "thin" in small.message and small.values["width"] == pytest.approx(0.005)
    big, heavy = [f for f in static_checks(huge) if f.check == "scale"]
    assert "wider" in big.message and big.values["width"] == pytest.approx(0.268)
    assert heavy.severity == "warning" and heavy.values["mass"] == pytest.approx(0.058 * 64)


def test_the_arm_mount_reach():
    spec = TaskSpec(
        hand=HandSpec(mount="ur5e", arm_base=(-0.55, 0.0, 0.0)),
        objects=[ObjectSpec(asset="cube", pose=Pose(pos=(0.6, 0.0, 0.025)))],
        success=[Lifted(object="cube")],
    )
    assert [f.check for f in static_checks(spec)] == ["reach"]  # 1.16 m from the shoulder
