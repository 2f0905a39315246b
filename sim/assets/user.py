"""A user's own mesh or URDF: validated, measured and turned into a catalog object.

Every failure is a `BadAsset` whose message is one line naming the file and the problem. Meshes that are
not watertight are accepted with a warning: Genesis convexifies or decomposes collision geometry anyway.

Units: mesh files carry no unit, so `guess_unit` reads the largest extent `e` of the raw vertices and picks
the unit that makes an everyday object 1 cm .. 2 m long:

- 0.005 <= e <= 2      metres        (0.5 cm .. 2 m)
- 2 < e <= 50          centimetres   (2 cm .. 50 cm)
- 50 < e <= 2000       millimetres   (5 cm .. 2 m)
- otherwise            unknown: scaled so that the largest extent is 10 cm, with a warning.

An explicit `scale` always wins. URDF files are in metres by specification.

Frames: Genesis loads OBJ/STL/PLY as z-up and GLTF/GLB as y-up (converting (x, y, z) to (x, -z, y)), so the
`size` of an imported GLB is its extents in that converted frame. `asset_frame` tells a scene builder where
the bounding-box centre of any object sits relative to the file's origin.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import trimesh
from pydantic import BaseModel, ConfigDict, Field

from dexforge.home import DexforgeError
from dexforge.sim.assets.procedural import rpy_matrix, vec3
from dexforge.sim.assets.shipped import shipped_frames, upright
from dexforge.sim.catalog import BUILTIN_OBJECTS, MESH_SUFFIXES, URDF_SUFFIXES, ObjectAsset, Tag

log = logging.getLogger(__name__)
Unit = Literal["m", "cm", "mm", "unknown"]
Vec3 = tuple[float, float, float]
GLTF_SUFFIXES = (".glb", ".gltf")
MESH_DENSITY = 600.0  # kg/m^3 for a watertight mesh's volume
BOX_DENSITY = 300.0  # kg/m^3 for the bounding box of an open mesh or a URDF without masses


class BadAsset(DexforgeError):
    """A mesh or URDF file that cannot become a simulated object."""


class MeshReport(BaseModel):
    """What a mesh file holds, in its own units, and what is wrong with it."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="Absolute path of the file.")
    n_vertices: int = Field(description="Vertex count after trimesh merged the file's meshes.")
    n_faces: int = Field(description="Triangle count.")
    watertight: bool = Field(description="Closed surface: its volume is meaningful.")
    extents: Vec3 = Field(description="Bounding-box extents in the file's units and axes.")
    center: Vec3 = Field(description="Bounding-box centre in the file's units and axes.")
    unit: Unit = Field(description="Guessed unit of the file (see guess_unit).")
    to_metres: float = Field(description="Factor that brings the file's units to metres.")
    volume_m3: float | None = Field(default=None, description="Enclosed volume in m^3 when watertight.")
    problems: list[str] = Field(default_factory=list, description="Reasons the mesh cannot be used.")
    warnings: list[str] = Field(default_factory=list, description="Usable, but worth knowing.")


class AssetFrame(BaseModel):
    """How an object's file sits in Genesis: the up-axis flag and the bounding-box centre."""

    model_config = ConfigDict(frozen=True)

    zup: bool = Field(description="Pass as gs.morphs.Mesh(file_meshes_are_zup=...); True for URDFs.")
    center: Vec3 = Field(description="Bounding-box centre in metres at scale 1 relative to the file origin, z-up.")


def guess_unit(max_extent: float) -> tuple[Unit, float]:
    """The unit of a file from its largest raw extent, and the factor to metres (module docstring)."""
    if 0.005 <= max_extent <= 2.0:
        return "m", 1.0
    if 2.0 < max_extent <= 50.0:
        return "cm", 0.01
    if 50.0 < max_extent <= 2000.0:
        return "mm", 0.001
    return "unknown", 0.1 / max_extent if max_extent > 0 else 1.0


def _check_file(path: Path, suffixes: tuple[str, ...]) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise BadAsset(f"no such file: {path}")
    if path.suffix.lower() not in suffixes:
        raise BadAsset(f"unsupported file type '{path.suffix}' for {path.name}; supported: {', '.join(suffixes)}")
    if path.stat().st_size == 0:
        raise BadAsset(f"{path}: empty file (0 bytes)")
    return path.resolve()


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        text = f"a file it references is missing: {text}"
    return text if len(text) <= 120 else text[:117] + "..."


def _binary_junk(path: Path) -> bool:
    """An OBJ with binary bytes, or an STL that is neither binary STL of the right length nor ASCII STL."""
    head = path.read_bytes()[:65536]
    if path.suffix.lower() == ".obj":
        return b"\x00" in head
    if path.suffix.lower() == ".stl":
        binary_ok = len(head) >= 84 and path.stat().st_size == 84 + 50 * int.from_bytes(head[80:84], "little")
        return not binary_ok and not (head.lstrip().startswith(b"solid") and b"\x00" not in head)
    return False


def load_mesh(path: Path) -> trimesh.Trimesh:
    """All meshes of a file merged into one, or `BadAsset` saying why trimesh could not read it."""
    if _binary_junk(path):
        raise BadAsset(f"{path}: not a valid {path.suffix[1:].upper()} file (unreadable binary data)")
    try:
        mesh = trimesh.load(path, force="mesh")
    except (ModuleNotFoundError, UnicodeDecodeError) as exc:
        raise BadAsset(f"{path}: not a valid {path.suffix[1:].upper()} file (undecodable bytes)") from exc
    except Exception as exc:  # trimesh raises many types for a malformed file; this is the file boundary
        raise BadAsset(f"{path}: cannot parse as {path.suffix[1:].upper()}: {_short(exc)}") from exc
    if not isinstance(mesh, trimesh.Trimesh):
        raise BadAsset(f"{path}: holds no triangle mesh (trimesh read a {type(mesh).__name__})")
    return mesh


def inspect_mesh(path: Path) -> MeshReport:
    """Measure a mesh file; unusable content goes into `problems`, an unreadable file raises `BadAsset`."""
    path = _check_file(path, MESH_SUFFIXES)
    mesh = load_mesh(path)
    problems: list[str] = []
    warnings: list[str] = []
    if len(mesh.faces) == 0:
        problems.append("empty mesh (0 faces)")
        extents, center = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    else:
        extents, center = vec3(mesh.extents), vec3(mesh.bounds.mean(axis=0))
    largest = max(extents)
    if largest > 0 and min(extents) <= 1e-6 * largest:
        problems.append(f"degenerate mesh: zero thickness (extents {_fmt(extents)})")
    unit, factor = guess_unit(largest)
    if unit == "unknown" and not problems:
        warnings.append(f"cannot tell the unit from a largest extent of {largest:.4g}; scaled to 10 cm")
    watertight = bool(mesh.is_watertight) if len(mesh.faces) else False
    volume = None
    if watertight:
        volume = abs(float(mesh.volume)) * factor**3
    elif not problems:
        warnings.append("not watertight: Genesis will convexify its collision shape; mass uses the bounding box")
    return MeshReport(
        path=str(path),
        n_vertices=len(mesh.vertices),
        n_faces=len(mesh.faces),
        watertight=watertight,
        extents=extents,
        center=center,
        unit=unit,
        to_metres=factor,
        volume_m3=volume,
        problems=problems,
        warnings=warnings,
    )


def _fmt(values: tuple[float, ...] | np.ndarray) -> str:
    return " x ".join(f"{v:.4g}" for v in values)


def _origin(node: ET.Element | None) -> np.ndarray:
    """The 4x4 transform of a URDF <origin> (identity when absent)."""
    transform = np.eye(4)
    if node is not None:
        transform[:3, :3] = rpy_matrix(float(v) for v in node.get("rpy", "0 0 0").split())
        transform[:3, 3] = [float(v) for v in node.get("xyz", "0 0 0").split()]
    return transform


def resolve_mesh_ref(filename: str, base: Path) -> Path | None:
    """The file a URDF mesh reference names, resolved the way Genesis does, if it exists.

    Relative paths are joined to the URDF's folder; `package://pkg/rest` is tried as `<folder>/pkg/rest` and,
    when `pkg` is one of the folder's ancestors, as `<that ancestor>/rest`.
    """
    candidates = [base / filename]
    if filename.startswith("package://"):
        package, _, rest = filename[len("package://") :].partition("/")
        candidates = [base / package / rest]
        if package in base.parts:
            candidates.append(Path(*base.parts[: base.parts.index(package) + 1], rest))
    return next((c for c in candidates if c.is_file()), None)


def _link_poses(robot: ET.Element) -> dict[str, np.ndarray]:
    """Each link's pose in the root link frame with every joint at zero."""
    parent_of = {}
    for joint in robot.findall("joint"):
        parent, child = joint.find("parent"), joint.find("child")
        if parent is not None and child is not None:
            parent_of[child.get("link")] = (parent.get("link"), _origin(joint.find("origin")))
    poses: dict[str, np.ndarray] = {}

    def pose(name: str, depth: int = 0) -> np.ndarray:
        if name not in poses:
            if name not in parent_of or depth > 256:
                poses[name] = np.eye(4)
            else:
                parent, transform = parent_of[name]
                poses[name] = pose(parent, depth + 1) @ transform
        return poses[name]

    return {link.get("name", ""): pose(link.get("name", "")) for link in robot.findall("link")}


def _geometry_points(geometry: ET.Element, base: Path) -> np.ndarray | None:
    """Points whose bounding box is that of one URDF geometry, in its own frame."""
    shape = next(iter(geometry), None)
    if shape is None:
        return None
    if shape.tag == "box":
        half = np.array([float(v) for v in shape.get("size", "0 0 0").split()]) / 2
        return np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    if shape.tag in ("cylinder", "capsule"):
        r, h = float(shape.get("radius", 0)), float(shape.get("length", 0))
        h += 2 * r if shape.tag == "capsule" else 0.0
        a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        ring = np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
        return np.concatenate([np.column_stack([ring, np.full(32, z)]) for z in (-h / 2, h / 2)])
    if shape.tag == "sphere":
        r = float(shape.get("radius", 0))
        return np.array([[-r, -r, -r], [r, r, r]])
    if shape.tag == "mesh":
        path = resolve_mesh_ref(shape.get("filename", ""), base)
        if path is None:
            return None
        scale = np.array([float(v) for v in shape.get("scale", "1 1 1").split()])
        return load_mesh(path).bounds * scale
    return None


def urdf_bounds(robot: ET.Element, base: Path) -> np.ndarray | None:
    """(2, 3) lower and upper corners of a URDF's collision geometry (visuals where a link has none)."""
    points = []
    poses = _link_poses(robot)
    for link in robot.findall("link"):
        transform = poses[link.get("name", "")]
        for element in link.findall("collision") or link.findall("visual"):
            geometry = element.find("geometry")
            local = _geometry_points(geometry, base) if geometry is not None else None
            if local is not None:
                full = transform @ _origin(element.find("origin"))
                points.append(local @ full[:3, :3].T + full[:3, 3])
    if not points:
        return None
    stacked = np.concatenate(points)
    return np.stack([stacked.min(axis=0), stacked.max(axis=0)])


def parse_urdf(path: Path) -> ET.Element:
    """The <robot> element of a URDF whose links exist and whose mesh files are all present."""
    try:
        robot = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise BadAsset(f"{path}: malformed URDF XML: {_short(exc)}") from exc
    if robot.tag != "robot":
        raise BadAsset(f"{path}: not a URDF (the root element is <{robot.tag}>, expected <robot>)")
    if not robot.findall("link"):
        raise BadAsset(f"{path}: URDF has no <link> elements")
    for mesh in robot.iter("mesh"):
        filename = mesh.get("filename", "")
        if resolve_mesh_ref(filename, path.parent) is None:
            raise BadAsset(f"{path}: referenced mesh file not found: {filename}")
    return robot


def slug(text: str) -> str:
    """A catalog id from a file stem: lower case, underscores, never a builtin id."""
    out = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "object"
    out = f"obj_{out}" if out[0].isdigit() else out
    return f"{out}_user" if out in {o.id for o in BUILTIN_OBJECTS} else out


def import_asset(
    path: Path,
    *,
    asset_id: str | None = None,
    scale: float | None = None,
    mass: float | None = None,
    tags: tuple[Tag, ...] = ("graspable", "user"),
) -> ObjectAsset:
    """Validate a mesh or URDF file and describe it as a catalog object (size in metres, mass in kg)."""
    path = _check_file(path, MESH_SUFFIXES + URDF_SUFFIXES)
    if (scale is not None and not scale > 0) or (mass is not None and not mass > 0):
        raise BadAsset(f"scale and mass must be positive, got scale={scale} mass={mass}")
    name = path.stem.replace("_", " ").replace("-", " ")
    if path.suffix.lower() in URDF_SUFFIXES:
        robot = parse_urdf(path)
        bounds = urdf_bounds(robot, path.parent)
        factor = scale or 1.0
        if bounds is None:
            log.warning("%s: no measurable geometry; assuming a 10 cm object", path)
            size = np.full(3, 0.1)
        else:
            size = (bounds[1] - bounds[0]) * factor
            if scale is None and not 0.005 <= size.max() <= 2.0:
                log.warning("%s: %.3g m across; if that is wrong, import it with a scale", path.name, size.max())
        masses = [float(m.get("value", 0)) for m in robot.iter("mass")]
        total = sum(m for m in masses if m > 0) * factor**3
        shape = "urdf"
    else:
        report = inspect_mesh(path)
        if report.problems:
            raise BadAsset(f"{path}: {'; '.join(report.problems)}")
        for warning in report.warnings:
            log.warning("%s: %s", path.name, warning)
        factor = scale or report.to_metres
        size = np.abs(upright(report.extents, path.suffix.lower() not in GLTF_SUFFIXES)) * factor
        total = (report.volume_m3 or 0.0) * (factor / report.to_metres) ** 3 * MESH_DENSITY
        shape = "mesh"
    if not total > 0:
        total = float(np.prod(size)) * BOX_DENSITY
    return ObjectAsset(
        id=asset_id or slug(path.stem),
        synonyms=(name,) if name != (asset_id or slug(path.stem)) else (),
        description=f"User {shape} '{path.name}', {_fmt(size * 100)} cm.",
        tags=tags,
        shape=shape,
        size=vec3(size),
        mass=mass or max(total, 1e-3),
        file=str(path),
        file_scale=factor,
    )


@cache
def _measured_frame(file: str, file_scale: float) -> AssetFrame:
    path = Path(file)
    if path.suffix.lower() in URDF_SUFFIXES:
        bounds = urdf_bounds(parse_urdf(path), path.parent)
        center = np.zeros(3) if bounds is None else bounds.mean(axis=0)
        return AssetFrame(zup=True, center=vec3(center * file_scale))
    zup = path.suffix.lower() not in GLTF_SUFFIXES
    center = upright(vec3(load_mesh(path).bounds.mean(axis=0)), zup)
    return AssetFrame(zup=zup, center=vec3(v * file_scale for v in center))


def asset_frame(asset: ObjectAsset) -> AssetFrame:
    """Up-axis flag and bounding-box centre for loading an object's file (primitives: z-up, centred)."""
    if asset.file is None:
        return AssetFrame(zup=True, center=(0.0, 0.0, 0.0))
    known = shipped_frames().get(asset.file)
    if known is not None:
        return AssetFrame(zup=known[0], center=vec3(v * asset.file_scale for v in known[1]))
    return _measured_frame(asset.file, asset.file_scale)
