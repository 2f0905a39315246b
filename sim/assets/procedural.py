"""URDFs built only from primitives (boxes, cylinders) for the catalog's `generator` names.

Primitives give Genesis exact, robust contacts and need no convex decomposition, so containers keep an
open cavity and cabinets a real drawer or door. Conventions shared by every generated file:

- The root link's origin is the centre of the object's bounding box (closed joints), x forward, z up:
  placing the root at z = height / 2 puts the object on the ground. Extents equal `asset.size * scale`.
- Cabinets face -x (the open front). `drawer_joint` is prismatic with axis -x, so a positive position pulls
  the drawer out. `door_joint` is revolute about a vertical axis on the front edge at +y (the left edge as
  seen by someone standing in front of the cabinet); its axis is -z, so a positive angle swings the door
  out towards -x. The `handle` link hangs on the drawer or door by a fixed joint (`handle_joint`).
- Mass is `asset.mass * scale**3` (or density times volume) split over the parts by volume; each link
  carries the inertia of its own parts about its centre of mass. Every length, the handle's 3 cm stand-off
  and the drawer's travel included, scales with `scale`; angles do not.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from dexforge.home import DexforgeError, cache_dir
from dexforge.sim.catalog import ObjectAsset

Vec3 = tuple[float, float, float]
RING_SEGMENTS = 16


class UnknownGenerator(DexforgeError):
    """An asset names a procedural generator that does not exist."""


@dataclass(frozen=True)
class Part:
    """One primitive of a link, placed in the link frame (URDF `origin`)."""

    kind: Literal["box", "cylinder"]
    dims: tuple[float, ...]  # box: (sx, sy, sz); cylinder: (radius, length along its z)
    xyz: Vec3
    rpy: Vec3 = (0.0, 0.0, 0.0)
    tint: float = 0.0  # 0 = the asset's colour, 1 = white

    def volume(self) -> float:
        if self.kind == "box":
            return float(np.prod(self.dims))
        r, h = self.dims
        return math.pi * r * r * h

    def inertia(self, mass: float) -> np.ndarray:
        """Inertia about the part's centre, in the link frame."""
        if self.kind == "box":
            sx, sy, sz = self.dims
            local = np.diag([sy**2 + sz**2, sx**2 + sz**2, sx**2 + sy**2]) * mass / 12.0
        else:
            r, h = self.dims
            side = mass * (3 * r * r + h * h) / 12.0
            local = np.diag([side, side, mass * r * r / 2.0])
        rot = rpy_matrix(self.rpy)
        return rot @ local @ rot.T


@dataclass(frozen=True)
class Link:
    name: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Joint:
    name: str
    kind: Literal["fixed", "prismatic", "revolute"]
    parent: str
    child: str
    xyz: Vec3
    axis: Vec3 = (1.0, 0.0, 0.0)
    lower: float = 0.0
    upper: float = 0.0
    damping: float = 0.0


def vec3(values: Iterable[float]) -> Vec3:
    """Three floats as a typed tuple (from a list, an array or a generator)."""
    x, y, z = (float(v) for v in values)
    return (x, y, z)


def rpy_matrix(rpy: Iterable[float]) -> np.ndarray:
    """URDF roll-pitch-yaw to a rotation matrix (R = Rz(yaw) Ry(pitch) Rx(roll))."""
    r, p, y = vec3(rpy)
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def slab(lo: Vec3, hi: Vec3, tint: float = 0.0) -> Part:
    """An axis-aligned box between two corners."""
    dims = tuple(h - low for low, h in zip(lo, hi, strict=True))
    centre = vec3((low + h) / 2 for low, h in zip(lo, hi, strict=True))
    return Part("box", dims, centre, tint=tint)


def disc(radius: float, z0: float, z1: float, x: float = 0.0, tint: float = 0.0) -> Part:
    """A vertical cylinder between heights z0 and z1."""
    return Part("cylinder", (radius, z1 - z0), (x, 0.0, (z0 + z1) / 2), tint=tint)


def ring(r_in: float, r_out: float, z0: float, z1: float, cx: float = 0.0) -> list[Part]:
    """A round wall of boxes: inner faces at r_in, outer faces at r_out, meeting at their outer corners.

    Faces point along multiples of 360/16 degrees (including the axes), so the x and y extents are exactly
    2 * r_out and the free cavity is a 16-gon whose inscribed circle has radius r_in.
    """
    width = 2 * r_out * math.tan(math.pi / RING_SEGMENTS)
    mid = (r_in + r_out) / 2
    parts = []
    for k in range(RING_SEGMENTS):
        a = 2 * math.pi * k / RING_SEGMENTS
        xyz = (cx + mid * math.cos(a), mid * math.sin(a), (z0 + z1) / 2)
        parts.append(Part("box", (r_out - r_in, width, z1 - z0), xyz, (0.0, 0.0, a)))
    return parts


def _inner(asset: ObjectAsset, scale: float, wall: float) -> tuple[float, float]:
    """Cavity radius and depth in metres; a default wall thickness when the asset gives no cavity."""
    sx, sy, sz = (v * scale for v in asset.size)
    if asset.inner is None:
        return min(sx, sy) / 2 - wall * scale, sz - wall * scale
    ix, iy, depth = (v * scale for v in asset.inner)
    r_in = min(ix, iy) / 2
    if r_in >= min(sx, sy) / 2 or depth >= sz:
        raise ValueError(f"{asset.id}: the cavity {asset.inner} does not fit inside the size {asset.size}")
    return r_in, depth


def bottle(asset: ObjectAsset, s: float) -> tuple[list[Link], list[Joint]]:
    """Body, shoulder and neck cylinders stacked in one link; the neck (cap) is tinted."""
    r = min(asset.size[0], asset.size[1]) / 2 * s
    h = asset.size[2] * s
    z = [-h / 2, -h / 2 + 0.68 * h, -h / 2 + 0.8 * h, h / 2]
    parts = (disc(r, z[0], z[1]), disc(0.75 * r, z[1], z[2], tint=0.3), disc(0.42 * r, z[2], z[3], tint=0.6))
    return [Link("body", parts)], []


def marker(asset: ObjectAsset, s: float) -> tuple[list[Link], list[Joint]]:
    """A pale barrel and a cap in the asset's colour, lying along x (cap towards +x)."""
    length = asset.size[0] * s
    r = min(asset.size[1], asset.size[2]) / 2 * s
    split = -length / 2 + 0.78 * length
    along_x = (0.0, math.pi / 2, 0.0)
    body = Part("cylinder", (0.9 * r, split + length / 2), ((split - length / 2) / 2, 0, 0), along_x, 0.8)
    cap = Part("cylinder", (r, length / 2 - split), ((split + length / 2) / 2, 0, 0), along_x)
    return [Link("body", (body, cap))], []


def bowl(asset: ObjectAsset, s: float) -> tuple[list[Link], list[Joint]]:
    """A base disc inside a 16-box round wall; the cavity is `asset.inner` and open at the top."""
    r_out = min(asset.size[0], asset.size[1]) / 2 * s
    h = asset.size[2] * s
    r_in, depth = _inner(asset, s, 0.01)
    base = disc((r_in + r_out) / 2, -h / 2, h / 2 - depth)
    return [Link("body", (base, *ring(r_in, r_out, -h / 2, h / 2)))], []


def mug(asset: ObjectAsset, s: float) -> tuple[list[Link], list[Joint]]:
    """A bowl-like cup (diameter = the y extent) with a three-box handle on +x filling the x extent."""
    sx, sy, h = (v * s for v in asset.size)
    r_out = sy / 2
    r_in, depth = _inner(asset, s, 0.005)
    cx = -sx / 2 + r_out
    parts = [disc((r_in + r_out) / 2, -h / 2, h / 2 - depth, x=cx), *ring(r_in, r_out, -h / 2, h / 2, cx)]
    reach = sx - 2 * r_out
    if reach > 0:
        t, w = min(0.01 * s, 0.3 * reach), 0.012 * s
        z0, z1 = -h / 2 + 0.2 * h, h / 2 - 0.12 * h
        x0 = cx + r_out - (r_out - r_in) / 2
        parts.append(slab((sx / 2 - t, -w / 2, z0), (sx / 2, w / 2, z1)))
        parts.append(slab((x0, -w / 2, z1 - t), (sx / 2 - t, w / 2, z1)))
        parts.append(slab((x0, -w / 2, z0), (sx / 2 - t, w / 2, z0 + t)))
    return [Link("body", tuple(parts))], []


@dataclass(frozen=True)
class _Cabinet:
    """Shared cabinet measurements: panels, the front plane and the handle's reach."""

    x: float
    y: float
    z: float
    panel: float
    gap: float  # free space between the handle bar and the front
    bar: float  # handle bar thickness

    @property
    def reach(self) -> float:
        return self.gap + self.bar

    def carcass(self, x_front: float) -> list[Part]:
        """Back, sides, top and bottom panels behind x_front; the front (-x) stays open."""
        x, y, z, p = self.x / 2, self.y / 2, self.z / 2, self.panel
        return [
            slab((x - p, -y, -z), (x, y, z)),
            slab((x_front, -y, -z), (x - p, -y + p, z)),
            slab((x_front, y - p, -z), (x - p, y, z)),
            slab((x_front, -y + p, z - p), (x - p, y - p, z)),
            slab((x_front, -y + p, -z), (x - p, y - p, -z + p)),
        ]

    def handle(self, length: float, vertical: bool) -> Link:
        """A bar whose outer face is at x = -bar/2 of the link frame, held off the front by two posts."""
        post = 0.8 * self.bar
        bar_dims = (self.bar, self.bar, length) if vertical else (self.bar, length, self.bar)
        parts = [Part("box", bar_dims, (0.0, 0.0, 0.0), tint=0.5)]
        for sign in (-1, 1):
            off = sign * (length / 2 - post / 2)
            xyz = (self.bar / 2 + self.gap / 2, 0.0, off) if vertical else (self.bar / 2 + self.gap / 2, off, 0.0)
            parts.append(Part("box", (self.gap, post, post), xyz, tint=0.5))
        return Link("handle", tuple(parts))


def _cabinet(asset: ObjectAsset, s: float) -> _Cabinet:
    x, y, z = (v * s for v in asset.size)
    return _Cabinet(x, y, z, panel=0.015 * s, gap=0.03 * s, bar=0.012 * s)


def _limits(asset: ObjectAsset, name: str, default: float) -> tuple[float, float]:
    for joint in asset.articulation:
        if joint.name == name:
            return joint.lower, joint.upper
    return 0.0, default


def cabinet_drawer(asset: ObjectAsset, s: float) -> tuple[list[Link], list[Joint]]:
    """A carcass open at -x with one drawer tray that slides out along -x; a horizontal handle on its front."""
    c = _cabinet(asset, s)
    p, clear = c.panel, 0.004 * s
    x_front = -c.x / 2 + c.reach
    yd, z0, z1, xb = c.y / 2 - p - clear, -c.z / 2 + p + clear, c.z / 2 - p - clear, c.x / 2 - p - clear
    top = z0 + 0.6 * (z1 - z0)
    tray = (
        slab((x_front, -yd, z0), (x_front + p, yd, z1)),
        slab((x_front + p, -yd, z0), (xb, yd, z0 + p)),
        slab((x_front + p, -yd, z0 + p), (xb, -yd + p, top)),
        slab((x_front + p, yd - p, z0 + p), (xb, yd, top)),
        slab((xb - p, -yd + p, z0 + p), (xb, yd - p, top)),
    )
    lower, upper = _limits(asset, "drawer_joint", 0.2)
    links = [Link("body", tuple(c.carcass(x_front))), Link("drawer", tray), c.handle(0.35 * c.y, False)]
    joints = [
        Joint("drawer_joint", "prismatic", "body", "drawer", (0.0, 0.0, 0.0), (-1.0, 0.0, 0.0), lower * s,
              upper * s, damping=2.0),
        Joint("handle_joint", "fixed", "drawer", "handle", (-c.x / 2 + c.bar / 2, 0.0, (z0 + z1) / 2)),
    ]  # fmt: skip
    return links, joints


def cabinet_door(asset: ObjectAsset, s: float) -> tuple[list[Link], list[Joint]]:
    """A carcass open at -x with a door in front of it, hinged on its +y edge; a vertical handle near -y."""
    c = _cabinet(asset, s)
    p = c.panel
    x_front = -c.x / 2 + c.reach + p
    door = slab((-p, -c.y, -c.z / 2), (0.0, 0.0, c.z / 2))
    lower, upper = _limits(asset, "door_joint", math.pi / 2)
    links = [Link("body", tuple(c.carcass(x_front))), Link("door", (door,)), c.handle(0.35 * c.z, True)]
    joints = [
        Joint("door_joint", "revolute", "body", "door", (x_front, c.y / 2, 0.0), (0.0, 0.0, -1.0), lower,
              upper, damping=0.5),
        Joint("handle_joint", "fixed", "door", "handle", (-p - c.reach + c.bar / 2, -c.y + 0.04 * s, 0.0)),
    ]  # fmt: skip
    return links, joints


def microwave(asset: ObjectAsset, s: float) -> tuple[list[Link], list[Joint]]:
    """A box open at -x; a door hinged on its +y edge covers 70 % of the front, a fixed control panel the rest
    (-y); a vertical handle near the door's free edge."""
    c = _cabinet(asset, s)
    p = c.panel
    x_front = -c.x / 2 + c.reach + p
    door_w = 0.7 * c.y
    panel = slab((x_front - p, -c.y / 2, -c.z / 2), (x_front, c.y / 2 - door_w, c.z / 2), tint=0.6)
    door = slab((-p, -door_w, -c.z / 2), (0.0, 0.0, c.z / 2), tint=0.2)
    lower, upper = _limits(asset, "door_joint", math.pi / 2)
    links = [Link("body", (*c.carcass(x_front), panel)), Link("door", (door,)), c.handle(0.6 * c.z, True)]
    joints = [
        Joint("door_joint", "revolute", "body", "door", (x_front, c.y / 2, 0.0), (0.0, 0.0, -1.0), lower,
              upper, damping=0.5),
        Joint("handle_joint", "fixed", "door", "handle", (-p - c.reach + c.bar / 2, -door_w + 0.04 * s, 0.0)),
    ]  # fmt: skip
    return links, joints


def chest(asset: ObjectAsset, s: float) -> tuple[list[Link], list[Joint]]:
    """An open-topped box under a lid hinged along its back top edge (+x, axis +y, so a positive angle lifts
    the front); a horizontal handle stands off the lid's front edge, in front of the box's front wall."""
    c = _cabinet(asset, s)
    p = c.panel
    x_front, xb, y, z0, z1 = -c.x / 2 + c.reach, c.x / 2, c.y / 2, -c.z / 2, c.z / 2 - p
    box = (
        slab((x_front, -y, z0), (xb, y, z0 + p)),
        slab((x_front, -y, z0 + p), (x_front + p, y, z1)),
        slab((xb - p, -y, z0 + p), (xb, y, z1)),
        slab((x_front + p, -y, z0 + p), (xb - p, -y + p, z1)),
        slab((x_front + p, y - p, z0 + p), (xb - p, y, z1)),
    )
    lid = slab((x_front - xb, -y, -p), (0.0, y, 0.0), tint=0.2)
    lower, upper = _limits(asset, "lid_joint", math.pi / 2)
    links = [Link("body", box), Link("lid", (lid,)), c.handle(0.5 * c.y, False)]
    joints = [
        Joint("lid_joint", "revolute", "body", "lid", (xb, 0.0, c.z / 2), (0.0, 1.0, 0.0), lower, upper,
              damping=0.5),
        Joint("handle_joint", "fixed", "lid", "handle", (x_front - xb - c.reach + c.bar / 2, 0.0, -p / 2)),
    ]  # fmt: skip
    return links, joints


GENERATORS: dict[str, Callable[[ObjectAsset, float], tuple[list[Link], list[Joint]]]] = {
    "bottle": bottle,
    "mug": mug,
    "bowl": bowl,
    "marker": marker,
    "cabinet_drawer": cabinet_drawer,
    "cabinet_door": cabinet_door,
    "microwave": microwave,
    "chest": chest,
}


def generators() -> list[str]:
    """The generator names `urdf_for` understands."""
    return sorted(GENERATORS)


def _fmt(*values: float) -> str:
    return " ".join(f"{v + 0.0:.6g}" for v in values)  # + 0.0 turns -0 into 0


def _color(asset: ObjectAsset, tint: float) -> str:
    rgb = [c + (1.0 - c) * tint for c in asset.color]
    return _fmt(*rgb, 1.0)


def _inertial(parent: ET.Element, parts: tuple[Part, ...], density: float) -> None:
    masses = [density * part.volume() for part in parts]
    total = sum(masses)
    com = sum(m * np.array(part.xyz) for m, part in zip(masses, parts, strict=True)) / total
    inertia = np.zeros((3, 3))
    for m, part in zip(masses, parts, strict=True):
        d = np.array(part.xyz) - com
        inertia += part.inertia(m) + m * (d @ d * np.eye(3) - np.outer(d, d))
    node = ET.SubElement(parent, "inertial")
    ET.SubElement(node, "origin", xyz=_fmt(*com), rpy="0 0 0")
    ET.SubElement(node, "mass", value=_fmt(total))
    names = {"ixx": (0, 0), "ixy": (0, 1), "ixz": (0, 2), "iyy": (1, 1), "iyz": (1, 2), "izz": (2, 2)}
    ET.SubElement(node, "inertia", {k: _fmt(inertia[i, j]) for k, (i, j) in names.items()})


def _geometry(parent: ET.Element, part: Part) -> None:
    ET.SubElement(parent, "origin", xyz=_fmt(*part.xyz), rpy=_fmt(*part.rpy))
    geometry = ET.SubElement(parent, "geometry")
    if part.kind == "box":
        ET.SubElement(geometry, "box", size=_fmt(*part.dims))
    else:
        ET.SubElement(geometry, "cylinder", radius=_fmt(part.dims[0]), length=_fmt(part.dims[1]))


def build_urdf(asset: ObjectAsset, scale: float = 1.0) -> str:
    """The URDF text for an asset with a `generator`, at a uniform scale."""
    if asset.generator not in GENERATORS:
        raise UnknownGenerator(
            f"object '{asset.id}' names generator {asset.generator!r}; known: {', '.join(generators())}"
        )
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    links, joints = GENERATORS[asset.generator](asset, scale)
    volume = sum(part.volume() for link in links for part in link.parts)
    density = asset.mass * scale**3 / volume if asset.mass is not None else asset.density  # mass grows as scale^3
    robot = ET.Element("robot", name=asset.id)
    for link in links:
        node = ET.SubElement(robot, "link", name=link.name)
        _inertial(node, link.parts, density)
        for i, part in enumerate(link.parts):
            visual = ET.SubElement(node, "visual")
            _geometry(visual, part)
            material = ET.SubElement(visual, "material", name=f"{link.name}_{i}")
            ET.SubElement(material, "color", rgba=_color(asset, part.tint))
            _geometry(ET.SubElement(node, "collision"), part)
    for joint in joints:
        node = ET.SubElement(robot, "joint", name=joint.name, type=joint.kind)
        ET.SubElement(node, "parent", link=joint.parent)
        ET.SubElement(node, "child", link=joint.child)
        ET.SubElement(node, "origin", xyz=_fmt(*joint.xyz), rpy="0 0 0")
        if joint.kind != "fixed":
            ET.SubElement(node, "axis", xyz=_fmt(*joint.axis))
            ET.SubElement(node, "limit", lower=_fmt(joint.lower), upper=_fmt(joint.upper), effort="1000",
                          velocity="2")  # fmt: skip
            ET.SubElement(node, "dynamics", damping=_fmt(joint.damping), friction="0")
    ET.indent(robot)
    return '<?xml version="1.0"?>\n' + ET.tostring(robot, encoding="unicode") + "\n"


def urdf_for(asset: ObjectAsset, scale: float = 1.0) -> Path:
    """Write (once) the asset's URDF under the `urdf` cache and return its path.

    The file name carries a hash of the content, so different scales or parameters never share a file;
    it is written to a temporary file first and renamed, so a reader never sees half a file.
    """
    text = build_urdf(asset, scale)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = cache_dir("urdf")
    path = folder / f"{asset.id}-{digest}.urdf"
    if path.exists():
        return path
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{asset.id}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
