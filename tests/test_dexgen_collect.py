"""DexGen data collection: palm-frame keypoints, the wandering wrist, drop trimming, randomisation, the file.

The simulator tests share one tiny scene (4 envs, the hand 20 cm over a cube on the table, fingers active).
The drop trimming is checked exactly with a scripted `held` flag on a real rollout, and on synthetic flags.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from dexforge.policies.dexgen import DexGenConfig, make_windows
from dexforge.policies.dexgen.collect import (
    WristMotion,
    WristMotionConfig,
    collect,
    first_drop,
    kept_length,
    load_dataset,
    run_provenance,
    save_dataset,
)
from dexforge.policies.dexgen.keypoints import FINGER_JOINT_NAMES, HandReader, to_palm_frame
from dexforge.policies.dexgen.randomize import RandomizationConfig, Randomizer
from dexforge.sim import hand as H
from dexforge.sim.env import EnvConfig, HandEnv
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import HandSpec, ObjectSpec, Pose, TaskSpec

N = 4
SPEC = TaskSpec(
    name="dexgen_collect",
    hand=HandSpec(pose=Pose(pos=(-0.04, 0.0, 0.2))),
    objects=[ObjectSpec(asset="cube", pose=Pose(pos=(0.0, 0.0, 0.025)))],
    episode_length=30,  # shorter than the runs below: collect must not let the env reset itself
)


@pytest.fixture(scope="module")
def env():
    return HandEnv(SPEC, EnvConfig(active=("fingers",)), SceneConfig(n_envs=N))


def synthetic_episode(length: int, cfg: DexGenConfig, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "keypoints": torch.randn(length, cfg.n_keypoints, 3, generator=gen),
        "joint_pos": torch.randn(length, cfg.n_joints, generator=gen),
        "targets": torch.randn(length, cfg.n_joints, generator=gen),
        "mode": torch.full((length,), 2, dtype=torch.long),
        "held": torch.ones(length, dtype=torch.bool),
        "hold_s": torch.tensor(length * 0.01),
        "dropped": torch.tensor(False),
        "env": torch.tensor(seed),
    }


def test_drops_are_found_after_the_grace_period_and_trimmed_by_the_margin():
    held = torch.tensor(
        [[1, 1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool
    )  # (T=6, N=4): never dropped, a 2-step flicker, dropped at 3 then picked up at 5, dropped at 1
    assert first_drop(held).tolist() == [6, 1, 3, 1]
    assert first_drop(held, grace=1).tolist() == [6, 1, 3, 1]
    assert first_drop(held, grace=2).tolist() == [6, 6, 6, 1]  # a loss must outlast the grace steps
    assert first_drop(torch.zeros(6, 2, dtype=torch.bool), grace=3).tolist() == [0, 0]  # never held
    assert first_drop(torch.tensor([[1], [1], [1], [1], [0]], dtype=torch.bool), grace=3).tolist() == [4]  # at the end
    assert kept_length(torch.tensor([6, 1, 3, 5, 0]), 6, margin=2).tolist() == [6, 0, 1, 3, 0]


def test_dataset_round_trips_and_feeds_make_windows(tmp_path):
    cfg = DexGenConfig()
    episodes = [synthetic_episode(n, cfg, seed) for seed, n in enumerate((12, 0, 7))]
    prov = {"policy": "scripted", "seeds": [0, 1], "randomization": {"mass_scale": [0.9]}}
    path = save_dataset(tmp_path / "sub" / "data.h5", episodes, prov)
    loaded, prov_back = load_dataset(path)
    assert prov_back == prov and len(loaded) == 3
    for ep, back in zip(episodes, loaded, strict=True):
        assert set(back) == set(ep)
        for key, value in ep.items():
            assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    windows = make_windows(loaded, cfg)
    assert windows["cond"].shape == ((12 - 6) + (7 - 6), cfg.cond_dim)  # L - history - horizon per episode
    assert torch.equal(windows["mode"], torch.full((7,), 2))
    with pytest.raises(ValueError, match="JSON"):
        save_dataset(tmp_path / "bad.h5", episodes, {"tensor": torch.zeros(1)})


def test_wrist_motion_refuses_an_active_wrist():
    fake = SimpleNamespace(joint_names=(*H.WRIST_JOINTS, *FINGER_JOINT_NAMES), active_joints=list(H.WRIST_JOINTS))
    with pytest.raises(ValueError, match="wrist frozen"):
        WristMotion().begin(fake)


@pytest.mark.genesis
def test_keypoints_live_in_the_palm_frame(env):
    env.reset()
    reader = HandReader(env)
    assert len(env.joint_names) == 30 and reader.n_joints == DexGenConfig().n_joints == 22
    k0 = reader.keypoints()
    assert k0.shape == (N, DexGenConfig().n_keypoints, 3)
    m = env.metrics
    assert torch.allclose(k0[:, :5], to_palm_frame(m["fingertip_pos"], m["palm_pos"], m["palm_quat"]))
    # open hand: every keypoint within a hand's length of the palm centre, each fingertip beyond its middle joint
    assert k0.norm(dim=-1).max() < 0.2
    assert bool((k0[:, :5].norm(dim=-1) > k0[:, 5:].norm(dim=-1) + 0.01).all())
    tips0 = m["fingertip_pos"].clone()
    state = env.get_state()
    wrist = [env.joint_names.index(j) for j in H.WRIST_JOINTS]
    state.robot_q[:, wrist] += torch.tensor([0.05, -0.03, 0.04, 0.3, -0.4, 0.5])
    env.set_state(state)  # the whole hand moves, the fingers keep their joint angles
    assert (env.metrics["fingertip_pos"] - tips0).norm(dim=-1).min() > 0.03
    assert torch.allclose(reader.keypoints(), k0, atol=1e-4)
    env.reset()


@pytest.mark.genesis
def test_wrist_motion_moves_the_wrist_smoothly_and_leaves_the_fingers(env):
    env.reset()
    cfg = WristMotionConfig(frequency=(0.5, 1.0), ramp_s=0.1)
    motion = WristMotion(cfg, seed=3)
    wrist = [env.joint_names.index(j) for j in H.WRIST_JOINTS]
    fingers = [env.joint_names.index(j) for j in FINGER_JOINT_NAMES]
    start, palm0 = env.targets.clone(), env.metrics["palm_pos"].clone()
    seen, palms = [], []
    for _ in range(40):  # the episode ends after 30 steps and the env resets itself
        motion(env)
        seen.append(env.targets.clone())
        env.step(torch.zeros(N, env.num_actions))
        palms.append(env.metrics["palm_pos"].clone())
    targets = torch.stack(seen)  # (T, N, D)
    assert torch.equal(targets[0], start) and torch.equal(targets[30], start)  # paths fade in from the start
    assert torch.equal(targets[:, :, fingers], start[:, fingers].expand(40, -1, -1))
    offset = targets[:30, :, wrist] - start[:, wrist]
    peak = torch.tensor([cfg.translation] * 3 + [cfg.rotation] * 3)
    assert bool((offset.abs() <= peak + 1e-6).all())
    assert bool((offset.diff(dim=0).abs() <= peak * (2 * math.pi * 1.0 + 1.5 / cfg.ramp_s) * env.dt + 1e-6).all())
    assert float((offset[-1, 0] - offset[-1, 1]).abs().max()) > 1e-3  # each env has its own path
    assert float((palms[28] - palm0).norm(dim=-1).min()) > 3e-3  # the hand followed
    a, b, c = WristMotion(cfg, seed=3), WristMotion(cfg, seed=3), WristMotion(cfg, seed=4)
    for motion in (a, b, c):
        motion.begin(env)
    assert torch.equal(a.phase, b.phase) and torch.equal(a.amp, b.amp) and not torch.equal(a.amp, c.amp)
    env.reset()


@pytest.mark.genesis
def test_collect_cuts_every_rollout_two_margins_before_its_drop(env, tmp_path):
    env.reset()
    drop_at = torch.tensor([100, 20, 3, 0])  # scripted: held while the step count is below these
    close = torch.ones(N, env.num_actions)  # delta actions: every finger closes
    episodes = collect(
        env,
        lambda obs: close,
        steps=40,
        obj="cube",
        mode=1,
        wrist_motion=WristMotion(seed=0),
        drop_margin_s=0.05,  # 5 steps at dt 0.01
        grace_s=0.0,
        held=lambda m: m["step"] < drop_at,
    )
    assert env.auto_reset  # restored after the run
    assert [len(ep["keypoints"]) for ep in episodes] == [40, 15, 0, 0]
    assert [float(ep["hold_s"]) for ep in episodes] == pytest.approx([0.40, 0.20, 0.03, 0.0])
    assert [bool(ep["dropped"]) for ep in episodes] == [False, True, True, True]
    ep = episodes[0]
    assert ep["keypoints"].shape == (40, 10, 3) and ep["joint_pos"].shape == ep["targets"].shape == (40, 22)
    assert torch.equal(ep["mode"], torch.ones(40, dtype=torch.long)) and bool(ep["held"].all())
    assert bool((ep["targets"].diff(dim=0) >= 0).all())  # closing targets never open
    flex = [FINGER_JOINT_NAMES.index(j) for j in H.FLEXION_JOINTS]
    assert float((ep["joint_pos"][-1, flex] - ep["joint_pos"][0, flex]).mean()) > 0.3  # the fingers followed
    assert float((ep["keypoints"][-1] - ep["keypoints"][0]).norm(dim=-1).max()) > 0.02
    cfg = DexGenConfig()
    windows = make_windows(episodes, cfg)
    assert windows["cond"].shape == ((40 - 6) + (15 - 6), cfg.cond_dim)
    prov = run_provenance(env, obj="cube", policy="scripted:close", steps=40, mode=1, seed=0)
    loaded, prov_back = load_dataset(save_dataset(tmp_path / "run.h5", episodes, prov))
    assert prov_back["n_envs"] == N and prov_back["dt"] == env.dt and prov_back["n_joints"] == 22
    assert torch.equal(make_windows(loaded, cfg)["cond"], windows["cond"])


@pytest.mark.genesis
def test_an_object_never_grasped_yields_no_samples(env):
    env.reset()
    episodes = collect(env, lambda obs: torch.zeros(N, env.num_actions), steps=10, obj="cube")
    assert [len(ep["keypoints"]) for ep in episodes] == [0] * N
    assert all(bool(ep["dropped"]) and float(ep["hold_s"]) == 0.0 for ep in episodes)
    with pytest.raises(ValueError, match="no episode"):
        make_windows(episodes, DexGenConfig())


@pytest.mark.genesis
def test_randomizer_draws_applies_and_restores(env):
    cube, hand = env.objects["cube"], env.built.hand
    solver = env.built.scene.sim.rigid_solver
    geoms = [g.idx for g in cube.geoms]
    dofs = [hand.get_joint(j).dofs_idx_local[0] for j in FINGER_JOINT_NAMES]
    kp0 = torch.as_tensor(hand.get_dofs_kp(dofs_idx_local=dofs)).clone()
    mass0 = float(cube.get_mass())
    randomizer = Randomizer(env, RandomizationConfig(), seed=0)
    record = randomizer.apply()
    try:
        json.dumps(record)
        assert record["per_env"] == {"friction": True, "mass": False, "gains": False}  # default SceneConfig
        friction = torch.tensor(record["friction_scale"])
        assert friction.shape == (N,) and friction.std() > 0 and bool(((friction >= 0.7) & (friction <= 1.3)).all())
        ratio = torch.as_tensor(solver.get_geoms_friction_ratio(geoms_idx=geoms))
        assert torch.allclose(ratio, friction[:, None].expand_as(ratio))
        assert float(cube.get_mass()) == pytest.approx(mass0 * record["mass_scale"][0], rel=1e-4)
        kp = torch.as_tensor(hand.get_dofs_kp(dofs_idx_local=dofs))
        assert torch.allclose(kp, kp0 * record["kp_scale"][0], rtol=1e-4)
        env.reset()
        env.step(torch.zeros(N, env.num_actions))
        assert bool(torch.isfinite(env.metrics["joint_pos"]).all())
    finally:
        randomizer.restore()
    assert float(cube.get_mass()) == pytest.approx(mass0, rel=1e-5)
    assert torch.allclose(torch.as_tensor(hand.get_dofs_kp(dofs_idx_local=dofs)), kp0)
    assert torch.allclose(torch.as_tensor(solver.get_geoms_friction_ratio(geoms_idx=geoms)), torch.ones(N, len(geoms)))
