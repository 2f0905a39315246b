"""Plain RL against the decomposed plan, under the same env-step budget (GenDexHand's central result).

For the lift task (Shadow hand, a cube) and the place task (cube into a bowl), runs
  plain:      one RL subtask, every joint, one reward, no motion planning;
  decomposed: motion-planned approach, RL grasp with the wrist frozen, motion-planned lift/transport,
              scripted release;
with the same RL env-step budget, and prints JSON: whole-task success rate (chained, from the initial
layout, fixed seed), env steps, env steps at which training first reached 50% success, wall time.
Target: decomposed >= 60% on both and >= 3x plain. Usage:
  python benchmarks/decomposition.py [--budget 150000] [--envs 128] [--tasks lift place]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from importlib import resources
from pathlib import Path
from tempfile import mkdtemp

import torch

TASKS = {
    "lift": ("lift_cube.yaml", "lift_cube.plan.yaml", "lift_cube.plain.yaml"),
    "place": ("place_cube.yaml", "place_cube.plan.yaml", "place_cube.plain.yaml"),
}


def _with_budget(plan, budget: int):
    subs = [
        s.model_copy(update={"budget": s.budget.model_copy(update={"env_steps": budget})})
        if s.controller == "rl"
        else s
        for s in plan.subtasks
    ]
    return plan.model_copy(update={"subtasks": subs})


def run_variant(task: str, variant: str, budget: int, n_envs: int, episodes: int, out: Path, seed: int = 0) -> dict:
    from dexforge.policies.subtask import Plan
    from dexforge.policies.train import train_plan
    from dexforge.sim.demo import example_spec
    from dexforge.sim.spec import TaskSpec

    spec_file, plan_file, plain_file = TASKS[task]
    examples = resources.files("dexforge.policies") / "examples"
    if task == "lift":
        spec = example_spec("lift_cube")
    else:
        spec = TaskSpec.from_yaml((examples / spec_file).read_text(), source=spec_file)
    plan_text = (examples / (plan_file if variant == "decomposed" else plain_file)).read_text()
    from dexforge.sim.spec import load_yaml

    plan = _with_budget(Plan.model_validate(load_yaml(plan_text)), budget)
    spec = spec.model_copy(update={"seed": seed})  # the layout's random draws (PPO's own seed stays 0)
    t0 = time.time()
    outcome = train_plan(spec, plan, out / f"{task}-{variant}-seed{seed}", n_envs=n_envs, eval_episodes=episodes)
    rl = [s for s in outcome.subtasks if s.controller == "rl"]
    half = None
    for s in rl:
        steps = next((h["env_steps"] for h in s.history if (h["success_rate"] or 0) >= 0.5), None)
        half = steps if half is None else half
    return {
        "task": task,
        "variant": variant,
        "seed": seed,
        "success_rate": outcome.task_success_rate,
        "episodes": outcome.episodes,
        "rl_env_steps": outcome.env_steps,
        "env_steps_to_50pct_training_success": half,
        "subtasks": {
            s.name: {"controller": s.controller, "success_rate": round(s.success_rate, 3)} for s in outcome.subtasks
        },
        "wall_s": round(time.time() - t0, 1),
    }


def _mean(values: list) -> float:
    values = [v or 0.0 for v in values]
    return round(sum(values) / max(len(values), 1), 4)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=600_000, help="RL env steps per variant")
    parser.add_argument("--envs", type=int, default=128)
    parser.add_argument("--episodes", type=int, default=64, help="evaluation episodes per variant")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--variants", nargs="+", default=["plain", "decomposed"], choices=["plain", "decomposed"])
    parser.add_argument("--seeds", type=int, default=1, help="layouts' seeds 0..N-1; success rates are averaged")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out or Path(mkdtemp(prefix="dexforge-decomposition-"))
    t0 = time.time()
    rows = [
        run_variant(t, v, args.budget, args.envs, args.episodes, out, seed)
        for t in args.tasks
        for v in args.variants
        for seed in range(args.seeds)
    ]
    summary = {}
    for task in args.tasks if len(args.variants) == 2 else []:
        plain = _mean([r["success_rate"] for r in rows if r["task"] == task and r["variant"] == "plain"])
        dec = _mean([r["success_rate"] for r in rows if r["task"] == task and r["variant"] == "decomposed"])
        summary[task] = {
            "plain": plain,
            "decomposed": dec,
            "decomposed_per_seed": [
                r["success_rate"] for r in rows if r["task"] == task and r["variant"] == "decomposed"
            ],
            "ratio": None if plain == 0 else round(dec / plain, 2),
            "meets_target": dec >= 0.6 and (dec >= 3 * plain),
        }
    return {
        "benchmark": "decomposition",
        "machine": f"{platform.machine()}, CPU backend",
        "rl_budget_env_steps": args.budget,
        "n_envs": args.envs,
        "results": rows,
        "summary": summary,
        "total_wall_s": round(time.time() - t0, 1),
        "runs_dir": str(out),
    }


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # Genesis logs to stdout; stdout carries only the JSON
        report = main()
    print(json.dumps(report, indent=2))
