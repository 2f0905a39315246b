"""Plans: validation, chaining of start states across subtasks, whole-task success and the dataset."""

from __future__ import annotations

from importlib import resources

import h5py
import pytest
import torch

from dexforge.policies.dataset import inspect
from dexforge.policies.segments import evaluate_chain
from dexforge.policies.subtask import Plan, PlanError, SubtaskSpec
from dexforge.policies.train import train_plan
from dexforge.sim.demo import example_spec
from dexforge.sim.env import EnvConfig, HandEnv
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import Held, TaskSpec, load_yaml

PLAN = """
task: lift_cube
subtasks:
  - name: approach
    controller: motion_plan
    active: [wrist]
    goal: {relative_to: cube, offset: [-0.04, 0.0, 0.029], align_yaw: true}
    success: [{kind: reached, object: cube, offset: [-0.04, 0.0, 0.029], tolerance: 0.02}]
    start: initial
  - name: grasp
    controller: scripted
    script: power_grasp
    success: [{kind: touching, object: cube, min_fingers: 3}]
  - name: lift
    controller: motion_plan
    goal: {lift: 0.15}
    success: [{kind: lifted, object: cube, height: 0.08}]
"""


def test_subtask_kinds_need_their_fields():
    with pytest.raises(ValueError, match="needs `reward` or `reward_template`"):
        SubtaskSpec(name="g", controller="rl")
    with pytest.raises(ValueError, match="needs a `goal`"):
        SubtaskSpec(name="a", controller="motion_plan")
    with pytest.raises(ValueError, match="needs a `script`"):
        SubtaskSpec(name="s", controller="scripted")


def test_plan_round_trips_and_is_checked_against_its_task(tmp_path):
    plan = Plan.model_validate(load_yaml(PLAN))
    assert Plan.load(plan.save(tmp_path / "p.yaml")) == plan
    plan.check_against(example_spec("lift_cube"))
    with pytest.raises(PlanError, match="no object named 'bowl'"):
        Plan.model_validate(load_yaml(PLAN.replace("relative_to: cube", "relative_to: bowl"))).check_against(
            example_spec("lift_cube")
        )
    with pytest.raises(PlanError, match="no such plan file"):
        Plan.load(tmp_path / "missing.yaml")


@pytest.mark.genesis
def test_chained_plan_hands_states_over_and_saves_successes(tmp_path):
    spec = example_spec("lift_cube")
    events: list[dict] = []
    outcome = train_plan(
        spec, Plan.model_validate(load_yaml(PLAN)), tmp_path, n_envs=2, eval_episodes=2, progress=events.append
    )
    rates = {s.name: s.success_rate for s in outcome.subtasks}
    assert rates == {"approach": 1.0, "grasp": 1.0, "lift": 1.0}, rates
    # the lift could only succeed from the grasp's end states: the cube starts in the hand
    assert [e["subtask"] for e in events if e.get("event") == "start"] == ["approach", "grasp", "lift"]
    assert outcome.task_success_rate == 1.0 and outcome.episodes == 2
    assert outcome.kept_after == {"approach": 1.0, "grasp": 1.0, "lift": 1.0}
    info = inspect(outcome.dataset)
    assert info["episodes"] == 2 and info["successes"] == 2 and info["task"] == "lift_cube"
    with h5py.File(outcome.dataset) as f:
        demo = f["data/demo_0"]
        t = int(demo.attrs["num_samples"])
        assert demo["actions"].shape == (t, 30) and demo["obs/cube.pos"].shape == (t, 3)
        assert demo["dones"][-1] == 1 and demo["dones"][:-1].sum() == 0
        lift = demo["obs/cube.pos"][-1, 2] - demo["obs/cube.pos"][0, 2]
        assert lift > 0.08  # the recorded trajectory really lifts the cube
        assert "lift_cube" in f["data"].attrs["task_spec"] and "approach" in f["data"].attrs["plan"]
    assert (tmp_path / "outcome.json").exists()


@pytest.mark.genesis
def test_the_chain_says_after_which_subtask_it_lost_its_episodes():
    """A lift that cannot reach its success height: every chain survives the approach and the grasp and is
    lost in the lift, and `kept_after` says so (the whole-task rate alone would not)."""
    spec = example_spec("lift_cube")
    plan = Plan.model_validate(load_yaml(PLAN.replace("height: 0.08", "height: 0.4")))
    env = HandEnv(spec, EnvConfig(auto_reset=False), SceneConfig(n_envs=2))
    with torch.no_grad():
        chain = evaluate_chain(env, spec, plan, {}, episodes=4, dataset=None)
    assert chain.episodes == 4 and chain.success_rate == 0.0 and chain.dataset is None
    assert chain.kept_after == {"approach": 1.0, "grasp": 1.0, "lift": 0.0}


@pytest.mark.genesis
def test_a_failed_subtask_stops_the_chain(tmp_path):
    text = PLAN.replace("offset: [-0.04, 0.0, 0.029], tolerance: 0.02", "offset: [0.3, 0.0, 0.029], tolerance: 0.02")
    outcome = train_plan(
        example_spec("lift_cube"), Plan.model_validate(load_yaml(text)), tmp_path, n_envs=2, eval_episodes=2
    )
    assert [s.name for s in outcome.subtasks] == ["approach"] and outcome.subtasks[0].success_rate == 0.0
    assert outcome.task_success_rate == 0.0 and outcome.dataset is None


def test_the_lift_test_raises_the_frozen_wrist_at_the_end_of_an_episode():
    from types import SimpleNamespace

    from dexforge.policies.segments import lift_test_hook

    sub = SubtaskSpec(
        name="g", controller="rl", reward_template="grasp", lift_test=0.08, lift_test_steps=4, episode_length=10
    )
    env = SimpleNamespace(
        joint_names=("wrist_x", "wrist_y", "wrist_z"),
        active_joints=["wrist_x"],
        episode_length=10,
        episode_step=torch.tensor([0, 5, 6, 9]),
        targets=torch.zeros(4, 3),
    )
    hook = lift_test_hook(sub)
    hook(env)
    assert env.targets[:, 2].tolist() == pytest.approx([0.0, 0.0, 0.02, 0.02])
    assert env.targets[:, :2].abs().sum() == 0
    env.active_joints = ["wrist_z"]
    with pytest.raises(ValueError, match="needs the wrist frozen"):
        hook(env)
    assert lift_test_hook(sub.model_copy(update={"lift_test": None})) is None
    # with a hold, the rise ends that many steps before the episode does
    env.active_joints, env.targets = ["wrist_x"], torch.zeros(4, 3)
    env.episode_step = torch.tensor([3, 4, 7, 8])
    lift_test_hook(sub.model_copy(update={"lift_test_hold": 2}))(env)
    assert env.targets[:, 2].tolist() == pytest.approx([0.0, 0.02, 0.02, 0.0])


def test_the_lift_test_shift_carries_the_palm_sideways_during_the_hold():
    from types import SimpleNamespace

    from dexforge.policies.segments import lift_test_hook

    sub = SubtaskSpec(
        name="g",
        controller="rl",
        reward_template="grasp",
        lift_test=0.08,
        lift_test_steps=2,
        lift_test_hold=3,
        lift_test_shift=(0.04, -0.02),
        episode_length=10,
    )
    # the rise is steps 5 and 6; the shift steps 7 and 8; step 9 holds still
    env = SimpleNamespace(
        joint_names=("wrist_x", "wrist_y", "wrist_z"),
        active_joints=["finger"],
        episode_length=10,
        episode_step=torch.tensor([4, 5, 7, 8, 9]),
        targets=torch.zeros(5, 3),
    )
    lift_test_hook(sub)(env)
    assert env.targets[:, 0].tolist() == pytest.approx([0.0, 0.0, 0.02, 0.02, 0.0])
    assert env.targets[:, 1].tolist() == pytest.approx([0.0, 0.0, -0.01, -0.01, 0.0])
    assert env.targets[:, 2].tolist() == pytest.approx([0.0, 0.04, 0.0, 0.0, 0.0])
    env.active_joints = ["wrist_y"]
    with pytest.raises(ValueError, match="needs wrist_y frozen"):
        lift_test_hook(sub)(env)
    with pytest.raises(ValueError, match="lift_test_hold"):
        sub.model_copy(update={"lift_test_hold": 1}).model_validate(sub.model_dump() | {"lift_test_hold": 1})


CARRY_PLAN = """
task: place_cube
subtasks:
  - name: approach
    controller: motion_plan
    active: [wrist]
    goal: {relative_to: cube, offset: [-0.04, 0.0, 0.029], align_yaw: true}
    success: [{kind: reached, object: cube, offset: [-0.04, 0.0, 0.029], tolerance: 0.02}]
    start: initial
  - name: grasp
    controller: scripted
    script: power_grasp
    success: [{kind: touching, object: cube, min_fingers: 3}]
  - name: transport
    controller: motion_plan
    active: [wrist]
    goal: {relative_to: bowl, carried: cube, offset: [0.0, 0.0, 0.071], clearance: 0.06, speed: 0.3, grip: 0.4}
    success: [{kind: held, object: cube, duration: 0.5}]
    episode_length: 120
"""


@pytest.mark.genesis
def test_the_carry_keeps_the_object_in_a_chained_run(tmp_path):
    """Grasp, then a planned carry up, across to the bowl and down: the cube stays in the hand the whole way,
    and ends with its own centre over the bowl's (the palm goes where the hold puts it there)."""
    place = TaskSpec.from_yaml((resources.files("dexforge.policies") / "examples" / "place_cube.yaml").read_text())
    spec = place.model_copy(update={"success": [Held(object="cube", duration=0.5)]})  # judged in the hand
    plan = Plan.model_validate(load_yaml(CARRY_PLAN))
    outcome = train_plan(spec, plan, tmp_path, n_envs=2, eval_episodes=2)
    rates = {s.name: s.success_rate for s in outcome.subtasks}
    assert rates == {"approach": 1.0, "grasp": 1.0, "transport": 1.0}, rates
    assert outcome.task_success_rate == 1.0
    with h5py.File(outcome.dataset) as f:
        cube = f["data/demo_0/obs/cube.pos"][:]
    bowl = next(o for o in spec.objects if o.asset == "bowl").pose.pos
    start, end = cube[0], cube[-1]
    assert ((end[:2] - bowl[:2]) ** 2).sum() ** 0.5 < 0.015  # carried to the bowl: its centre over the bowl's
    assert ((start[:2] - end[:2]) ** 2).sum() ** 0.5 > 0.1  # a real carry, not a lift in place
    assert end[2] - start[2] > 0.04  # still up in the hand at the end
