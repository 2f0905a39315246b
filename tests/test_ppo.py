"""PPO with skrl on a tiny real scene: reward improves, checkpoints resume, evaluation is repeatable."""

from __future__ import annotations

import json

import pytest
import torch

from dexforge.policies.policy_files import evaluate, load_policy
from dexforge.policies.ppo import PPOConfig, train_ppo
from dexforge.sim.env import EnvConfig, HandEnv
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import HandSpec, ObjectSpec, Pose, Reached, TaskSpec

pytestmark = pytest.mark.genesis
GOAL = (-0.04, 0.0, 0.03)


def reach_reward(m):
    goal = m["cube.pos"] + torch.tensor(GOAL)
    r = torch.exp(-10 * (m["palm_pos"] - goal).norm(dim=-1))
    penalty = -0.01 * m["actions"].square().sum(-1)
    return r + penalty, {"reach": r, "action_penalty": penalty}


def reach_env(start, noise: float, episode_length: int) -> HandEnv:
    spec = TaskSpec(
        name="reach",
        hand=HandSpec(pose=Pose(pos=start)),
        objects=[ObjectSpec(asset="cube", pose=Pose(pos=(0.0, 0.0, 0.025)), randomize={"xy": noise})],
        success=[Reached(object="cube", offset=GOAL, tolerance=0.03)],
        episode_length=episode_length,
    )
    return HandEnv(spec, EnvConfig(active=("wrist_translation",)), SceneConfig(n_envs=32))


@pytest.fixture(scope="module")
def env():
    return reach_env((-0.2, 0.1, 0.2), noise=0.03, episode_length=40)


def test_ppo_improves_reward_and_resumes(env, tmp_path):
    cfg = PPOConfig(rollouts=16, plateau_iterations=1000, checkpoint_every=5)
    first = train_ppo(env, reach_reward, tmp_path / "a", cfg=cfg, target_success=1.01, max_env_steps=16 * 32 * 30)
    rewards = [h["reward_mean"] for h in first.history]
    assert first.stop_reason == "budget" and first.iterations == 30
    early, late = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert late > 1.3 * early, rewards
    assert set(first.history[-1]["components"]) == {"reach", "action_penalty"}
    lines = (tmp_path / "a" / "stats.jsonl").read_text().splitlines()
    assert len(lines) == 30 and json.loads(lines[-1])["iteration"] == 30
    assert any((tmp_path / "a" / "tb").rglob("events.out.tfevents*"))
    # resume: the iteration count and the policy carry on
    second = train_ppo(
        env,
        reach_reward,
        tmp_path / "a",
        cfg=cfg,
        target_success=1.01,
        max_env_steps=16 * 32 * 35,
        resume=first.checkpoint,
    )
    assert second.iterations == 35 and len(second.history) == 35
    assert sum(h["reward_mean"] for h in second.history[-5:]) / 5 > 1.3 * early


def test_a_checkpoint_evaluates_near_its_training_success(tmp_path):
    env = reach_env((-0.12, 0.0, 0.15), noise=0.0, episode_length=50)
    cfg = PPOConfig(plateau_iterations=1000)
    result = train_ppo(env, reach_reward, tmp_path / "b", cfg=cfg, target_success=0.8, max_env_steps=16 * 32 * 80)
    act = load_policy(env, result.checkpoint, deterministic=False)
    a = evaluate(env, act, episodes=64, seed=3)
    b = evaluate(env, act, episodes=64, seed=3)
    assert abs(a - b) <= 0.15  # the same seed: only policy sampling differs
    still = evaluate(env, lambda obs: torch.zeros(obs.shape[0], env.num_actions), episodes=64, seed=3)
    assert a > still + 0.15, f"trained policy {a:.0%} vs holding still {still:.0%}"


def test_a_warm_start_keeps_the_policy_and_restarts_the_counters(env, tmp_path):
    cfg = PPOConfig(rollouts=16, mini_batches=4, plateau_iterations=1000)
    first = train_ppo(env, reach_reward, tmp_path / "w", cfg=cfg, target_success=1.01, max_env_steps=16 * 32 * 25)
    warm = train_ppo(
        env,
        reach_reward,
        tmp_path / "w2",
        cfg=cfg,
        target_success=1.01,
        max_env_steps=16 * 32 * 5,
        init=first.checkpoint,
    )
    cold = train_ppo(env, reach_reward, tmp_path / "c", cfg=cfg, target_success=1.01, max_env_steps=16 * 32 * 5)
    assert warm.iterations == 5 and warm.env_steps == 16 * 32 * 5  # counters start from zero
    mean = lambda r: sum(h["reward_mean"] for h in r.history) / len(r.history)  # noqa: E731
    assert mean(warm) > 1.2 * mean(cold), (mean(warm), mean(cold))


def test_a_task_never_once_achieved_stops_at_the_no_learning_share(env, tmp_path):
    """`no_learning_share`: no success in any window by that share of the budget stops training early; without
    the setting, the same run goes on to its budget."""
    budget = 16 * 32 * 12
    out_of_reach = Reached(object="cube", offset=(0.0, 0.0, 1.0), tolerance=0.001)  # 1 m above, in 0.4 s
    env.configure(success=[out_of_reach])
    try:
        cfg = PPOConfig(rollouts=16, plateau_iterations=1000, no_learning_share=0.5)
        stopped = train_ppo(env, reach_reward, tmp_path / "n", cfg=cfg, target_success=0.8, max_env_steps=budget)
        plain = PPOConfig(rollouts=16, plateau_iterations=1000)
        full = train_ppo(env, reach_reward, tmp_path / "f", cfg=plain, target_success=0.8, max_env_steps=budget)
    finally:
        env.configure(success=env.spec.success)
    assert stopped.stop_reason == "no_learning" and stopped.env_steps == budget // 2, stopped.stop_reason
    assert all(not h["success_rate"] and h["step_success"] == 0.0 for h in stopped.history)
    assert full.stop_reason == "budget" and full.env_steps == budget


def test_training_stats_count_the_steps_at_which_success_held(env):
    """`step_success`: the share of env steps with the task's success, which no_learning reads beside the
    episodes' outcomes (a policy can reach the goal before it ends an episode there)."""
    from dexforge.policies.skrl_env import SkrlHandEnv

    shares = {}
    at_the_palm, out_of_reach = (-0.2, 0.1, 0.175), (0.0, 0.0, 1.0)  # the palm starts at (-0.2, 0.1, 0.2)
    for name, offset, tolerance in (("everywhere", at_the_palm, 0.5), ("nowhere", out_of_reach, 0.001)):
        env.configure(success=[Reached(object="cube", offset=offset, tolerance=tolerance)])
        try:
            wrapped = SkrlHandEnv(env, reach_reward)
            wrapped.reset()
            for _ in range(3):
                wrapped.step(torch.zeros(env.num_envs, env.num_actions))
            shares[name] = wrapped.drain()["step_success"]
            assert wrapped.drain()["step_success"] == 0.0  # drained
        finally:
            env.configure(success=env.spec.success)
    assert shares == {"everywhere": 1.0, "nowhere": 0.0}
