"""TaskSpec: YAML round trips, the shipped examples, and one-line validation errors (no Genesis, fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

import dexforge.sim
from dexforge.sim.spec import (
    PREDICATE_KINDS,
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
    Reached,
    Rotated,
    SpecError,
    TaskSpec,
    Touching,
)

EXAMPLES = sorted((Path(dexforge.sim.__file__).parent / "examples").glob("*.yaml"))


def full_spec() -> TaskSpec:
    """A spec that sets every predicate kind, several objects and most non-default fields."""
    return TaskSpec(
        name="everything",
        description="Do it all. Randomised: the cube. Success: every predicate below.",
        hand=HandSpec(
            mount="ur5e", pose=Pose(pos=(-0.1, 0.0, 0.3), euler=(0.0, 15.0, -30.0)), arm_base=(-0.6, 0.1, 0.0)
        ),
        objects=[
            ObjectSpec(
                name="red_cube",
                asset="cube",
                scale=1.5,
                pose=Pose(pos=(0.0, 0.0, 0.04)),
                randomize=PoseNoise(xy=0.02, yaw=15.0),
            ),
            ObjectSpec(asset="ball", pose=Pose(pos=(0.1, -0.1, 0.034))),
            ObjectSpec(asset="bowl", pose=Pose(pos=(0.2, 0.15, 0.03), euler=(0.0, 0.0, 45.0)), fixed=True),
            ObjectSpec(asset="plate", pose=Pose(pos=(-0.2, 0.15, 0.0075))),
            ObjectSpec(
                asset="cabinet_drawer", scale=0.8, pose=Pose(pos=(0.4, 0.0, 0.12)), joints={"drawer_joint": 0.05}
            ),
        ],
        success=[
            Lifted(object="red_cube", height=0.12),
            Inside(object="red_cube", container="bowl"),
            On(object="ball", surface="plate"),
            Rotated(object="red_cube", axis="x", angle=-45.0, tolerance=10.0),
            Opened(object="cabinet_drawer", joint="drawer_joint", fraction=0.3),
            Touching(object="ball", min_fingers=3),
            Held(object="red_cube", duration=2.5),
            Reached(object="red_cube", offset=(-0.04, 0.0, 0.03), tolerance=0.015),
            Moved(object="ball", offset=(0.0, -0.08, 0.0), tolerance=0.025),
        ],
        episode_length=321,
        dt=0.005,
        seed=7,
    )


def spec_error(text: str) -> str:
    """The message of the SpecError that `text` raises; it must be one line."""
    with pytest.raises(SpecError) as info:
        TaskSpec.from_yaml(text)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# Round trips ------------------------------------------------------------------------------------------


def test_full_spec_covers_every_predicate_kind() -> None:
    assert sorted(p.kind for p in full_spec().success) == sorted(PREDICATE_KINDS)


def test_round_trip_through_yaml_text() -> None:
    spec = full_spec()
    again = TaskSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert again.to_yaml() == spec.to_yaml()
    assert [type(p) for p in again.success] == [type(p) for p in spec.success]


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    spec = full_spec()
    path = spec.save(tmp_path / "nested" / "everything.yaml")
    assert path.is_file()
    assert TaskSpec.load(path) == spec
    assert TaskSpec.load(str(path)) == spec


def test_defaults_round_trip() -> None:
    assert TaskSpec.from_yaml(TaskSpec().to_yaml()) == TaskSpec()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_shipped_example_loads(path: Path) -> None:
    spec = TaskSpec.load(path)
    assert spec.name == path.stem
    assert spec.objects and spec.success
    assert TaskSpec.from_yaml(spec.to_yaml()) == spec


def test_examples_are_shipped() -> None:
    assert {p.stem for p in EXAMPLES} >= {"lift_cube", "apple_in_bowl", "open_drawer"}


# Synonyms ---------------------------------------------------------------------------------------------


def test_synonyms_resolve_to_catalog_assets() -> None:
    spec = TaskSpec.from_yaml(
        "hand: {asset: shadow}\n"
        "objects:\n  - asset: block\n  - asset: ' Drawer '\n"
        "success:\n  - {kind: lifted, object: block}\n  - {kind: opened, object: ' Drawer '}\n"
    )
    assert spec.asset_of("block").id == "cube"
    assert spec.asset_of(" Drawer ").id == "cabinet_drawer"
    assert spec.objects[0].key == "block"


# Validation errors ------------------------------------------------------------------------------------


def test_unknown_asset_names_the_field_and_the_closest_asset() -> None:
    message = spec_error("objects:\n  - asset: cubee\n")
    assert "objects.0.asset" in message
    assert "closest" in message
    assert "cube" in message.split("closest", 1)[1]


def test_negative_scale_names_the_bound() -> None:
    message = spec_error("objects:\n  - asset: cube\n  - asset: ball\n    scale: -1\n")
    assert "objects.1.scale" in message
    assert "greater than 0" in message


def test_unknown_predicate_kind_lists_the_allowed_kinds() -> None:
    message = spec_error("objects:\n  - asset: cube\nsuccess:\n  - {kind: flying, object: cube}\n")
    assert "success.0" in message
    assert "flying" in message
    for kind in PREDICATE_KINDS:
        assert kind in message


def test_predicate_on_a_missing_object_lists_the_objects() -> None:
    message = spec_error(
        "objects:\n  - asset: cube\n  - asset: plate\nsuccess:\n  - {kind: 'on', object: cube, surface: table}\n"
    )
    assert "success.0" in message
    assert "'table'" in message
    assert "cube" in message and "plate" in message


def test_unquoted_on_predicate_loads() -> None:
    spec = TaskSpec.from_yaml(
        "objects:\n  - asset: cube\n  - asset: plate\nsuccess:\n  - {kind: on, object: cube, surface: plate}\n"
    )
    assert spec.success == [On(object="cube", surface="plate")]


def test_quoted_on_predicate_loads() -> None:
    spec = TaskSpec.from_yaml(
        "objects:\n  - asset: cube\n  - asset: plate\nsuccess:\n  - {kind: 'on', object: cube, surface: plate}\n"
    )
    assert spec.success == [On(object="cube", surface="plate")]


def test_inside_a_non_container_is_refused() -> None:
    message = spec_error(
        "objects:\n  - asset: cube\n  - asset: plate\nsuccess:\n  - {kind: inside, object: cube, container: plate}\n"
    )
    assert "success.0" in message
    assert "'plate' is not a container" in message


def test_unknown_mount_lists_the_allowed_mounts() -> None:
    message = spec_error("hand: {mount: kuka}\n")
    assert "hand.mount" in message
    for mount in ("floating", "ur5e", "panda"):
        assert mount in message


@pytest.mark.parametrize(
    ("text", "field"),
    [("colour: red\n", "colour"), ("objects:\n  - asset: cube\n    colour: red\n", "objects.0.colour")],
)
def test_unknown_field_is_named(text: str, field: str) -> None:
    assert f"{field}: unknown field" in spec_error(text)


def test_unknown_initial_joint_lists_the_joints() -> None:
    message = spec_error("objects:\n  - asset: cabinet_drawer\n    joints: {door_joint: 0.1}\n")
    assert "objects.0.joints" in message
    assert "door_joint" in message
    assert "drawer_joint" in message


def test_unknown_predicate_joint_lists_the_joints() -> None:
    message = spec_error(
        "objects:\n  - asset: cabinet_drawer\nsuccess:\n  - {kind: opened, object: cabinet_drawer, joint: hinge}\n"
    )
    assert "hinge" in message and "drawer_joint" in message


def test_opening_an_object_without_joints_is_refused() -> None:
    assert "has no joint to open" in spec_error(
        "objects:\n  - asset: cube\nsuccess:\n  - {kind: opened, object: cube}\n"
    )


def test_duplicate_object_names_are_refused() -> None:
    message = spec_error("objects:\n  - asset: cube\n  - asset: ball\n    name: cube\n")
    assert "objects.1.name" in message and "used twice" in message


def test_several_problems_are_joined_on_one_line() -> None:
    message = spec_error("objects:\n  - asset: cube\n    scale: -1\n  - asset: ball\n    scale: 20\n")
    assert "objects.0.scale" in message and "objects.1.scale" in message
    assert "; " in message


def test_malformed_yaml_gives_the_line() -> None:
    message = spec_error("name: broken\nobjects:\n  - asset: cube\n   scale: [1\n")
    assert "malformed YAML" in message
    assert "line 4" in message


@pytest.mark.parametrize("text", ["- asset: cube\n", "42\n", ""], ids=["list", "scalar", "empty"])
def test_a_spec_must_be_a_mapping(text: str) -> None:
    message = spec_error(text)
    assert "mapping" in message
    assert "objects" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match="no such spec file") as info:
        TaskSpec.load(path)
    assert str(path) in str(info.value)


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("objects:\n  - asset: cubee\n")
    with pytest.raises(SpecError) as info:
        TaskSpec.load(path)
    assert str(info.value).startswith(f"{path}: ")


BAD_SPECS = {
    "unknown_asset": "objects:\n  - asset: cubee\n",
    "negative_scale": "objects:\n  - asset: cube\n    scale: -1\n",
    "unknown_kind": "objects:\n  - asset: cube\nsuccess:\n  - {kind: flying, object: cube}\n",
    "missing_kind": "objects:\n  - asset: cube\nsuccess:\n  - {object: cube}\n",
    "missing_object": "objects:\n  - asset: cube\nsuccess:\n  - {kind: lifted, object: ball}\n",
    "not_container": (
        "objects:\n  - asset: cube\n  - asset: plate\nsuccess:\n  - {kind: inside, object: cube, container: plate}\n"
    ),
    "unknown_mount": "hand: {mount: kuka}\n",
    "unknown_field": "colour: red\n",
    "unknown_joint": "objects:\n  - asset: cabinet_drawer\n    joints: {door: 0.1}\n",
    "malformed": "objects:\n  - asset: cube\n   scale: [1\n",
    "tab": "objects:\n\t- asset: cube\n",
    "python_tag": "!!python/object:os.system {}\n",
    "list": "- asset: cube\n",
    "wrong_type": "episode_length: many\n",
    "short_vector": "objects:\n  - asset: cube\n    pose: {pos: [1, 2]}\n",
    "bad_name": "name: 'two words'\n",
}


@pytest.mark.parametrize("text", BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_every_error_is_a_single_line_spec_error(text: str) -> None:
    assert spec_error(text)


def test_unknown_hand_is_a_spec_error_naming_the_field() -> None:
    message = spec_error("hand: {asset: allegro}\n")
    assert "hand.asset" in message and "shadow_hand" in message


def test_missing_mesh_asset_is_a_spec_error_naming_the_field(tmp_path: Path) -> None:
    message = spec_error(f"objects:\n  - asset: {tmp_path / 'missing.obj'}\n")
    assert "objects.0.asset" in message


@pytest.mark.parametrize(
    "text",
    [
        'objects:\n  - asset: "cu\\nbe"\n',
        'objects:\n  - asset: cube\nsuccess:\n  - {kind: lifted, object: "a\\nb"}\n',
        '"col\\nour": 1\n',
    ],
    ids=["asset", "predicate_object", "field"],
)
def test_newlines_in_user_strings_stay_on_one_line(text: str) -> None:
    spec_error(text)
