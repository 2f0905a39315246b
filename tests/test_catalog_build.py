"""Every catalog object builds in Genesis and rests where it was put; the arm mounts build."""

from __future__ import annotations

import pytest
import torch

from dexforge.sim.catalog import default_catalog
from dexforge.sim.env import EnvConfig, HandEnv
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import HandSpec, ObjectSpec, Pose, TaskSpec

pytestmark = pytest.mark.genesis


@pytest.mark.parametrize("furniture", [False, True], ids=["everyday", "furniture"])
def test_every_catalog_object_builds_and_rests(furniture: bool):
    catalog = default_catalog()
    objects, x, y, row = [], -0.55, -0.55, 0.0
    for asset in catalog.objects.values():  # lay them out in rows across the table; furniture in its own scene
        if bool(asset.articulation) != furniture:
            continue
        w, d, h = asset.size
        if x + w > 0.55:
            x, y, row = -0.55, y + row + 0.05, 0.0
        objects.append(ObjectSpec(asset=asset.id, pose=Pose(pos=(x + w / 2, y + d / 2, h / 2 + 0.002))))
        x, row = x + w + 0.05, max(row, d)
    assert y < 0.6, "the layout ran off the table"
    spec = TaskSpec(name="catalog", hand=HandSpec(pose=Pose(pos=(0.0, 0.0, 0.7))), objects=objects)
    env = HandEnv(spec, EnvConfig(randomize=False), SceneConfig(n_envs=1))
    start = {o.key: env.metrics[f"{o.key}.pos"][0].clone() for o in objects}
    for _ in range(50):
        env.step_targets(env.targets.clone())
    moved = {}
    for o in objects:
        pos = env.metrics[f"{o.key}.pos"][0]
        assert torch.isfinite(pos).all(), o.key
        if (pos - start[o.key]).norm() > 0.03:
            moved[o.key] = (start[o.key].tolist(), pos.tolist())
    assert moved == {}, "objects that did not rest where they were put"
    assert env.nan_resets == 0


@pytest.mark.parametrize("mount", ["ur5e", "panda"])
def test_arm_mounts_build_and_hold_their_pose(mount):
    spec = TaskSpec(name=f"arm_{mount}", hand=HandSpec(mount=mount), objects=[ObjectSpec(asset="cube")])
    env = HandEnv(spec, EnvConfig(active=("wrist",)), SceneConfig(n_envs=1))
    n_arm = len(env.built.arm_joints)
    assert n_arm in (6, 7) and env.num_actions == n_arm
    assert len(env.joint_names) == n_arm + 24
    q0 = env.metrics["joint_pos"].clone()
    for _ in range(30):
        env.step(torch.zeros(1, env.num_actions))
    assert (env.metrics["joint_pos"] - q0).abs().max() < 0.05
    assert env.metrics["palm_pos"][0, 2] > 0.05  # the hand is held above the table
