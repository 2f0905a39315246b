"""Motion-planned, scripted and policy controllers on real, tiny Genesis scenes.

The floating-hand scene has a cube (randomised +-2 cm, so every env plans to its own goal) and a
can standing between the hand's start and the cube, taller than the hand's start height minus the
clearance: the planned path must rise over it. The arm scene checks the IK path and its reach error.
"""

from __future__ import annotations

import pytest
import torch

from dexforge.policies.controllers import (
    CLOSE_HAND,
    MotionPlanController,
    PlanningError,
    PolicyController,
    ScriptedController,
    run_episode,
)
from dexforge.policies.motion import plan_palm_path
from dexforge.policies.subtask import MotionGoal
from dexforge.sim import hand as H
from dexforge.sim.env import EnvConfig, HandEnv, StepResult
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import HandSpec, ObjectSpec, Pose, Reached, TaskSpec

PREGRASP = (-0.04, 0.0, 0.029)  # palm 4 cm behind the cube's centre, 4 mm above its top (as sim/demo.py)
CLEARANCE = 0.05
SPEC = TaskSpec(
    name="controllers",
    hand=HandSpec(pose=Pose(pos=(-0.35, 0.0, 0.15))),
    objects=[
        # xy only: POWER_GRASP loses about 1 cube in 8 turned by 6-10 degrees (a grasp matter, not a planning one)
        ObjectSpec(asset="cube", pose=Pose(pos=(0.1, 0.0, 0.025)), randomize={"xy": 0.02}),
        ObjectSpec(asset="can", pose=Pose(pos=(-0.15, 0.0, 0.0575))),
    ],
)


@pytest.fixture(scope="module")
def env():
    return HandEnv(SPEC, EnvConfig(auto_reset=False), SceneConfig(n_envs=3))


def finger_cols(env: HandEnv) -> list[int]:
    return [env.joint_names.index(j) for f in H.FINGERS for j in H.FINGER_JOINTS[f]]


def test_path_legs_without_a_simulator():
    start = torch.tensor([[0.0, 0.0, 0.1], [0.0, 0.0, 0.1]])
    zero = torch.zeros(2, 3)
    up = start + torch.tensor([0.0, 0.0, 0.1])
    lift = plan_palm_path(start, up, torch.full((2,), 0.5), zero, zero, step_length=0.01, angle_step=0.1)
    assert lift.phases == [("rise", 10)]  # straight up: no detour to the cruise height
    goal = torch.tensor([[0.2, 0.0, 0.05], [0.1, 0.1, 0.05]])
    cruise, turn = torch.full((2,), 0.3), torch.full((2, 3), 1.0)
    path = plan_palm_path(start, goal, cruise, zero, turn, step_length=0.01, angle_step=0.1, dwell_steps=2)
    assert [name for name, _ in path.phases] == ["rise", "dwell", "transit", "dwell", "descend"]
    assert path.rot_steps == 20 + 2 + 20 + 2  # the turn is done before the descent
    assert torch.allclose(path.at(path.steps - 1)[0], goal) and torch.allclose(path.at(10**6)[1], torch.ones(2, 3))
    heights = torch.stack([path.at(t)[0][:, 2] for t in range(22, 42)])  # transit
    assert torch.allclose(heights, torch.full_like(heights, 0.3))


@pytest.mark.genesis
def test_approach_clears_the_can_and_reaches_the_pregrasp_pose(env):
    env.reset()
    controller = MotionPlanController(MotionGoal(relative_to="cube", offset=PREGRASP, clearance=CLEARANCE))
    can_touched = torch.zeros(env.num_envs, dtype=torch.bool)

    def watch(_t: int, result: StepResult) -> None:
        can_touched.logical_or_(result.metrics["can.n_contacts"] > 0)

    reached = Reached(object="cube", offset=PREGRASP, tolerance=0.015)
    result = run_episode(env, controller, success=[reached], record=True, watch=watch)
    m = env.metrics
    assert bool(result.success_final.all()), (m["palm_pos"] - m["cube.pos"]).tolist()
    goals = controller.path.goal
    assert float((goals[0] - goals[1]).norm()) > 1e-3  # each env went to its own cube
    assert float((m["cube.pos"] - m["cube.start_pos"]).norm(dim=-1).max()) < 0.005
    # transit above the can: its top plus the clearance, less 1 cm for the PD's lag
    can_top = float(m["can.pos"][0, 2]) + env.built.assets["can"].size[2] / 2
    phases = controller.phases
    names = [name for name, _ in phases]
    begin = sum(steps for _, steps in phases[: names.index("transit")])
    transit = result.trajectory["palm_pos"][begin : begin + dict(phases)["transit"], :, 2]
    assert float(transit.min()) > can_top + CLEARANCE - 0.01
    assert not bool(can_touched.any())
    assert float((m["can.pos"] - m["can.start_pos"]).norm(dim=-1).max()) < 0.002


@pytest.mark.genesis
def test_lift_raises_the_palm_and_leaves_the_fingers_frozen(env):
    env.reset()
    run_episode(env, ScriptedController("close_hand"))
    fingers = finger_cols(env)
    before = env.targets.clone()
    palm = env.metrics["palm_pos"].clone()
    result = run_episode(env, MotionPlanController(MotionGoal(lift=0.1)), record=True)
    rise = env.metrics["palm_pos"] - palm
    assert torch.allclose(rise[:, 2], torch.full((env.num_envs,), 0.1), atol=0.01), rise.tolist()
    assert float(rise[:, :2].abs().max()) < 0.005
    frozen = result.trajectory["targets"][:, :, fingers]
    assert bool((frozen == before[:, fingers]).all())  # every step, every env
    assert float(before[0, env.joint_names.index("index_finger_joint3")]) == pytest.approx(1.4)


@pytest.mark.genesis
def test_grip_squeezes_the_flexion_joints_within_their_range(env):
    from dexforge.sim import hand as H

    env.reset()
    before = env.targets.clone()
    result = run_episode(env, MotionPlanController(MotionGoal(lift=0.05, grip=0.2)), record=True)
    flex = [env.joint_names.index(j) for j in H.FLEXION_JOINTS]
    other = [i for i in finger_cols(env) if i not in flex]
    held = result.trajectory["targets"][:, :, flex]
    expected = torch.minimum(before[:, flex] + 0.2, env.upper[flex])
    assert bool((held == expected).all()) and bool((expected > before[:, flex]).any())
    assert bool((result.trajectory["targets"][:, :, other] == before[:, other]).all())  # only flexion moves


@pytest.mark.genesis
def test_open_hand_after_close_hand(env):
    env.reset()
    fingers = finger_cols(env)
    run_episode(env, ScriptedController("close_hand"))
    q = env.metrics["joint_pos"]
    for joint, value in CLOSE_HAND.items():
        if value > 0.5:
            assert float(q[:, env.joint_names.index(joint)].min()) > value - 0.2, joint
    wrist = env.targets[:, :6].clone()
    run_episode(env, ScriptedController("open_hand"))
    assert float(env.metrics["joint_pos"][:, fingers].abs().max()) < 0.06
    assert bool((env.targets[:, :6] == wrist).all())  # the wrist held its targets


@pytest.mark.genesis
def test_approach_grasp_lift_chain(env):
    """sim/demo.py's grasp through the controllers: plan to the pre-grasp pose, close fast, lift."""
    env.reset()
    run_episode(env, MotionPlanController(MotionGoal(relative_to="cube", offset=PREGRASP, clearance=CLEARANCE)))
    run_episode(env, ScriptedController("power_grasp"))
    result = run_episode(env, MotionPlanController(MotionGoal(lift=0.12)))
    lift = env.metrics["cube.lift"]
    assert bool((lift > 0.08).all()), lift.tolist()
    assert not bool(result.failed.any())
    assert bool(env.metrics["cube.grasped"].all())


@pytest.mark.genesis
def test_policy_controller_and_episode_bookkeeping(env):
    env.reset()
    seen: list[tuple[int, ...]] = []

    def act(obs: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(obs.shape))
        return torch.zeros(obs.shape[0], env.num_actions)

    held = env.targets.clone()
    result = run_episode(env, PolicyController(act, steps=4), record=True)
    assert result.steps == 4 and seen == [(env.num_envs, env.num_obs)] * 4
    assert bool((env.targets == held).all())  # zero delta actions keep every target
    assert result.trajectory["obs"].shape == (4, env.num_envs, env.num_obs)
    assert result.trajectory["targets"].shape == (4, env.num_envs, len(env.joint_names))
    assert not bool(result.success_any.any()) and bool((result.steps_to_success == -1).all())
    assert env.auto_reset is False and result.end_state.n == env.num_envs


@pytest.mark.genesis
def test_arm_mount_plans_with_ik_and_reports_out_of_reach():
    spec = TaskSpec(
        name="arm",
        hand=HandSpec(mount="ur5e"),
        objects=[ObjectSpec(asset="cube", pose=Pose(pos=(0.0, 0.0, 0.025)), randomize={"xy": 0.02})],
    )
    env = HandEnv(spec, EnvConfig(auto_reset=False), SceneConfig(n_envs=2))
    hover = (-0.04, 0.0, 0.08)
    goal = MotionGoal(relative_to="cube", offset=hover, euler=(0.0, 0.0, 0.0))  # palm down, from palm up
    result = run_episode(
        env, MotionPlanController(goal), success=[Reached(object="cube", offset=hover, tolerance=0.02)]
    )
    assert bool(result.success_final.all()), env.metrics["palm_pos"].tolist()
    assert float(env.metrics["palm_normal"][:, 2].max()) < -0.99
    env.reset()
    with pytest.raises(PlanningError, match="cannot bring the palm"):
        run_episode(env, MotionPlanController(MotionGoal(offset=(0.9, 0.0, 0.1))))


def test_a_carried_goal_moves_the_palm_by_the_holds_offset():
    """`carried`: the offset says where the held object's centre goes; the palm goes where the hold puts it."""
    from types import SimpleNamespace

    bowl = torch.tensor([[0.5, 0.2, 0.03]] * 3)
    # two holds (4 and 2 cm behind, 0 and 2 cm aside) and a grasp that failed: the cube lies 40 cm away
    cube = torch.tensor([[0.1, -0.1, 0.12], [0.1, -0.1, 0.12], [-0.3, -0.2, 0.025]])
    palm = torch.tensor([[0.06, -0.1, 0.15], [0.08, -0.12, 0.15], [0.1, -0.1, 0.15]])
    box = torch.stack([cube - 0.025, cube + 0.025], dim=1)  # a 5 cm cube: half-diagonal 4.3 cm
    env = SimpleNamespace(
        objects={"bowl": None, "cube": SimpleNamespace(get_AABB=lambda: box)},
        object_names=["bowl", "cube"],
        metrics={"bowl.pos": bowl, "cube.pos": cube, "palm_pos": palm},
    )
    ctrl = MotionPlanController(MotionGoal(relative_to="bowl", carried="cube", offset=(0.0, 0.0, 0.07)))
    ctrl._yaw = None
    goal = ctrl._goal_point(env, palm.clone())
    placed = goal[:2] + (cube - palm)[:2]  # where the cube's centre ends when the palm reaches the goal
    assert torch.allclose(placed, bowl[:2] + torch.tensor([0.0, 0.0, 0.07]))
    assert torch.allclose(goal[:2, 0], torch.tensor([0.46, 0.48]))
    # the empty hand goes to the point itself, not 40 cm past the bowl (off the table, stretching every env's legs)
    # (the contacts are not asked: after a reset from saved states they are those of the last physics step)
    assert torch.allclose(goal[2], bowl[2] + torch.tensor([0.0, 0.0, 0.07]))
    env.objects = {"bowl": None}
    with pytest.raises(PlanningError, match="no object 'cube'"):
        ctrl._goal_point(env, palm.clone())
    with pytest.raises(ValueError, match="no `lift` or `pull`"):
        MotionGoal(relative_to="bowl", carried="cube", lift=0.1)
