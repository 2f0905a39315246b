"""The asset catalog: hands and everyday objects with real dimensions, masses, friction and tags.

Every object has an id, synonyms for language ("block" finds the cube), semantic tags the planner
reads (`graspable`, `container`, `surface`, `articulated`, ...) and its extents in metres at scale 1.
Shapes are Genesis primitives where one fits (contacts on primitives are the most robust), URDFs of
primitive parts built by `dexforge.sim.assets.procedural` for containers and cabinets, and meshes
(shipped with Genesis, rescaled to metres, or a user's file validated by `dexforge.sim.assets.user`).

Ids are resolved with `Catalog.object(ref)`: an id, a synonym, or a path to a mesh or URDF file.
An unknown id raises `UnknownAsset`, whose message names the closest catalog entries.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from dexforge.home import DexforgeError, home

Tag = Literal[
    "graspable",
    "container",
    "surface",
    "articulated",
    "rollable",
    "food",
    "tool",
    "drinkware",
    "furniture",
    "toy",
    "user",
]
Shape = Literal["box", "sphere", "cylinder", "mesh", "urdf"]
MESH_SUFFIXES = (".obj", ".stl", ".glb", ".gltf", ".ply")
URDF_SUFFIXES = (".urdf",)


class UnknownAsset(DexforgeError):
    """An asset reference that names nothing in the catalog."""

    def __init__(self, ref: str, kind: str, choices: Iterable[str]):
        choices = sorted(set(choices))
        close = difflib.get_close_matches(ref.lower(), choices, n=4, cutoff=0.4)
        hint = f"closest: {', '.join(close)}" if close else f"known: {', '.join(choices)}"
        super().__init__(f"unknown {kind} {ref!r}; {hint}")
        self.ref = ref
        self.closest = close


class HandleGrip(BaseModel):
    """How a hand takes hold of a handle bar: where its outer face is, which way it faces, and which way the
    fingers lie across it (closing them curls the fingertips behind the bar, a hook that pulls)."""

    model_config = ConfigDict(frozen=True)

    face: tuple[float, float, float] = Field(
        description="Centre of the bar's outer face, m at scale 1, object frame, from the bounding box's centre "
        "with the joints closed."
    )
    normal: tuple[float, float, float] = Field(default=(-1.0, 0.0, 0.0), description="Unit vector out of the face.")
    fingers: tuple[float, float, float] = Field(
        description="Unit vector across the bar, along which the fingers point (the palm lies on the other side)."
    )


class ArticulationJoint(BaseModel):
    """A joint of an articulated object that a task can open or close."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Joint name in the object's URDF.")
    kind: Literal["prismatic", "revolute"] = Field(description="Sliding (drawer) or hinged (door).")
    lower: float = Field(description="Closed position (m or rad).")
    upper: float = Field(description="Fully open position (m or rad).")
    handle_link: str | None = Field(default=None, description="Link the hand should grasp to move it.")
    grip: HandleGrip | None = Field(default=None, description="How to hook the handle (for planned pulls).")

    def range_at(self, scale: float) -> tuple[float, float]:
        """(closed, open) at an object scale: a drawer's travel scales, a hinge's angle does not."""
        k = scale if self.kind == "prismatic" else 1.0
        return self.lower * k, self.upper * k


class ObjectAsset(BaseModel):
    """One catalog object. Extents, mass and friction are real-world values at scale 1."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Catalog id, lower case.")
    synonyms: tuple[str, ...] = Field(default=(), description="Other words people use for it.")
    description: str = Field(default="", description="One line for people and models.")
    tags: tuple[Tag, ...] = Field(default=(), description="Semantic tags the planner reads.")
    shape: Shape = Field(description="How the object is built in Genesis.")
    size: tuple[float, float, float] = Field(
        description="Extents (x, y, z) in metres at scale 1; for a sphere (2r, 2r, 2r), a cylinder (2r, 2r, h)."
    )
    mass: float | None = Field(default=None, gt=0, description="Mass in kg; when None, density is used.")
    density: float = Field(default=600.0, gt=0, description="kg/m^3, used when mass is None.")
    friction: float = Field(default=1.0, ge=0.01, le=5.0, description="Coulomb friction coefficient.")
    color: tuple[float, float, float] = Field(default=(0.7, 0.7, 0.7), description="RGB in [0, 1].")
    fixed: bool = Field(default=False, description="Welded to the world (furniture).")
    generator: str | None = Field(
        default=None, description="Name of the procedural URDF builder in dexforge.sim.assets.procedural."
    )
    file: str | None = Field(default=None, description="Mesh or URDF path (shipped or user assets).")
    file_scale: float = Field(default=1.0, gt=0, description="Factor that brings the file's units to metres.")
    articulation: tuple[ArticulationJoint, ...] = Field(default=(), description="Joints a task can open.")
    inner: tuple[float, float, float] | None = Field(
        default=None, description="Inner extents of a container's cavity (x, y, depth) in metres at scale 1."
    )

    @property
    def graspable(self) -> bool:
        return "graspable" in self.tags

    def names(self) -> tuple[str, ...]:
        return (self.id, *self.synonyms)


class HandAsset(BaseModel):
    """A dexterous hand and the mounts it supports."""

    model_config = ConfigDict(frozen=True)

    id: str
    synonyms: tuple[str, ...] = ()
    description: str = ""
    urdf: str = Field(description="Path of the hand's URDF relative to Genesis's asset folder.")
    mounts: tuple[Literal["floating", "ur5e", "panda"], ...] = ("floating",)


HANDS: tuple[HandAsset, ...] = (
    HandAsset(
        id="shadow_hand",
        synonyms=("shadow", "shadow hand", "hand", "dexterous hand"),
        description="Shadow Dexterous Hand, 24 joints (2 wrist, 5 thumb, 4 per finger, 5 little finger).",
        urdf="urdf/shadow_hand/shadow_hand.urdf",
        mounts=("floating", "ur5e", "panda"),
    ),
)

RED, GREEN, BLUE, WHITE = (0.85, 0.15, 0.12), (0.25, 0.7, 0.3), (0.2, 0.35, 0.8), (0.92, 0.92, 0.9)

BUILTIN_OBJECTS: tuple[ObjectAsset, ...] = (
    ObjectAsset(
        id="cube",
        synonyms=("block", "box", "brick", "dice", "die"),
        description="A 5 cm wooden cube.",
        tags=("graspable", "toy"),
        shape="box",
        size=(0.05, 0.05, 0.05),
        mass=0.08,
        color=BLUE,
    ),
    ObjectAsset(
        id="ball",
        synonyms=("sphere", "tennis ball", "orb"),
        description="A 6.7 cm tennis ball.",
        tags=("graspable", "rollable", "toy"),
        shape="sphere",
        size=(0.067, 0.067, 0.067),
        mass=0.058,
        color=(0.8, 0.9, 0.2),
    ),
    ObjectAsset(
        id="apple",
        synonyms=("fruit", "red apple", "green apple"),
        description="An 8 cm apple.",
        tags=("graspable", "rollable", "food"),
        shape="sphere",
        size=(0.08, 0.08, 0.08),
        mass=0.18,
        friction=0.8,
        color=RED,
    ),
    ObjectAsset(
        id="can",
        synonyms=("soda can", "tin", "tin can", "coke can", "soup can"),
        description="A 330 ml drinks can, 6.6 cm across and 11.5 cm tall.",
        tags=("graspable", "drinkware", "rollable"),
        shape="cylinder",
        size=(0.066, 0.066, 0.115),
        mass=0.35,
        friction=0.7,
        color=(0.75, 0.1, 0.1),
    ),
    ObjectAsset(
        id="bottle",
        synonyms=("water bottle", "flask", "plastic bottle"),
        description="A 500 ml plastic bottle, 6.5 cm across and 21 cm tall.",
        tags=("graspable", "drinkware"),
        shape="urdf",
        generator="bottle",
        size=(0.065, 0.065, 0.21),
        mass=0.3,
        friction=0.7,
        color=(0.55, 0.75, 0.95),
    ),
    ObjectAsset(
        id="mug",
        synonyms=("cup", "coffee mug", "coffee cup", "tea cup"),
        description="A ceramic mug, 8 cm across and 9.5 cm tall, with a handle on +x.",
        tags=("graspable", "container", "drinkware"),
        shape="urdf",
        generator="mug",
        size=(0.115, 0.08, 0.095),
        mass=0.3,
        friction=0.8,
        color=WHITE,
        inner=(0.07, 0.07, 0.085),
    ),
    ObjectAsset(
        id="bowl",
        synonyms=("dish", "basin", "salad bowl"),
        description="A bowl, 16 cm across and 6 cm deep.",
        tags=("container",),
        shape="urdf",
        generator="bowl",
        size=(0.16, 0.16, 0.06),
        mass=0.35,
        friction=0.8,
        color=(0.95, 0.85, 0.6),
        inner=(0.14, 0.14, 0.05),
    ),
    ObjectAsset(
        id="plate",
        synonyms=("dinner plate", "saucer", "tray"),
        description="A flat plate, 22 cm across and 1.5 cm thick.",
        tags=("surface",),
        shape="cylinder",
        size=(0.22, 0.22, 0.015),
        mass=0.4,
        friction=0.8,
        color=WHITE,
    ),
    ObjectAsset(
        id="marker",
        synonyms=("pen", "pencil", "felt pen", "sharpie", "stick"),
        description="A marker pen, 1.6 cm across and 13 cm long, lying on its side along x.",
        tags=("graspable", "tool"),
        shape="urdf",
        generator="marker",
        size=(0.13, 0.016, 0.016),
        mass=0.02,
        friction=0.8,
        color=(0.1, 0.1, 0.1),
    ),
    ObjectAsset(
        id="cabinet_drawer",
        synonyms=("drawer", "cabinet", "chest of drawers", "dresser"),
        description="A 40 cm cabinet with one drawer that slides out 20 cm along -x; handle on the front.",
        tags=("articulated", "furniture"),
        shape="urdf",
        generator="cabinet_drawer",
        size=(0.3, 0.4, 0.3),
        mass=8.0,
        fixed=True,
        color=(0.6, 0.45, 0.3),
        articulation=(
            ArticulationJoint(
                name="drawer_joint",
                kind="prismatic",
                lower=0.0,
                upper=0.2,
                handle_link="handle",
                grip=HandleGrip(face=(-0.15, 0.0, 0.0), fingers=(0.0, 0.0, 1.0)),
            ),
        ),
    ),
    ObjectAsset(
        id="cabinet_door",
        synonyms=("cupboard", "door", "wardrobe", "locker"),
        description="A 40 cm cabinet with a door hinged on its left edge, opening 90 degrees towards -x.",
        tags=("articulated", "furniture"),
        shape="urdf",
        generator="cabinet_door",
        size=(0.3, 0.4, 0.4),
        mass=8.0,
        fixed=True,
        color=(0.6, 0.45, 0.3),
        articulation=(
            ArticulationJoint(
                name="door_joint",
                kind="revolute",
                lower=0.0,
                upper=1.5708,
                handle_link="handle",
                grip=HandleGrip(face=(-0.15, -0.16, 0.0), fingers=(0.0, -1.0, 0.0)),
            ),
        ),
    ),
    ObjectAsset(
        id="microwave",
        synonyms=("microwave oven", "oven", "microwave door"),
        description="A 45 cm microwave oven: a door hinged on its left edge swings out 90 degrees; control panel "
        "on the right, a vertical handle near the door's free edge.",
        tags=("articulated", "furniture"),
        shape="urdf",
        generator="microwave",
        size=(0.3, 0.45, 0.28),
        mass=12.0,
        fixed=True,
        color=(0.85, 0.85, 0.88),
        articulation=(
            ArticulationJoint(
                name="door_joint",
                kind="revolute",
                lower=0.0,
                upper=1.5708,
                handle_link="handle",
                grip=HandleGrip(face=(-0.15, -0.05, 0.0), fingers=(0.0, -1.0, 0.0)),
            ),
        ),
    ),
    ObjectAsset(
        id="chest",
        synonyms=("toy box", "toybox", "trunk", "storage chest", "chest lid"),
        description="A 40 cm chest whose lid is hinged along its back top edge and opens 90 degrees upwards; a "
        "horizontal handle on the lid's front.",
        tags=("articulated", "furniture"),
        shape="urdf",
        generator="chest",
        size=(0.3, 0.4, 0.22),
        mass=5.0,
        fixed=True,
        color=(0.55, 0.35, 0.2),
        articulation=(
            ArticulationJoint(
                name="lid_joint",
                kind="revolute",
                lower=0.0,
                upper=1.5708,
                handle_link="handle",
                grip=HandleGrip(face=(-0.15, 0.0, 0.1025), fingers=(0.0, 0.0, -1.0)),
            ),
        ),
    ),
)


def user_catalog_path() -> Path:
    return home() / "catalog" / "user.yaml"


class Catalog:
    """Hands and objects by id or synonym; builtin entries plus shipped Genesis meshes plus user assets."""

    def __init__(self, objects: Iterable[ObjectAsset], hands: Iterable[HandAsset] = HANDS):
        self.objects: dict[str, ObjectAsset] = {}
        for obj in objects:
            if obj.id in self.objects:
                raise ValueError(f"duplicate catalog id {obj.id!r}")
            self.objects[obj.id] = obj
        self.hands = {h.id: h for h in hands}
        self._alias = {name.lower(): o.id for o in self.objects.values() for name in reversed(o.names())}
        self._hand_alias = {name.lower(): h.id for h in self.hands.values() for name in (h.id, *h.synonyms)}

    def object(self, ref: str) -> ObjectAsset:
        """Resolve an id, a synonym or a path to a mesh/URDF file (validated on import)."""
        key = ref.strip().lower()
        if key in self._alias:
            return self.objects[self._alias[key]]
        if ref.lower().endswith(MESH_SUFFIXES + URDF_SUFFIXES) or "/" in ref:
            from dexforge.sim.assets.user import import_asset

            return import_asset(Path(ref))
        raise UnknownAsset(ref, "object", self._alias)

    def hand(self, ref: str) -> HandAsset:
        key = ref.strip().lower()
        if key not in self._hand_alias:
            raise UnknownAsset(ref, "hand", self._hand_alias)
        return self.hands[self._hand_alias[key]]

    def object_ids(self) -> list[str]:
        return list(self.objects)

    def with_tag(self, tag: str) -> list[ObjectAsset]:
        return [o for o in self.objects.values() if tag in o.tags]


def load_user_objects(path: Path | None = None) -> list[ObjectAsset]:
    """Assets a user added with `dexforge sim catalog add` (a YAML list in the home)."""
    path = path or user_catalog_path()
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or []
    return [ObjectAsset.model_validate(item) for item in data]


def save_user_object(asset: ObjectAsset, path: Path | None = None) -> Path:
    """Add or replace a user asset in the user catalog file."""
    path = path or user_catalog_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = [o for o in load_user_objects(path) if o.id != asset.id]
    existing.append(asset)
    path.write_text(yaml.safe_dump([o.model_dump(mode="json") for o in existing], sort_keys=False))
    return path


@cache
def default_catalog() -> Catalog:
    """The builtin objects, the usable Genesis meshes and the user's own assets."""
    from dexforge.sim.assets.shipped import shipped_objects

    builtin_ids = {o.id for o in BUILTIN_OBJECTS}
    shipped = [o for o in shipped_objects() if o.id not in builtin_ids]
    taken = builtin_ids | {o.id for o in shipped}
    user = [o for o in load_user_objects() if o.id not in taken]
    return Catalog([*BUILTIN_OBJECTS, *shipped, *user])
