"""TaskSpec -> a built Genesis scene with `n_envs` parallel copies.

`build_scene` adds the ground, the hand on its mount, every object of the spec with its catalog
dimensions, mass and friction, and (on request) the three critic cameras; it then sets the PD gains
and the initial configuration. `SceneConfig` holds what is not part of the task: envs count,
backend, contact settings, cameras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dexforge.sim import hand as H
from dexforge.sim.catalog import ObjectAsset, default_catalog
from dexforge.sim.genesis_init import Backend, genesis
from dexforge.sim.spec import ObjectSpec, TaskSpec


class ContactConfig(BaseModel):
    """Solver and contact settings. Defaults are chosen for dexterous grasping (see tests/test_grasp.py):
    the elliptic friction cone with a raised `impratio` holds an object squeezed between fingers
    without the slow tangential creep of the pyramidal cone (genesis-world issues 3051, 3257)."""

    model_config = ConfigDict(frozen=True)

    friction_cone: Literal["pyramidal", "elliptic"] = Field(default="elliptic", description="Friction model.")
    impratio: float = Field(default=10.0, gt=0, description="Tangential/normal impedance ratio (stiffer friction).")
    iterations: int = Field(default=30, ge=1, description="Constraint solver iterations per step.")
    noslip_iterations: int = Field(default=0, ge=0, description="No-slip post-solve iterations (pyramidal only).")
    substeps: int = Field(default=2, ge=1, le=10, description="Physics substeps per control step.")
    timeconst: float = Field(default=0.01, gt=0, description="Contact time constant, s (>= 2 x substep dt).")
    self_collision: bool = Field(default=False, description="Collisions between the hand's own links.")


class SceneConfig(BaseModel):
    """How to build a spec: how many envs, on what, with which contacts and cameras."""

    model_config = ConfigDict(frozen=True)

    n_envs: int = Field(default=1, ge=1, le=65536, description="Parallel copies of the scene.")
    backend: Backend = Field(default="cpu", description="Genesis backend: cpu, or gpu/cuda on a GPU machine.")
    contact: ContactConfig = Field(default_factory=ContactConfig)
    cameras: bool = Field(default=False, description="Add the front/side/top cameras (for renders and video).")
    camera_res: tuple[int, int] = Field(default=(320, 240), description="Camera resolution (w, h).")


CAMERA_VIEWS = {  # name -> (position, look-at, up); the workspace is centred on the origin, table at z=0
    "front": ((0.75, 0.0, 0.45), (0.0, 0.0, 0.1), (0.0, 0.0, 1.0)),
    "side": ((0.0, -0.8, 0.45), (0.0, 0.0, 0.1), (0.0, 0.0, 1.0)),
    "top": ((0.001, 0.0, 1.05), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
    "oblique": ((0.6, -0.6, 0.55), (0.0, 0.0, 0.1), (0.0, 0.0, 1.0)),
}


@dataclass
class BuiltScene:
    """A built scene and the handles the environment needs."""

    spec: TaskSpec
    config: SceneConfig
    scene: Any
    hand: Any
    arm: Any | None
    objects: dict[str, Any]
    assets: dict[str, ObjectAsset]
    ground: Any
    cameras: dict[str, Any] = field(default_factory=dict)
    robot_joints: tuple[str, ...] = ()
    arm_joints: tuple[str, ...] = ()

    @property
    def n_envs(self) -> int:
        return self.config.n_envs

    def spec_objects(self) -> list[tuple[str, ObjectSpec]]:
        return [(o.key, o) for o in self.spec.objects]


def object_extents(asset: ObjectAsset, scale: float) -> np.ndarray:
    return np.asarray(asset.size, dtype=np.float64) * scale


def _primitive_volume(asset: ObjectAsset, scale: float) -> float:
    x, y, z = object_extents(asset, scale)
    if asset.shape == "box":
        return x * y * z
    if asset.shape == "sphere":
        return math.pi * x**3 / 6.0
    if asset.shape == "cylinder":
        return math.pi * (x / 2.0) ** 2 * z
    return x * y * z


def _add_object(gs, scene, obj: ObjectSpec, asset: ObjectAsset):
    scale = obj.scale
    fixed = asset.fixed if obj.fixed is None else obj.fixed
    ext = object_extents(asset, scale)
    volume = _primitive_volume(asset, scale)
    mass = asset.mass * scale**3 if asset.mass is not None else asset.density * volume
    rho = mass / max(volume, 1e-9)
    material = gs.materials.Rigid(rho=rho, friction=asset.friction)
    surface = gs.surfaces.Default(color=asset.color)
    pos, euler = tuple(obj.pose.pos), tuple(obj.pose.euler)
    if asset.shape == "box":
        morph = gs.morphs.Box(size=tuple(ext), pos=pos, euler=euler, fixed=fixed)
    elif asset.shape == "sphere":
        morph = gs.morphs.Sphere(radius=float(ext[0] / 2), pos=pos, euler=euler, fixed=fixed)
    elif asset.shape == "cylinder":
        morph = gs.morphs.Cylinder(radius=float(ext[0] / 2), height=float(ext[2]), pos=pos, euler=euler, fixed=fixed)
    elif asset.shape == "urdf":
        if asset.generator is not None:
            from dexforge.sim.assets.procedural import urdf_for

            file, file_scale = str(urdf_for(asset, scale)), 1.0
        else:
            file, file_scale = str(asset.file), asset.file_scale * scale
        keep = tuple(j.handle_link for j in asset.articulation if j.handle_link)
        morph = gs.morphs.URDF(file=file, scale=file_scale, pos=pos, euler=euler, fixed=fixed, links_to_keep=keep)
        material = gs.materials.Rigid(friction=asset.friction)
    else:  # mesh: offset so that `pos` is the bounding-box centre
        from scipy.spatial.transform import Rotation

        from dexforge.sim.assets.user import asset_frame

        s = asset.file_scale * scale
        frame = asset_frame(asset)  # centre in metres at scale 1, in the upright (z-up) frame
        centre = np.asarray(frame.center) * scale
        shifted = np.asarray(pos) - Rotation.from_euler("xyz", euler, degrees=True).apply(centre)
        container = "container" in asset.tags
        morph = gs.morphs.Mesh(
            file=str(asset.file),
            scale=s,
            pos=tuple(shifted),
            euler=euler,
            fixed=fixed,
            convexify=True,
            file_meshes_are_zup=frame.zup,
            decompose_object_error_threshold=0.15 if container else float("inf"),
        )
    return scene.add_entity(morph, material=material, surface=surface), mass


def build_scene(spec: TaskSpec, config: SceneConfig | None = None) -> BuiltScene:
    """Build `spec` in Genesis with `config.n_envs` copies; gains and initial configuration set."""
    config = config or SceneConfig()
    gs = genesis(config.backend, seed=spec.seed)
    c = config.contact
    rigid = gs.options.RigidOptions(
        enable_self_collision=c.self_collision,
        friction_cone=getattr(gs.friction_cone, c.friction_cone),
        impratio=c.impratio,
        iterations=c.iterations,
        noslip_iterations=c.noslip_iterations,
        constraint_timeconst=max(c.timeconst, 2 * spec.dt / c.substeps),
    )
    vis = gs.options.VisOptions(rendered_envs_idx=[0], show_world_frame=False, shadow=True, plane_reflection=False)
    scene = gs.Scene(
        sim_options=gs.options.SimOptions(dt=spec.dt, substeps=c.substeps),
        rigid_options=rigid,
        vis_options=vis,
        show_viewer=False,
        show_FPS=False,
    )
    ground = scene.add_entity(gs.morphs.Plane(), material=gs.materials.Rigid(friction=1.0))
    hand_material = gs.materials.Rigid(gravity_compensation=1.0, friction=1.0)
    keep = (*H.FINGERTIP_LINKS, "palm")
    arm = None
    if spec.hand.mount == "floating":
        hand = scene.add_entity(
            gs.morphs.URDF(file=str(H.floating_hand_urdf()), fixed=True, links_to_keep=keep), material=hand_material
        )
    else:
        arm = _add_arm(gs, scene, spec)
        hand = scene.add_entity(
            gs.morphs.URDF(file=str(H.bare_hand_urdf()), links_to_keep=keep), material=hand_material
        )
        hand.attach(arm, ARM_MOUNTS[spec.hand.mount]["link"], quat=ARM_MOUNTS[spec.hand.mount]["quat"])
    catalog = default_catalog()
    objects, assets = {}, {}
    for obj in spec.objects:
        asset = catalog.object(obj.asset)
        objects[obj.key], _ = _add_object(gs, scene, obj, asset)
        assets[obj.key] = asset
    cameras = {}
    if config.cameras:
        for name, (pos, lookat, up) in CAMERA_VIEWS.items():
            cameras[name] = scene.add_camera(res=config.camera_res, pos=pos, lookat=lookat, up=up, fov=45, GUI=False)
    scene.build(n_envs=config.n_envs)
    built = BuiltScene(spec, config, scene, hand, arm, objects, assets, ground, cameras)
    _configure_robot(built)
    return built


ARM_MOUNTS = {
    "ur5e": {"file": "xml/universal_robots_ur5e/ur5e.xml", "link": "wrist_3_link", "quat": (0.7071, 0.0, 0.7071, 0.0)},
    "panda": {"file": "xml/franka_emika_panda/panda_nohand.xml", "link": "link7", "quat": (0.0, 0.0, 0.0, 1.0)},
}
ARM_HOME = {  # a pose with the hand above the table in front of the base
    "ur5e": (0.0, -1.2, 1.6, -1.9, -1.5708, 0.0),
    "panda": (0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785),
}


def _add_arm(gs, scene, spec: TaskSpec):
    mount = ARM_MOUNTS[spec.hand.mount]
    return scene.add_entity(
        gs.morphs.MJCF(file=mount["file"], pos=tuple(spec.hand.arm_base)),
        material=gs.materials.Rigid(gravity_compensation=1.0),
    )


def _configure_robot(built: BuiltScene) -> None:
    """PD gains and force limits for every robot joint, then the initial configuration."""
    hand, arm = built.hand, built.arm
    arm_joints = tuple(j.name for j in arm.joints if j.dofs_idx_local) if arm is not None else ()
    hand_joints = tuple(j.name for j in hand.joints if j.dofs_idx_local)
    built.arm_joints = arm_joints
    built.robot_joints = arm_joints + hand_joints
    for entity, names in ((arm, arm_joints), (hand, hand_joints)):
        if entity is None:
            continue
        gains = np.array([H.gains_for(n, arm_joints) for n in names])
        entity.set_dofs_kp(gains[:, 0])
        entity.set_dofs_kv(gains[:, 1])
        entity.set_dofs_force_range(-gains[:, 2], gains[:, 2])
    q = initial_robot_qpos(built)
    n_arm = len(arm_joints)
    if arm is not None:
        arm.set_dofs_position(np.tile(q[:n_arm], (built.n_envs, 1)))
    hand.set_dofs_position(np.tile(q[n_arm:], (built.n_envs, 1)))
    for name, obj in built.spec_objects():
        if obj.joints:
            entity = built.objects[name]
            idx = [entity.get_joint(j).dofs_idx_local[0] for j in obj.joints]
            entity.set_dofs_position(np.tile(list(obj.joints.values()), (built.n_envs, 1)), dofs_idx_local=idx)


def initial_robot_qpos(built: BuiltScene) -> np.ndarray:
    """Robot joint positions at reset, in `built.robot_joints` order: wrist from the spec, hand open."""
    q = np.zeros(len(built.robot_joints))
    if built.arm is None:
        q[:6] = H.wrist_qpos_from_pose(built.spec.hand.pose.pos, built.spec.hand.pose.euler)
    else:
        q[: len(built.arm_joints)] = ARM_HOME[built.spec.hand.mount][: len(built.arm_joints)]
    return q
