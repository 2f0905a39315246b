"""The meshes that ship with Genesis and make sensible objects for a hand, rescaled to metres.

The raw extents and bounding-box centres below were measured once with trimesh (tests/test_assets.py
re-measures them), so `shipped_objects()` reads no file and never imports Genesis. Several files are y-up:
Genesis loads them upright only with `gs.morphs.Mesh(file_meshes_are_zup=False)`, which maps (x, y, z) to
(x, -z, y); `SHIPPED_FRAMES` (read through `dexforge.sim.assets.user.asset_frame`) carries that flag and the
bounding-box centre, and every `size` is given in that upright, z-up frame.

Skipped, and why:
- duck.obj, dragon.obj (top level): untextured, ten times heavier duplicates of duck/ and dragon/.
- sphere.obj: a unit sphere; the builtin `ball` is the same thing as a primitive.
- worm/worm.obj: a soft-body (MPM) demo; as a rigid body it is a hollow half-shell.
- bathtub/bathtub.obj, icecream_dispenser.obj: furniture-sized scenery (the dispenser has 340k faces).
- cloth.obj, trashbag_rope.glb, terrain_45.obj, cross_cutter.obj: cloth, rope, a single slope quad and an
  open blade outline for deformable demos; no volume.
- axis.obj, camera/camera.glb, env_sphere/env_sphere.obj: a debug gizmo, the camera-frustum marker Genesis
  draws, and a 2 m environment sphere.
- ../urdf/3763 (a PartNet-Mobility bottle with a cap) is a URDF, not a mesh, and out of this list's scope.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import NamedTuple

from dexforge.sim.catalog import ObjectAsset, Tag

Vec3 = tuple[float, float, float]


class Shipped(NamedTuple):
    """One Genesis mesh: measured raw numbers (file units and axes) and its real-world identity."""

    id: str
    file: str  # relative to genesis/assets/meshes
    zup: bool  # False: the file is y-up and needs file_meshes_are_zup=False (GLB files always are)
    raw_extents: Vec3
    raw_center: Vec3
    length: float  # the real-world largest extent in metres; fixes file_scale
    mass: float
    friction: float
    color: Vec3
    tags: tuple[Tag, ...]
    synonyms: tuple[str, ...]
    description: str


SHIPPED: tuple[Shipped, ...] = (
    Shipped("duck", "duck/duck.obj", False, (272.346, 297.256, 354.255), (0.0, 70.0, 0.0), 0.08, 0.04, 0.9,
            (0.95, 0.8, 0.1), ("graspable", "toy"), ("rubber duck", "rubber duckie", "duckie", "toy duck"),
            "A textured rubber duck, 8 cm long (hollow rubber, light)."),
    Shipped("bunny", "bunny.obj", True, (1.0, 0.774286, 0.98938), (0.0, 0.0, 0.0), 0.1, 0.15, 0.8,
            (0.85, 0.8, 0.75), ("graspable", "toy"), ("rabbit", "stanford bunny", "toy rabbit", "figurine"),
            "The Stanford bunny as a 10 cm figurine."),
    Shipped("dragon", "dragon/dragon.obj", False, (141.519, 99.6081, 63.2119), (0.083046, 49.7999, 0.0394958),
            0.15, 0.25, 0.8, (0.3, 0.6, 0.35), ("graspable", "toy"), ("dragon figurine", "toy dragon", "statue"),
            "A textured dragon figurine, 15 cm long."),
    Shipped("wooden_ball", "wooden_sphere_OBJ/wooden_sphere.obj", False, (6.97269, 6.97269, 6.97269),
            (0.0, 3.48635, 0.0), 0.07, 0.11, 0.8, (0.75, 0.55, 0.35), ("graspable", "rollable", "toy"),
            ("wooden sphere", "wood ball", "wooden ball"), "A 7 cm wooden ball with a wood texture."),
    Shipped("chopping_board", "chopping-board/source/chopping_board.glb", False, (7.02621, 0.341891, 4.81774),
            (0.469267, -0.223306, 0.0), 0.3, 0.6, 0.7, (0.7, 0.5, 0.3), ("surface", "tool"),
            ("cutting board", "chopping board", "breadboard", "board"),
            "A wooden chopping board, 30 x 21 cm and 1.5 cm thick."),
    Shipped("stirrer", "stirrer.obj", True, (0.01016, 0.16256, 0.01016), (0.0, 0.0, 0.0), 0.16256, 0.01, 0.8,
            (0.8, 0.65, 0.45), ("graspable", "tool"), ("stir stick", "stirring rod", "swizzle stick", "dowel"),
            "A 16 cm stirring rod, 1 cm thick, lying along y."),
    Shipped("bolt", "bolt_nut/bolt.stl", True, (0.0415692, 0.036, 0.043), (0.0, 0.0, 0.0105), 0.043, 0.19, 0.5,
            (0.6, 0.6, 0.65), ("graspable", "tool"), ("hex bolt", "screw"),
            "A large steel hex bolt, 4.3 cm tall with a 3.6 cm head."),
    Shipped("hex_nut", "bolt_nut/nut.stl", True, (0.0415692, 0.036, 0.018), (0.0, 0.0, 0.009), 0.0415692, 0.1,
            0.5, (0.6, 0.6, 0.65), ("graspable", "tool"), ("nut", "steel nut"),
            "A steel hex nut for the bolt, 3.6 cm across the flats and 1.8 cm thick."),
    Shipped("plastic_tub", "tank.obj", False, (0.14732, 0.0635, 0.1143), (0.0, 0.03175, 0.0), 0.14732, 0.2, 0.7,
            (0.6, 0.8, 0.93), ("container",), ("tub", "plastic box", "storage box", "bin", "tank"),
            "An open-top plastic tub, 15 x 11 cm and 6 cm deep (its cavity needs Genesis's convex decomposition)."),
    Shipped("toy_boat", "boat/boat.obj", False, (4.18365, 0.904983, 1.89846), (0.413335, 0.0213045, 0.0), 0.2,
            0.1, 0.8, (0.8, 0.3, 0.2), ("graspable", "toy"), ("boat", "ship", "toy ship"),
            "A textured toy rowing boat, 20 cm long."),
    Shipped("toy_airplane", "Airplane/airplane.obj", False, (130.114, 33.6265, 97.9339),
            (-0.00705, 16.6171, -23.6974), 0.2, 0.08, 0.8, (0.8, 0.8, 0.8), ("graspable", "toy"),
            ("airplane", "aeroplane", "toy plane", "aircraft", "jet"), "A textured toy airplane, 20 cm wingspan."),
)  # fmt: skip


def genesis_meshes_dir() -> Path | None:
    """genesis/assets/meshes, found without importing Genesis (which takes seconds)."""
    spec = importlib.util.find_spec("genesis")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "meshes"


def upright(v: Vec3, zup: bool) -> Vec3:
    """A vector of a file in the frame Genesis loads it into: (x, y, z) -> (x, -z, y) for a y-up file."""
    return v if zup else (v[0], -v[2], v[1])


def file_scale(entry: Shipped) -> float:
    """Factor from file units to metres that makes the largest extent `entry.length`."""
    return entry.length / max(entry.raw_extents)


@cache
def _objects_and_frames() -> tuple[tuple[ObjectAsset, ...], dict[str, tuple[bool, Vec3]]]:
    root = genesis_meshes_dir()
    if root is None:
        return (), {}
    objects, frames = [], {}
    for e in SHIPPED:
        path = str(root / e.file)
        factor = file_scale(e)
        ex, ey, ez = upright(e.raw_extents, e.zup)
        objects.append(
            ObjectAsset(
                id=e.id,
                synonyms=e.synonyms,
                description=e.description,
                tags=e.tags,
                shape="mesh",
                size=(abs(ex) * factor, abs(ey) * factor, abs(ez) * factor),
                mass=e.mass,
                friction=e.friction,
                color=e.color,
                file=path,
                file_scale=factor,
            )
        )
        frames[path] = (e.zup, upright(e.raw_center, e.zup))
    return tuple(objects), frames


def shipped_objects() -> list[ObjectAsset]:
    """Catalog objects for the usable Genesis meshes (empty when Genesis is not installed)."""
    return list(_objects_and_frames()[0])


def shipped_frames() -> dict[str, tuple[bool, Vec3]]:
    """Absolute file path -> (zup flag, bounding-box centre in file units in the upright frame)."""
    return _objects_and_frames()[1]
