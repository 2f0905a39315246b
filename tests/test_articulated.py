"""Articulated objects opened by planned pulls: the joint path (pure torch) and every catalog object that
has a handle, on a one-env Genesis scene: approach the handle, hook it with a closed hand, carry the palm
along or around the joint's axis; the joint moves and the `opened` predicate reads it."""

from __future__ import annotations

import math

import pytest
import torch

from dexforge.agents.offline.decompose import handle_goal
from dexforge.policies.motion import joint_path, quat_from_rpy
from dexforge.sim.catalog import BUILTIN_OBJECTS, default_catalog
from dexforge.sim.rotations import quat_apply
from dexforge.sim.spec import HandSpec, ObjectSpec, Opened, Pose, TaskSpec

ARTICULATED = [a for a in BUILTIN_OBJECTS if a.articulation and a.articulation[0].grip is not None]


def test_prismatic_path_slides_along_the_axis() -> None:
    start = torch.tensor([[0.0, 0.1, 0.2], [0.1, 0.0, 0.2]])
    rpy = torch.tensor([[0.0, -1.0, 0.0], [0.2, 0.3, 0.4]])
    axis = torch.tensor([[-2.0, 0.0, 0.0]] * 2)  # not unit: normalised
    path = joint_path(start, rpy, torch.zeros(2, 3), axis, torch.tensor([0.1, 0.05]),
                      revolute=False, step_length=0.002, angle_step=0.01)  # fmt: skip
    assert path.steps == 50  # the env that moves farthest sets the count
    torch.testing.assert_close(path.goal, start + torch.tensor([[-0.1, 0.0, 0.0], [-0.05, 0.0, 0.0]]))
    torch.testing.assert_close(path.at(10_000)[1], rpy)  # the palm keeps its orientation
    steps = (path.pos[1:] - path.pos[:-1]).norm(dim=-1)
    assert float(steps.max()) <= 0.002 + 1e-6


def test_revolute_path_turns_the_palm_with_the_hinge() -> None:
    anchor = torch.tensor([[0.0, 0.2, 0.0]])
    axis = torch.tensor([[0.0, 0.0, -1.0]])  # a door hinge: a positive angle swings it towards -x
    start = torch.tensor([[-0.05, -0.05, 0.1]])
    rpy = torch.tensor([[math.pi / 2, 0.0, -math.pi / 2]])
    angle = 1.2
    path = joint_path(start, rpy, anchor, axis, torch.tensor([angle]),
                      revolute=True, step_length=0.003, angle_step=0.015)  # fmt: skip
    radius = (path.pos - anchor)[..., :2].norm(dim=-1)
    torch.testing.assert_close(radius, torch.full_like(radius, float((start - anchor)[0, :2].norm())))
    assert float(path.goal[0, 0]) < float(start[0, 0]) - 0.1  # out towards -x
    # the palm's frame turned by the same angle about the axis: each of its axes did
    basis = torch.eye(3)
    before = quat_apply(quat_from_rpy(rpy).expand(3, -1), basis)
    after = quat_apply(quat_from_rpy(path.at(path.steps)[1]).expand(3, -1), basis)
    half = torch.tensor([math.cos(angle / 2), 0.0, 0.0, -math.sin(angle / 2)])  # angle about -z
    torch.testing.assert_close(after, quat_apply(half.expand(3, -1), before), atol=1e-4, rtol=0)
    jumps = (path.rpy[1:] - path.rpy[:-1]).abs().max()
    assert float(jumps) < 0.1  # the wrist angles change smoothly (no switch to the other solution)


def _spec(asset_id: str) -> TaskSpec:
    asset = default_catalog().object(asset_id)
    return TaskSpec(
        name=f"open_{asset_id}",
        hand=HandSpec(pose=Pose(pos=(-0.3, 0.0, 0.25))),
        objects=[ObjectSpec(asset=asset_id, pose=Pose(pos=(0.15, 0.0, asset.size[2] / 2)))],
        success=[Opened(object=asset_id, fraction=0.5)],
        episode_length=300,
    )


@pytest.mark.genesis
@pytest.mark.parametrize("asset", ARTICULATED, ids=lambda a: a.id)
def test_scripted_pull_opens_every_articulated_object(asset) -> None:
    from dexforge.policies.controllers import MotionPlanController, ScriptedController, run_episode
    from dexforge.policies.subtask import MotionGoal
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.scene import SceneConfig

    spec = _spec(asset.id)
    offset, euler, _, _ = handle_goal(spec, asset.id, default_catalog())
    env = HandEnv(spec, EnvConfig(randomize=False, auto_reset=False), SceneConfig(n_envs=1))
    env.reset()
    assert not bool(env.metrics["success"][0]) and float(env.metrics[f"{asset.id}.open_fraction"][0]) < 0.05
    run_episode(env, MotionPlanController(MotionGoal(relative_to=asset.id, offset=offset, euler=euler)))
    run_episode(env, ScriptedController("close_hand"))
    pull = MotionPlanController(MotionGoal(relative_to=asset.id, pull=0.8, speed=0.15))
    result = run_episode(env, pull)
    fraction = float(env.metrics[f"{asset.id}.open_fraction"][0])
    assert fraction > 0.5, f"{asset.id} opened to {fraction:.2f} of its range"
    assert bool(result.success_final[0])  # the task's `opened` predicate reads the joint


def test_a_pull_goal_needs_an_object() -> None:
    from pydantic import ValidationError

    from dexforge.policies.subtask import MotionGoal

    with pytest.raises(ValidationError, match="relative_to"):
        MotionGoal(pull=0.8)
    assert MotionGoal(relative_to="cabinet_drawer", pull=0.8).pull == 0.8
