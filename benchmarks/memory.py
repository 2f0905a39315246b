"""Experience-store retrieval latency at 1k and 10k task records, hashing embedder and all-MiniLM-L6-v2.

For each embedder and each size N, fills a fresh store (temporary directory) with N synthetic task
records (requests from templates: verb, colour, object, destination, manner), then times
`ExperienceStore.search(text, k=5)` end to end (embed the query, HNSW query, read the records back)
over Q queries worded differently from the stored requests, and the same search filtered by task
family. For MiniLM the query embedding alone is timed too, to show where the time goes.
Prints one JSON object on stdout. Target: search p95 < 25 ms at 10k. Usage:
  python benchmarks/memory.py [--sizes 1000 10000] [--queries 200] [--embedders hashing minilm]
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


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embedders", nargs="+", default=["hashing", "minilm"])
    args = parser.parse_args()
    from dexforge.memory.embeddings import EmbedderError

    results: dict[str, list[dict] | str] = {}
    for key in args.embedders:
        try:
            results[key] = [measure(key, n, args.queries) for n in args.sizes]
        except (ImportError, EmbedderError) as exc:  # sentence-transformers or the model package missing
            results[key] = f"skipped: {exc}"
    import chromadb
    import torch

    at_10k = [r for rows in results.values() if isinstance(rows, list) for r in rows if r["records"] == 10_000]
    return {
        "benchmark": "memory_retrieval",
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
    }


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # libraries may print; stdout carries only the JSON
        report = main()
    print(json.dumps(report, indent=2))
