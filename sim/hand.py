"""The Shadow hand as Genesis sees it: its URDF with the actuated 6-DoF wrist, joint groups and gains.

The floating mount prepends six joints to the Shadow hand's URDF (`wrist_x/y/z` prismatic, then
`wrist_roll/pitch/yaw` revolute about the moving axes) whose end point is the centre of the palm's
surface. At zero the palm faces down (-z) and the fingers point to +x, thumb towards +y: the pose in
`HandSpec.pose` is then simply the wrist joints' values. The forearm keeps its visual mesh but loses
its collision mesh on this mount: it would trail on the table behind a low palm, and no task uses it.

Joint groups name what a plan freezes or trains: `wrist_translation`, `wrist_rotation`, `wrist` (both;
the arm's joints on an arm mount), `hand_wrist` (the Shadow's own two wrist joints), `thumb`, `index`,
`middle`, `ring`, `little`, `fingers` (the five), `hand` (hand_wrist + fingers), `all`.
"""

from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dexforge.home import cache_dir

WRIST_JOINTS = ("wrist_x", "wrist_y", "wrist_z", "wrist_roll", "wrist_pitch", "wrist_yaw")
WRIST_LIMITS = {  # metres for translation (the reachable workspace of the palm), radians for rotation
    "wrist_x": (-0.6, 0.6),
    "wrist_y": (-0.6, 0.6),
    "wrist_z": (0.0, 0.8),
    "wrist_roll": (-3.1416, 3.1416),
    "wrist_pitch": (-3.1416, 3.1416),
    "wrist_yaw": (-3.1416, 3.1416),
}
HAND_WRIST_JOINTS = ("forearm_joint", "wrist_joint")
FINGER_JOINTS = {
    "thumb": tuple(f"thumb_joint{i}" for i in range(1, 6)),
    "index": tuple(f"index_finger_joint{i}" for i in range(1, 5)),
    "middle": tuple(f"middle_finger_joint{i}" for i in range(1, 5)),
    "ring": tuple(f"ring_finger_joint{i}" for i in range(1, 5)),
    "little": tuple(f"little_finger_joint{i}" for i in range(1, 6)),
}
FINGERS = tuple(FINGER_JOINTS)
# Links whose contacts count for each finger; index 5 is the palm.
FINGER_LINKS = {
    "thumb": ("thumb_proximal", "thumb_middle", "thumb_distal"),
    "index": ("index_finger_proximal", "index_finger_middle", "index_finger_distal"),
    "middle": ("middle_finger_proximal", "middle_finger_middle", "middle_finger_distal"),
    "ring": ("ring_finger_proximal", "ring_finger_middle", "ring_finger_distal"),
    "little": ("little_finger_proximal", "little_finger_middle", "little_finger_distal"),
    "palm": ("palm", "little_finger_metacarpal"),
}
CONTACT_PARTS = (*FINGERS, "palm")
# Flexion joints (curling towards the palm): what "closing the hand" moves.
FLEXION_JOINTS = (
    *(f"{f}_finger_joint{k}" for f in ("index", "middle", "ring") for k in (2, 3, 4)),
    *(f"little_finger_joint{k}" for k in (3, 4, 5)),
    "thumb_joint2",
    "thumb_joint5",
)
FINGERTIP_LINKS = tuple(FINGER_LINKS[f][-1] for f in FINGERS)
# Tip of each distal link in its own frame (from the collision meshes: distal pads end at z=0.030 / 0.035).
FINGERTIP_OFFSETS = np.array([[0.0, -0.003, 0.029]] + [[0.0, -0.003, 0.024]] * 4)
# Centre of the palm's surface in the palm link's frame (palm mesh: y from -0.022, z from -0.011 to 0.107).
PALM_OFFSET = np.array([0.0, -0.022, 0.045])
# Palm link origin in the hand's root (forearm) frame at zero wrist angles: forearm_joint + wrist_joint.
PALM_LINK_IN_ROOT = np.array([0.0, -0.010, 0.247])
# Hand root frame -> world at zero wrist angles: fingers (+z) to +x, palm normal (-y) to -z, thumb (+x) to +y.
MOUNT_ROTATION = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def joint_groups(arm_joints: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Group name -> joint names. On an arm mount the arm's joints take the place of the wrist's."""
    wrist = arm_joints or WRIST_JOINTS
    fingers = tuple(j for g in FINGERS for j in FINGER_JOINTS[g])
    groups: dict[str, tuple[str, ...]] = {
        "wrist": wrist,
        "hand_wrist": HAND_WRIST_JOINTS,
        **FINGER_JOINTS,
        "fingers": fingers,
        "hand": HAND_WRIST_JOINTS + fingers,
        "all": wrist + HAND_WRIST_JOINTS + fingers,
        "flexion": FLEXION_JOINTS,
        "grasping": (*FLEXION_JOINTS, "thumb_joint1", "thumb_joint4"),
    }
    if not arm_joints:
        groups["wrist_translation"] = WRIST_JOINTS[:3]
        groups["wrist_rotation"] = WRIST_JOINTS[3:]
    return groups


def resolve_joints(names: list[str] | tuple[str, ...], all_joints: tuple[str, ...], groups: dict) -> list[str]:
    """Expand group names and joint names into joint names, in the order of `all_joints`."""
    chosen: set[str] = set()
    for name in names:
        if name in groups:
            chosen.update(groups[name])
        elif name in all_joints:
            chosen.add(name)
        else:
            import difflib

            close = difflib.get_close_matches(name, [*groups, *all_joints], n=3)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise ValueError(f"unknown joint or group '{name}'; groups: {', '.join(groups)}{hint}")
    return [j for j in all_joints if j in chosen]


def palm_point_in_root() -> np.ndarray:
    return PALM_LINK_IN_ROOT + PALM_OFFSET


def shadow_urdf_source() -> Path:
    import genesis

    return Path(genesis.__file__).parent / "assets" / "urdf" / "shadow_hand" / "shadow_hand.urdf"


def _write_once(text: str, stem: str) -> Path:
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    path = cache_dir("urdf") / f"{stem}-{digest}.urdf"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _absolute_meshes(root: ET.Element, base: Path) -> None:
    for mesh in root.iter("mesh"):
        mesh.set("filename", str((base / mesh.get("filename", "")).resolve()))


def _drop_forearm_collision(root: ET.Element) -> None:
    for link in root.iter("link"):
        if link.get("name") == "forearm":
            for col in list(link.findall("collision")):
                link.remove(col)


def _fmt(v) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def _shadow_root() -> ET.Element:
    """The shipped Shadow URDF with absolute mesh paths and no forearm collision."""
    src = shadow_urdf_source()
    root = ET.parse(src).getroot()
    _absolute_meshes(root, src.parent)
    _drop_forearm_collision(root)
    return root


def floating_hand_urdf() -> Path:
    """The Shadow hand behind an actuated 6-DoF wrist whose end point is the palm's centre."""
    root = _shadow_root()
    chain: list[ET.Element] = [ET.Element("link", name="mount_base")]
    parent = "mount_base"
    axes = ("1 0 0", "0 1 0", "0 0 1") * 2
    for name, axis in zip(WRIST_JOINTS, axes, strict=True):
        kind = "prismatic" if name in WRIST_JOINTS[:3] else "revolute"
        link = ET.Element("link", name=f"{name}_link")
        inertial = ET.SubElement(link, "inertial")
        ET.SubElement(inertial, "mass", value="0.05")
        ET.SubElement(inertial, "inertia", ixx="1e-5", iyy="1e-5", izz="1e-5", ixy="0", ixz="0", iyz="0")
        joint = ET.Element("joint", name=name, type=kind)
        ET.SubElement(joint, "parent", link=parent)
        ET.SubElement(joint, "child", link=f"{name}_link")
        ET.SubElement(joint, "axis", xyz=axis)
        lo, hi = WRIST_LIMITS[name]
        effort = "400" if kind == "prismatic" else "60"
        ET.SubElement(joint, "limit", lower=str(lo), upper=str(hi), effort=effort, velocity="3")
        chain += [link, joint]
        parent = f"{name}_link"
    mount = ET.Element("joint", name="mount_to_forearm", type="fixed")
    ET.SubElement(mount, "parent", link=parent)
    ET.SubElement(mount, "child", link="forearm")
    rpy = Rotation.from_matrix(MOUNT_ROTATION).as_euler("xyz")
    ET.SubElement(mount, "origin", xyz=_fmt(-MOUNT_ROTATION @ palm_point_in_root()), rpy=_fmt(rpy))
    chain.append(mount)
    for i, element in enumerate(chain):
        root.insert(i, element)
    return _write_once(ET.tostring(root, encoding="unicode"), "shadow_floating")


def bare_hand_urdf() -> Path:
    """The Shadow hand alone (for arm mounts), meshes made absolute, forearm collision dropped."""
    return _write_once(ET.tostring(_shadow_root(), encoding="unicode"), "shadow_bare")


def wrist_qpos_from_pose(pos, euler_deg) -> np.ndarray:
    """Wrist joint values for a palm pose (the chain is x, y, z then roll, pitch, yaw about moving axes)."""
    rot = Rotation.from_euler("xyz", np.radians(euler_deg))  # extrinsic x-y-z, as in TaskSpec
    roll, pitch, yaw = rot.as_euler("XYZ")  # the same rotation as intrinsic X-Y-Z (the chain's order)
    return np.array([*pos, roll, pitch, yaw], dtype=np.float64)


# PD gains per joint kind: (kp, kv, force limit). The wrist carries the whole hand (gravity compensated).
GAINS = {
    "wrist_translation": (4000.0, 200.0, 400.0),
    "wrist_rotation": (400.0, 40.0, 60.0),
    "hand_wrist": (40.0, 2.0, 10.0),
    "finger": (12.0, 0.6, 4.0),
}


def gains_for(joint: str, arm_joints: tuple[str, ...] = ()) -> tuple[float, float, float]:
    if joint in WRIST_JOINTS[:3]:
        return GAINS["wrist_translation"]
    if joint in WRIST_JOINTS[3:]:
        return GAINS["wrist_rotation"]
    if joint in arm_joints:
        return (2000.0, 200.0, 150.0)
    if joint in HAND_WRIST_JOINTS:
        return GAINS["hand_wrist"]
    return GAINS["finger"]


# A power grasp found by a grid search over thumb poses (tests/test_grasp.py keeps it honest): the palm
# 4 cm behind the object's centre, fingers curled over its far side, the thumb swung under the palm.
POWER_GRASP = {
    **{f"{f}_finger_joint{k}": 1.4 for f in ("index", "middle", "ring", "little") for k in (2, 3, 4)},
    "little_finger_joint5": 1.4,
    "thumb_joint1": -0.4,
    "thumb_joint2": 1.0,
    "thumb_joint3": 0.0,
    "thumb_joint4": -0.3,
    "thumb_joint5": 0.8,
}
POWER_GRASP_PALM_OFFSET = (-0.04, 0.0)  # palm centre relative to the object's centre, x and y (m)
