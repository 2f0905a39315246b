"""HandEnv on real, tiny Genesis scenes: metrics contract, frozen joints, state save/restore, resets."""

from __future__ import annotations

import pytest
import torch

from dexforge.sim.env import EnvConfig, EnvState, HandEnv
from dexforge.sim.metrics import ARTICULATED_ONLY, GLOBAL_METRICS, OBJECT_METRICS
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import HandSpec, Held, Lifted, ObjectSpec, Pose, TaskSpec

pytestmark = pytest.mark.genesis
N = 4


def cube_spec(**kw) -> TaskSpec:
    return TaskSpec(
        name="t",
        hand=HandSpec(pose=Pose(pos=(-0.04, 0.0, 0.2))),
        objects=[ObjectSpec(asset="cube", pose=Pose(pos=(0.0, 0.0, 0.025)), randomize={"xy": 0.02, "yaw": 20})],
        success=[Lifted(object="cube", height=0.1), Held(object="cube", duration=0.2)],
        **kw,
    )


@pytest.fixture(scope="module")
def finger_env():
    return HandEnv(cube_spec(episode_length=30), EnvConfig(active=("fingers",)), SceneConfig(n_envs=N))


def _shape(doc: str, env: HandEnv, n_preds: int, n_joints: int) -> tuple[int, ...]:
    sizes = {"N": env.num_envs, "D": len(env.joint_names), "A": env.num_actions, "P": n_preds, "J": n_joints}
    dims = doc.strip("()").replace(" ", "").split(",")
    return tuple(sizes[d] if d in sizes else int(d) for d in dims if d)


def test_metrics_match_their_documentation(finger_env):
    env = finger_env
    env.step(torch.zeros(N, env.num_actions))
    m = env.metrics
    expected = set(GLOBAL_METRICS) | {f"cube.{k}" for k in OBJECT_METRICS if k not in ARTICULATED_ONLY}
    assert set(m) == expected
    for key, value in m.items():
        doc = GLOBAL_METRICS.get(key) or OBJECT_METRICS[key.split(".", 1)[1]]
        assert tuple(value.shape) == _shape(doc.shape, env, 2, 0), key
        assert bool(torch.isfinite(value.float()).all()), key
    # the palm hovers where the spec put it, the cube rests on the table
    assert torch.allclose(m["palm_pos"][:, 2], torch.full((N,), 0.2), atol=0.01)
    assert torch.allclose(m["cube.pos"][:, 2], torch.full((N,), 0.025), atol=0.003)
    assert bool(m["cube.on_ground"].all())


def test_frozen_joints_hold_while_active_ones_move(finger_env):
    env = finger_env
    env.reset()
    q0 = env.metrics["joint_pos"].clone()
    frozen = [i for i, j in enumerate(env.joint_names) if j not in env.active_joints]
    active = [env.joint_names.index(j) for j in env.active_joints]
    assert len(frozen) == 8 and len(active) == 22  # 6 wrist + 2 hand-wrist frozen, 22 finger joints active
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        env.step(torch.rand(N, env.num_actions, generator=gen) * 2 - 1)
    q1 = env.metrics["joint_pos"]
    assert (q1[:, frozen] - q0[:, frozen]).abs().max() < 2e-3
    assert (q1[:, active] - q0[:, active]).abs().max() > 0.1
    # targets_for: what a step would set, without stepping (out-of-range actions are clamped as in step)
    actions = torch.rand(N, env.num_actions, generator=gen) * 4 - 2
    before, step = env.targets.clone(), env.episode_step.clone()
    preview = env.targets_for(actions)
    assert torch.equal(env.targets, before) and torch.equal(env.episode_step, step)
    assert torch.equal(preview[:, frozen], before[:, frozen]) and not torch.equal(preview[:, active], before[:, active])
    env.step(actions)
    assert torch.equal(env.targets, preview)


def test_reset_randomises_object_pose_within_bounds(finger_env):
    env = finger_env
    env.reset()
    xy = env.metrics["cube.pos"][:, :2]
    assert xy.abs().max() <= 0.02 + 1e-4
    assert xy.std(dim=0).min() > 1e-3  # the envs differ


def test_saved_state_restores_exactly(finger_env, tmp_path):
    env = finger_env
    env.reset()
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        env.step(torch.rand(N, env.num_actions, generator=gen) * 2 - 1)
    saved = env.get_state()
    path = saved.save(tmp_path / "state.pt")
    actions = [torch.rand(N, env.num_actions, generator=gen) * 2 - 1 for _ in range(5)]
    for a in actions:
        env.step(a)
    first = env.metrics["joint_pos"].clone()
    env.set_state(EnvState.load(path))
    restored = env.get_state()
    assert torch.equal(restored.robot_q, saved.robot_q)
    assert torch.equal(restored.objects_q["cube"], saved.objects_q["cube"])
    assert torch.equal(restored.targets, saved.targets)
    assert torch.equal(restored.step, saved.step)
    for a in actions:  # the same actions from the restored state retrace the same path
        env.step(a)
    assert torch.allclose(env.metrics["joint_pos"], first, atol=1e-3)


def test_start_states_hand_over_to_resets(finger_env):
    env = finger_env
    env.reset()
    env.step(torch.ones(N, env.num_actions))  # fingers start to close
    end = env.get_state()
    env.set_start_states(end)
    try:
        env.reset()
        got = env.get_state()
        # every env starts from one of the saved end states
        for i in range(N):
            assert (got.robot_q[i] - end.robot_q).abs().max(dim=-1).values.min() < 1e-5
        assert int(got.step.max()) == 0
    finally:
        env.set_start_states(None)


def test_episodes_end_and_reset_themselves(finger_env):
    env = finger_env
    env.reset()
    zero = torch.zeros(N, env.num_actions)
    for _ in range(29):
        result = env.step(zero)
        assert not result.reset.any()
    result = env.step(zero)
    assert bool(result.truncated.all()) and bool(result.reset.all())
    assert int(result.metrics["step"][0]) == 30  # metrics describe the last step of the episode
    assert int(env.episode_step.max()) == 0  # the envs already started over


def test_non_finite_state_is_reset_and_counted(finger_env):
    env = finger_env
    env.reset()
    before = env.nan_resets
    qpos = env.objects["cube"].get_qpos().clone()
    qpos[1, 0] = float("nan")
    env.objects["cube"].set_qpos(qpos[1:2], envs_idx=torch.tensor([1]))
    result = env.step(torch.zeros(N, env.num_actions))
    assert bool(result.reset[1]) and env.nan_resets == before + 1
    assert int(env.nan_resets_per_env[1]) >= 1
    assert bool(torch.isfinite(env.metrics["cube.pos"]).all())
    assert bool(torch.isfinite(result.obs).all())
    nxt = env.step(torch.zeros(N, env.num_actions))
    assert bool(torch.isfinite(nxt.metrics["cube.pos"]).all())


def test_bad_actions_and_active_groups_are_rejected(finger_env):
    with pytest.raises(ValueError, match="shape"):
        finger_env.step(torch.zeros(N, 3))
    with pytest.raises(ValueError, match=r"unknown joint or group 'thumbs'.*closest: thumb"):
        HandEnv(cube_spec(), EnvConfig(active=("thumbs",)), finger_env.built)


def test_articulated_object_publishes_joint_metrics():
    spec = TaskSpec.from_yaml(
        "name: drawer\nhand: {pose: {pos: [-0.3, 0.0, 0.25]}}\n"
        "objects: [{asset: cabinet_drawer, pose: {pos: [0.15, 0.0, 0.15]}, joints: {drawer_joint: 0.1}}]\n"
        "success: [{kind: opened, object: cabinet_drawer, fraction: 0.4}]\n"
    )
    env = HandEnv(spec, EnvConfig(active=("wrist",)), SceneConfig(n_envs=2))
    m = env.metrics
    assert m["cabinet_drawer.joint_pos"].shape == (2, 1)
    assert torch.allclose(m["cabinet_drawer.open_fraction"], torch.full((2,), 0.5), atol=0.02)
    assert bool(m["success"].all())  # half open >= 0.4
