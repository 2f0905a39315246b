"""Experience-store retrieval latency at 1k and 10k task records, hashing embedder and all-MiniLM-L6-v2;
and the effect of memory on the same task run twice.

For each embedder and each size N, fills a fresh store (temporary directory) with N synthetic task
records (requests from templates: verb, colour, object, destination, manner), then times
`ExperienceStore.search(text, k=5)` end to end (embed the query, HNSW query, read the records back)
over Q queries worded differently from the stored requests, and the same search filtered by task
family. For MiniLM the query embedding alone is timed too, to show where the time goes.

Warm start: runs the agent (offline reasoner, real Genesis and PPO) on one request twice in a fresh
DEXFORGE_HOME with an empty experience store. The first run trains from scratch and is archived; the
second recalls it and starts its rl subtasks from the stored policies. For each run and rl subtask it
reports the env steps until the training success rate (over the last 64 episodes) first reached the
pass rate, the env steps spent in all, and the evaluated success. About 15 minutes on 2 CPU cores.

Prints one JSON object on stdout. Targets: search p95 < 25 ms at 10k; the second run needs at most
half the env steps of the first to reach the pass rate. Usage:
  python benchmarks/memory.py [--sizes 1000 10000] [--queries 200] [--embedders hashing minilm]
                              [--request "lift the cube"] [--envs 128] [--no-warm-start] [--no-latency]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VERBS = {
    "lift": ["lift", "pick up", "raise"],
    "place": ["put", "place", "drop"],
    "push": ["push", "slide", "nudge"],
    "rotate": ["rotate", "turn", "spin"],
    "open": ["open", "pull open"],
}
OBJECTS = ["cube", "ball", "mug", "banana", "apple", "bottle", "can", "box", "block", "sponge", "pen", "cup", "drawer"]
OBJECTS += ["lid", "door", "jar", "book", "bowl", "plate", "peg", "hammer", "spoon", "knife", "toy car", "marker"]
COLOURS = ["red", "blue", "green", "yellow", "small", "large", "wooden", "metal", "plastic", "heavy", "light", ""]
WHERE = ["into the bowl", "onto the plate", "to the left", "off the table", "above the tray", "into the box"]
WHERE += ["next to the mug", "on the shelf", "by ninety degrees", "halfway", "to the edge", "", "in the hand"]
MANNER = ["", "slowly", "with two fingers", "without dropping it", "gently", "quickly", "and hold it there"]


def requests(n: int, seed: int) -> list[tuple[str, str, str]]:
    """`n` distinct (request, family, object) triples."""
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        family = rng.choice(list(VERBS))
        obj = rng.choice(OBJECTS)
        words = [rng.choice(VERBS[family]), "the", rng.choice(COLOURS), obj, rng.choice(WHERE), rng.choice(MANNER)]
        text = " ".join(w for w in words if w)
        if text not in seen:
            seen.add(text)
            out.append((text, family, obj))
    return out


def _pct(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2)}


def measure(embedder_key: str, n: int, queries: int) -> dict:
    from dexforge.memory.records import TaskRecord
    from dexforge.memory.store import ExperienceStore

    records = [TaskRecord(request=r, family=f, objects=[o], status="succeeded") for r, f, o in requests(n, seed=0)]
    asks = requests(queries + 10, seed=1)
    with tempfile.TemporaryDirectory() as tmp, ExperienceStore.open(Path(tmp), embedder=embedder_key) as store:
        t0 = time.perf_counter()
        store.embedder.embed(["load the model"])  # minilm: import, sha256 check, load (once per process)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.add_many(records)
        insert_s = time.perf_counter() - t0
        for text, _, _ in asks[:10]:  # warm up: model, HNSW index load
            store.search(text, k=5)
        plain, filtered, embed = [], [], []
        for text, family, _ in asks[10:]:
            t0 = time.perf_counter()
            hits = store.search(text, k=5)
            plain.append(time.perf_counter() - t0)
            assert len(hits) == 5
            t0 = time.perf_counter()
            store.search(text, k=5, where={"family": family})
            filtered.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.embedder.embed([text])
            embed.append(time.perf_counter() - t0)
        return {
            "records": n,
            "embedder_load_s": round(load_s, 2),
            "insert_s": round(insert_s, 2),
            "insert_records_per_s": round(n / insert_s),
            "search_ms": _pct(plain),
            "search_filtered_by_family_ms": _pct(filtered),
            "query_embedding_ms": _pct(embed),
        }


def _rl_effort(run_dir: Path, state: dict, target: float) -> dict:
    """Per rl subtask: env steps until the training success rate first reached `target` (over all
    attempts, in order), env steps in all, evaluated success, and where training started from."""
    from dexforge.policies.subtask import Plan
    from dexforge.sim.spec import load_yaml

    plan = Plan.model_validate(load_yaml(state["plan_yaml"]))
    out = {}
    for sub in plan.subtasks:
        if sub.controller != "rl":
            continue
        attempts = state.get("attempts", {}).get(sub.name, [])
        before, reached = 0, None
        for attempt in attempts:
            rows = []
            if attempt.get("stats"):
                lines = (run_dir / attempt["stats"]).read_text().splitlines()
                rows = [json.loads(line) for line in lines if line.strip()]
            hit = next((r for r in rows if (r.get("success_rate") or 0.0) >= target), None)
            if hit is not None and reached is None:
                reached = before + hit["env_steps"]
            before += attempt.get("env_steps", 0)
        passed = state.get("passed", {}).get(sub.name)
        out[sub.name] = {
            "env_steps_to_target": reached,
            "env_steps_total": before,
            "attempts": len(attempts),
            "evaluated_success": passed["success_rate"]
            if passed
            else (attempts[-1].get("success_rate") if attempts else None),
            "warm_start_memory": attempts[0].get("warm_start_memory") if attempts else None,
        }
    return out


def warm_start(request: str, n_envs: int, budget: int | None) -> dict:
    """The same request twice in a fresh home with an empty store: env steps of each run."""
    from dexforge import home as home_mod

    saved = {k: os.environ.get(k) for k in (home_mod.HOME_ENV, home_mod.KERNEL_CACHE_ENV, "DEXFORGE_MEMORY_DIR")}
    kernels = os.environ.get(home_mod.KERNEL_CACHE_ENV) or str(home_mod.kernel_cache_dir())
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {home_mod.HOME_ENV: tmp, home_mod.KERNEL_CACHE_ENV: kernels, "DEXFORGE_MEMORY_DIR": f"{tmp}/memory"}
        )
        try:
            from dexforge.agents import runner
            from dexforge.agents.context import AgentContext

            ctx = AgentContext.from_env(n_envs=n_envs, rl_budget=budget, video=False)
            for which in ("first", "second"):
                t0 = time.time()
                result = runner.start(request, ctx)
                state = result.state
                subtasks = _rl_effort(result.run_dir, state, ctx.pass_rate)
                runs.append(
                    {
                        "run": which,
                        "status": result.status,
                        "wall_s": round(time.time() - t0, 1),
                        "task_success_rate": (state.get("collect") or {}).get("task_success_rate"),
                        "examples_recalled": len(state.get("examples", [])),
                        "rl_subtasks": subtasks,
                        "env_steps_to_target": _sum([s["env_steps_to_target"] for s in subtasks.values()]),
                        "env_steps_total": sum(s["env_steps_total"] for s in subtasks.values()),
                    }
                )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    first, second = runs
    ratio = None
    if first["env_steps_to_target"] and second["env_steps_to_target"] is not None:
        ratio = round(second["env_steps_to_target"] / first["env_steps_to_target"], 4)
    return {
        "request": request,
        "n_envs": n_envs,
        "rl_budget_cap": budget,
        "target": f"training success rate >= pass rate {ctx.pass_rate} (last 64 episodes)",
        "runs": runs,
        "second_over_first_env_steps_to_target": ratio,
        "second_over_first_env_steps_total": round(second["env_steps_total"] / first["env_steps_total"], 4)
        if first["env_steps_total"]
        else None,
        "meets_target": ratio is not None and ratio <= 0.5,
    }


def _sum(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(values)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embedders", nargs="+", default=["hashing", "minilm"])
    parser.add_argument("--request", default="lift the cube", help="The request run twice for the warm start.")
    parser.add_argument("--envs", type=int, default=128, help="Parallel envs of the warm-start runs.")
    parser.add_argument("--budget", type=int, default=None, help="Cap on each rl subtask's env steps.")
    parser.add_argument("--no-warm-start", action="store_true", help="Only the retrieval latency.")
    parser.add_argument("--no-latency", action="store_true", help="Only the warm start.")
    args = parser.parse_args()
    from dexforge.memory.embeddings import EmbedderError

    results: dict[str, list[dict] | str] = {}
    for key in [] if args.no_latency else args.embedders:
        try:
            results[key] = [measure(key, n, args.queries) for n in args.sizes]
        except (ImportError, EmbedderError) as exc:  # sentence-transformers or the model package missing
            results[key] = f"skipped: {exc}"
    import chromadb
    import torch

    at_10k = [r for rows in results.values() if isinstance(rows, list) for r in rows if r["records"] == 10_000]
    warm = None if args.no_warm_start else warm_start(args.request, args.envs, args.budget)
    return {
        "benchmark": "memory",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), {torch.get_num_threads()} torch thread(s)",
        "minilm_encode_threads": 1,  # MiniLMEmbedder's default: see its docstring
        "chromadb": chromadb.__version__,
        "k": 5,
        "queries": args.queries,
        "target": "search p95 < 25 ms at 10k records",
        "results": results,
        "meets_target": {
            key: all(r["search_ms"]["p95"] < 25 for r in at_10k if r in rows)
            for key, rows in results.items()
            if isinstance(rows, list) and any(r["records"] == 10_000 for r in rows)
        },
        "warm_start": warm,
    }


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # libraries may print; stdout carries only the JSON
        report = main()
    print(json.dumps(report, indent=2))
