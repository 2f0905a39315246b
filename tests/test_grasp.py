"""The contact settings are chosen for grasping: a squeezed cube stays in the hand when lifted.

The same scripted power grasp runs under the default settings (elliptic friction cone, impratio 10)
and under Genesis's defaults (pyramidal cone): with the chosen settings the cube is lifted and held,
with the pyramidal cone it slides out of the closing fingers (the weak dexterous contact of
genesis-world issues 3051 and 3257). Three envs start with the cube moved and turned a little.
"""

from __future__ import annotations

import pytest
import torch

from dexforge.sim.demo import grasp_and_lift
from dexforge.sim.env import EnvConfig, HandEnv
from dexforge.sim.scene import ContactConfig, SceneConfig
from dexforge.sim.spec import HandSpec, ObjectSpec, Pose, TaskSpec

pytestmark = pytest.mark.genesis
SPEC = TaskSpec(
    name="grasp",
    hand=HandSpec(pose=Pose(pos=(-0.04, 0.0, 0.2))),
    objects=[ObjectSpec(asset="cube", pose=Pose(pos=(0.0, 0.0, 0.025)), randomize={"xy": 0.01, "yaw": 10.0})],
)


def lift_and_hold(contact: ContactConfig) -> tuple[torch.Tensor, torch.Tensor]:
    env = HandEnv(SPEC, EnvConfig(auto_reset=False), SceneConfig(n_envs=3, contact=contact))
    script = grasp_and_lift(env, "cube", lift=0.15)
    for _ in range(330):
        env.step_targets(next(script))
    return env.metrics["cube.lift"], env.metrics["cube.grasp_time"]


def test_chosen_contact_settings_hold_a_lifted_cube():
    lift, grasp_time = lift_and_hold(ContactConfig())
    assert bool((lift > 0.12).all()), f"the cube slipped: lifts {lift.tolist()}"
    assert bool((grasp_time > 1.0).all())


def test_pyramidal_cone_lets_the_cube_slip():
    lift, _ = lift_and_hold(ContactConfig(friction_cone="pyramidal"))
    assert bool((lift < 0.05).all()), f"expected the cube to slip out: lifts {lift.tolist()}"
