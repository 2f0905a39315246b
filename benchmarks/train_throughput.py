"""PPO training throughput against raw HandEnv stepping, measured side by side on one env.

Prints JSON: env-steps/s of HandEnv.step with random actions (raw), of PPO training (acting,
stepping, reward program, memory, updates), and their ratio. Target: training keeps >= 60% of raw.
Usage: python benchmarks/train_throughput.py [--envs 128] [--iterations 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=20, help="PPO iterations (16 steps each)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the PPO update uses them)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved raw/PPO pairs; the best of each counts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from dexforge.policies.ppo import PPOConfig, train_ppo
    from dexforge.policies.rewards.sandbox import compile_reward
    from dexforge.policies.rewards.templates import render
    from dexforge.sim.demo import example_spec
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.scene import SceneConfig

    spec = example_spec("lift_cube").model_copy(update={"episode_length": 100})
    env = HandEnv(spec, EnvConfig(active=("fingers",)), SceneConfig(n_envs=args.envs))
    reward = compile_reward(render("grasp", obj="cube"))
    cfg = PPOConfig(rollouts=16, plateau_iterations=10**6)
    steps = 16 * args.iterations
    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        train_ppo(env, reward, Path(tmp) / "warm", cfg=cfg, target_success=2.0, max_env_steps=16 * 2 * args.envs)
        raw_t, train_t = [], []
        for rep in range(args.repeats):  # interleaved, so that drifts of the machine hit both alike
            env.reset()
            t0 = time.perf_counter()
            for _ in range(steps):
                env.step(torch.rand(args.envs, env.num_actions, generator=gen) * 2 - 1)
            raw_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            train_ppo(env, reward, Path(tmp) / f"r{rep}", cfg=cfg, target_success=2.0, max_env_steps=steps * args.envs)
            train_t.append(time.perf_counter() - t0)
    raw = steps * args.envs / min(raw_t)
    trained = steps * args.envs / min(train_t)
    return {
        "benchmark": "train_throughput",
        "machine": f"{platform.machine()}, CPU backend, {args.threads} torch thread(s)",
        "n_envs": args.envs,
        "steps_per_env": steps,
        "repeats": args.repeats,
        "ppo": {
            "rollouts": cfg.rollouts,
            "learning_epochs": cfg.learning_epochs,
            "mini_batches": cfg.resolved_mini_batches(args.envs),
        },
        "raw_env_steps_per_s": round(raw),
        "ppo_env_steps_per_s": round(trained),
        "ratio": round(trained / raw, 3),
        "target_ratio": 0.6,
        "meets_target": trained / raw >= 0.6,
    }


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # Genesis logs to stdout; stdout carries only the JSON
        report = main()
    print(json.dumps(report, indent=2))
