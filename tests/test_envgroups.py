"""Env groups: training envs split across worker processes step as the same env would in this process."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from dexforge.policies import envgroups
from dexforge.policies.envgroups import WORKERS_ENV, EnvGroups, sim_workers, split
from dexforge.policies.ppo import PPOConfig, train_ppo
from dexforge.policies.rewards.sandbox import compile_reward
from dexforge.policies.skrl_env import SkrlHandEnv
from dexforge.policies.subtask import SubtaskSpec
from dexforge.sim.env import EnvConfig, HandEnv
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import HandSpec, ObjectSpec, Pose, Reached, TaskSpec

REWARD = """
def compute_reward(m):
    goal = m["cube.pos"] + torch.tensor([-0.04, 0.0, 0.03])
    reach = torch.exp(-10 * (m["palm_pos"] - goal).norm(dim=-1))
    effort = -0.01 * m["actions"].square().sum(-1)
    return reach + effort, {"reach": reach, "effort": effort}
"""


def test_split_is_even_and_whole():
    assert split(128, 2) == [64, 64]
    assert split(7, 3) == [3, 2, 2]
    assert sum(split(129, 4)) == 129


def test_workers_setting(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert sim_workers(128, "gpu", 10**6) == 1  # one process keeps a GPU busy
    assert sim_workers(128, "cpu", 1000) == 1  # too short to pay for the scene builds
    monkeypatch.setattr("dexforge.policies.envgroups.cores", lambda: 2)
    assert sim_workers(128, "cpu", 10**6) == 2
    assert sim_workers(40, "cpu", 10**6) == 1  # groups of fewer than 32 envs are not worth it
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert sim_workers(128, "cpu", 1000) == 3  # asked for: no budget rule
    monkeypatch.setenv(WORKERS_ENV, "lots")
    with pytest.raises(ValueError, match=WORKERS_ENV):
        sim_workers(128, "cpu")
    monkeypatch.setenv(WORKERS_ENV, "0")
    with pytest.raises(ValueError, match="at least 1"):
        sim_workers(128, "cpu")


def _spec(seed: int = 5) -> TaskSpec:
    return TaskSpec(
        name="reach",
        hand=HandSpec(pose=Pose(pos=(-0.2, 0.1, 0.2))),
        objects=[ObjectSpec(asset="cube", pose=Pose(pos=(0.0, 0.0, 0.025)), randomize={"xy": 0.03})],
        success=[Reached(object="cube", offset=(-0.04, 0.0, 0.03), tolerance=0.03)],
        episode_length=12,
        seed=seed,
    )


def _env(n: int, seed: int = 5) -> HandEnv:
    env = HandEnv(_spec(seed), EnvConfig(active=("wrist_translation",), auto_reset=False), SceneConfig(n_envs=n))
    env.configure(auto_reset=True)
    return env


def _optimizer_steps(checkpoint) -> int:
    state = torch.load(checkpoint, weights_only=False)["optimizer"]["state"]
    return int(max(s["step"] for s in state.values()))


@pytest.mark.genesis
def test_groups_step_as_the_same_env_in_this_process(tmp_path):
    threads = torch.get_num_threads()
    env = _env(4)
    alone = SkrlHandEnv(_env(2), compile_reward(REWARD))  # group 0's copy: two envs, the spec's own seed
    with EnvGroups(env, REWARD, groups=2) as groups:
        assert groups.sizes == [2, 2] and groups.component_names == ["reach", "effort"]
        obs, _ = groups.reset()
        ref, _ = alone.reset()
        assert obs.shape == (4, env.num_obs)
        assert torch.allclose(obs[:2], ref)
        assert not torch.allclose(obs[:2], obs[2:])  # group 1 draws its own layouts
        gen = torch.Generator().manual_seed(0)
        ends = 0
        for _ in range(15):  # past one episode: the auto-reset happens in the workers
            actions = torch.rand(4, env.num_actions, generator=gen) * 2 - 1
            got, want = groups.advance(actions), alone.advance(actions[:2])
            assert torch.allclose(got.obs[:2], want.obs, atol=1e-5)
            assert torch.allclose(got.reward[:2], want.reward, atol=1e-5)
            assert torch.allclose(got.components["reach"][:2], want.components["reach"], atol=1e-5)
            assert torch.equal(got.done[:2], want.done) and torch.equal(got.truncated[:2], want.truncated)
            ends += int(got.done.sum())
        assert ends == 4  # every env finished its 12-step episode once
        # PPO trains on the groups: the steps of both count
        result = train_ppo(
            env,
            compile_reward(REWARD),
            tmp_path / "ppo",
            cfg=PPOConfig(rollouts=8, plateau_iterations=1000),
            target_success=1.01,
            max_env_steps=8 * 4 * 3,
            stepper=groups,
        )
        assert result.iterations == 3 and result.env_steps == 96
        assert set(result.history[-1]["components"]) == {"reach", "effort"}
        assert _optimizer_steps(result.checkpoint) == 3 * 5 * 4  # an update per rollout: 5 epochs of 4 batches
        # overlapped: each rollout is learnt from while the next one is collected; every rollout still gets
        # its update (the last one after the loop), the steps count the same, and the lag changes what is learnt
        overlapped = train_ppo(
            env,
            compile_reward(REWARD),
            tmp_path / "overlap",
            cfg=PPOConfig(rollouts=8, plateau_iterations=1000, overlap=True),
            target_success=1.01,
            max_env_steps=8 * 4 * 3,
            stepper=groups,
        )
        assert overlapped.iterations == 3 and overlapped.env_steps == 96
        assert _optimizer_steps(overlapped.checkpoint) == 3 * 5 * 4
        first = torch.load(result.checkpoint, weights_only=False)["policy"]
        moved = torch.load(overlapped.checkpoint, weights_only=False)["policy"]
        assert not torch.equal(first["net.0.weight"], moved["net.0.weight"])
        assert not (tmp_path / "overlap" / "actor").exists()  # the actor writes nothing
        assert torch.get_num_threads() == threads  # the overlapped update's single thread is given back
        # once trained, the groups evaluate a policy side by side (a batch each), as choosing a checkpoint does
        sub = SubtaskSpec(
            name="reach",
            controller="rl",
            active=("wrist_translation",),
            success=list(env.spec.success),
            reward=REWARD,
            episode_length=12,
        )
        for deterministic in (False, True):
            wins, episodes = groups.evaluate(sub, result.checkpoint, deterministic)
            assert episodes == 4 and 0 <= wins <= 4
        with pytest.raises(RuntimeError, match="env group 0 failed during evaluate a policy"):
            groups.evaluate(sub, tmp_path / "no-such.pt", True)
        procs = list(groups.procs)
    assert all(not p.is_alive() for p in procs)  # closed with the block


@pytest.mark.genesis
def test_a_dead_group_is_an_error_not_a_hang():
    """(Its workers are started ahead, as a training job does while it builds its own env: the groups take
    them; a prestart of another size is stopped.)"""
    from dexforge.policies.envgroups import prestart

    prestart(3)
    wrong = [proc for proc, _ in envgroups._PRESTARTED]
    prestart(2)
    ahead = [proc.pid for proc, _ in envgroups._PRESTARTED]
    assert len(ahead) == 2 and all(not proc.is_alive() for proc in wrong)
    env = _env(4)
    with EnvGroups(env, REWARD, groups=2) as groups:
        assert [p.pid for p in groups.procs] == ahead and not envgroups._PRESTARTED
        groups.reset()
        os.kill(groups.procs[1].pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match=r"env group 1 .* died"):
            groups.advance(torch.zeros(4, env.num_actions))
