"""Raw Genesis stepping against HandEnv.step (with metrics) on the same scene, side by side.

Prints one JSON object: for each envs count, aggregate env-steps/s of
  raw: control_dofs_position + scene.step on the lift-cube scene (what the simulator alone costs),
  env: HandEnv.step with random actions (targets, metrics, contacts, predicates, observations, resets),
and their ratio. Target: env keeps at least 90% of raw. Usage: python benchmarks/sim_throughput.py
[--envs 64 256] [--steps 200] [--backend cpu].
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time

import torch


def measure(n_envs: int, steps: int, backend: str) -> dict:
    from dexforge.sim.demo import example_spec
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.scene import SceneConfig

    spec = example_spec("lift_cube").model_copy(update={"episode_length": 100})
    env = HandEnv(spec, EnvConfig(), SceneConfig(n_envs=n_envs, backend=backend))
    scene, hand = env.built.scene, env.built.hand
    targets = env.targets.clone()
    gen = torch.Generator().manual_seed(0)
    actions = [torch.rand(n_envs, env.num_actions, generator=gen) * 2 - 1 for _ in range(steps)]

    cols, size, lo, hi = (
        env.active_idx,
        env._step_size[env.active_idx],
        env.lower[env.active_idx],
        env.upper[env.active_idx],
    )

    def raw() -> None:  # the same motion as the env's: action -> clamped target -> PD control -> step
        for a in actions:
            targets[:, cols] = torch.maximum(torch.minimum(targets[:, cols] + a * size, hi), lo)
            hand.control_dofs_position(targets)
            scene.step()

    def stepped() -> None:
        for a in actions:
            env.step(a)

    for _ in range(20):  # warm up: first calls compile kernels
        hand.control_dofs_position(targets)
        scene.step()
        env.step(actions[0])
    timings = {"raw": [], "env": []}
    for _ in range(3):  # interleave so that both see the same machine state
        for name, fn in (("raw", raw), ("env", stepped)):
            env.reset()
            targets.copy_(env.targets)
            t0 = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - t0)
    raw_sps = n_envs * steps / min(timings["raw"])
    env_sps = n_envs * steps / min(timings["env"])
    return {
        "n_envs": n_envs,
        "steps": steps,
        "raw_env_steps_per_s": round(raw_sps),
        "hand_env_steps_per_s": round(env_sps),
        "ratio": round(env_sps / raw_sps, 3),
        "nan_resets": env.nan_resets,
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = [measure(n, args.steps, args.backend) for n in args.envs]
    return {
        "benchmark": "sim_throughput",
        "backend": args.backend,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "target_ratio": 0.9,
        "results": results,
        "meets_target": all(r["ratio"] >= 0.9 for r in results),
    }


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # Genesis logs to stdout; stdout carries only the JSON
        report = main()
    print(json.dumps(report, indent=2))
