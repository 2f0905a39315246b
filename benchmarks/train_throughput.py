"""PPO training throughput on one core and on two, and against raw HandEnv stepping, side by side in one run.

Prints JSON: env-steps/s of
- raw: HandEnv.step with random actions, in this process (Genesis may use more than one core for it);
- raw_one_core: the same, held to one core;
- raw_groups: random actions stepped by the env groups (below), with their reward program: the most PPO on
  groups can reach, since PPO adds acting, bookkeeping and updates to it;
- ppo_one_core: PPO training (acting, stepping, reward program, memory, updates) with this process held
  to one core (sched_setaffinity) and one torch thread;
- ppo_in_process: the same with every core allowed (torch uses them in the update; Genesis steps on one);
- ppo_groups: the envs split into one group per core, stepped side by side in worker processes
  (policies.envgroups, what `dexforge run` uses on a CPU machine);
- ppo_groups_overlap: the same, with each rollout's update running while the next rollout is collected
  (PPOConfig.overlap: one update of policy lag); what subtask training does by default.
Ratios: ppo_in_process / raw (target >= 0.6) and ppo_groups_overlap / ppo_one_core (the default training on
both cores against one core, target >= 1.6), and ppo_groups / ppo_one_core (groups without the overlap);
raw_groups / raw_one_core says how much of two cores the groups' stepping itself gets.
Runs are interleaved (`--repeats`), the best of each counts.
`--beside-busy N` keeps N busy processes (a spinning Python loop each) running through the measurement: a
machine that does something else too. OpenMP's wait policy is dexforge's default (PASSIVE) unless
OMP_WAIT_POLICY is set; the JSON says which ran.
Usage: python benchmarks/train_throughput.py [--envs 128] [--iterations 20] [--repeats 3] [--beside-busy 0]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


@contextlib.contextmanager
def one_core():
    """This process on one core and one torch thread, for the block."""
    import torch

    cpus, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {min(cpus)})
    torch.set_num_threads(1)
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)
        torch.set_num_threads(threads)


def main() -> dict:
    import dexforge  # noqa: F401  (first: it sets how OpenMP threads wait, before torch loads)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=20, help="PPO iterations (16 steps each)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best of each counts")
    parser.add_argument("--beside-busy", type=int, default=0, help="busy processes running beside the measurement")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        for _ in range(args.beside_busy):
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            stack.callback(busy.wait)
            stack.callback(busy.kill)
        return measure(args)


def measure(args: argparse.Namespace) -> dict:
    import torch

    from dexforge.policies.envgroups import EnvGroups, cores
    from dexforge.policies.ppo import PPOConfig, train_ppo
    from dexforge.policies.rewards.sandbox import compile_reward
    from dexforge.policies.rewards.templates import render
    from dexforge.sim.demo import example_spec
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.scene import SceneConfig

    n_cores = cores()
    torch.set_num_threads(n_cores)
    spec = example_spec("lift_cube").model_copy(update={"episode_length": 100})
    env = HandEnv(spec, EnvConfig(active=("fingers",)), SceneConfig(n_envs=args.envs))
    source = render("grasp", obj="cube")
    reward = compile_reward(source)
    cfg = PPOConfig(rollouts=16, plateau_iterations=10**6)
    steps = 16 * args.iterations
    budget = steps * args.envs
    gen = torch.Generator().manual_seed(0)
    from dexforge.policies import overlap as overlap_module

    names = (
        "raw",
        "raw_one_core",
        "raw_groups",
        "ppo_one_core",
        "ppo_in_process",
        "ppo_groups",
        "ppo_groups_overlap",
        "ppo_groups_overlap_nice",
    )
    times: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp, EnvGroups(env, source, groups=n_cores) as groups:

        def ppo(name: str, stepper=None, overlap: bool = False) -> float:
            t0 = time.perf_counter()
            run_cfg = dataclasses.replace(cfg, overlap=overlap)
            out = Path(tmp) / name
            train_ppo(env, reward, out, cfg=run_cfg, target_success=2.0, max_env_steps=budget, stepper=stepper)
            return time.perf_counter() - t0

        ppo("warm", groups)  # first calls import and allocate
        for rep in range(args.repeats):  # interleaved, so that drifts of the machine hit every variant alike
            env.reset()
            t0 = time.perf_counter()
            for _ in range(steps):
                env.step(torch.rand(args.envs, env.num_actions, generator=gen) * 2 - 1)
            times["raw"].append(time.perf_counter() - t0)
            with one_core():
                env.reset()
                t0 = time.perf_counter()
                for _ in range(steps):
                    env.step(torch.rand(args.envs, env.num_actions, generator=gen) * 2 - 1)
                times["raw_one_core"].append(time.perf_counter() - t0)
            groups.reset()
            t0 = time.perf_counter()
            for _ in range(steps):
                groups.advance(torch.rand(args.envs, env.num_actions, generator=gen) * 2 - 1)
            times["raw_groups"].append(time.perf_counter() - t0)
            with one_core():
                times["ppo_one_core"].append(ppo(f"one{rep}"))
            times["ppo_in_process"].append(ppo(f"in{rep}"))
            times["ppo_groups"].append(ppo(f"groups{rep}", groups))
            times["ppo_groups_overlap"].append(ppo(f"overlap{rep}", groups, overlap=True))
            overlap_module.UPDATE_NICE = 10
            times["ppo_groups_overlap_nice"].append(ppo(f"nice{rep}", groups, overlap=True))
            overlap_module.UPDATE_NICE = 0
    rate = {k: budget / min(v) for k, v in times.items()}
    return {
        "benchmark": "train_throughput",
        "machine": f"{platform.machine()}, CPU backend, {n_cores} core(s)",
        "n_envs": args.envs,
        "groups": groups.sizes,
        "steps_per_env": steps,
        "repeats": args.repeats,
        "beside_busy": args.beside_busy,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "ppo": {
            "rollouts": cfg.rollouts,
            "learning_epochs": cfg.learning_epochs,
            "mini_batches": cfg.resolved_mini_batches(args.envs),
        },
        "env_steps_per_s": {k: round(v) for k, v in rate.items()},
        "ratio_in_process_to_raw": round(rate["ppo_in_process"] / rate["raw"], 3),
        "target_ratio_in_process_to_raw": 0.6,
        "two_cores_to_one": round(rate["ppo_groups_overlap"] / rate["ppo_one_core"], 3),
        "raw_groups_to_one_core": round(rate["raw_groups"] / rate["raw_one_core"], 3),
        "serial_groups_to_one": round(rate["ppo_groups"] / rate["ppo_one_core"], 3),
        "groups_to_in_process": round(rate["ppo_groups"] / rate["ppo_in_process"], 3),
        "overlap_nice_to_one": round(rate["ppo_groups_overlap_nice"] / rate["ppo_one_core"], 3),
        "target_two_cores_to_one": 1.6,
        "meets_targets": (
            rate["ppo_in_process"] / rate["raw"] >= 0.6 and rate["ppo_groups_overlap"] / rate["ppo_one_core"] >= 1.6
        ),
    }


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # Genesis logs to stdout; stdout carries only the JSON
        report = main()
    print(json.dumps(report, indent=2))
