"""The demo (`dexforge run "lift the cube"`, offline) at a baseline commit and at this tree, side by side.

Measures what the roles' tool loops cost: both runs start at once, one per core, each in its own fresh
DEXFORGE_HOME (the Genesis kernel cache shared), from a neutral folder; the baseline is installed from git
(`git worktree` + `pip install --no-deps --target`) and runs with it first on PYTHONPATH, workers included.
Prints JSON: per side the status, success rates, env steps and wall time; the wall-time ratio; whether the
two runs reached the same outcome (the same spec, plan and reward programs, so the same training); and, for
this tree, the seconds each role's loop took and its tool calls (from events.jsonl). Target: ratio <= 1.10.

    python benchmarks/demo_overhead.py                     # baseline: the last commit before the tool loops
    python benchmarks/demo_overhead.py --baseline HEAD~5 --request "put the apple in the bowl"
    python benchmarks/demo_overhead.py --stop-after decompose   # the roles only (a minute), no training

Runs take as long as the demo (4-20 minutes here, both at once); the second core is the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BEFORE_TOOL_LOOPS = "7741b8b"  # the last commit whose roles answered without tools
ROOT = Path(__file__).resolve().parents[1]


def install(ref: str, work: Path) -> Path:
    """The package at git `ref`, installed (not editable) into work/<ref>-site; returns that folder."""
    tree, site = work / f"{ref}-tree", work / f"{ref}-site"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), ref], check=True)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(tree)]
    subprocess.run(pip, check=True, capture_output=True)
    return site


def start(site: Path | None, home: Path, request: str, stop_after: str | None) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "DEXFORGE_HOME": str(home)}
    env.setdefault("DEXFORGE_KERNEL_CACHE", str(Path.home() / ".local/share/dexforge/cache/kernels"))
    for key in [k for k in env if k.endswith("BASE_URL") and k.startswith("DEXFORGE_")]:
        env.pop(key)  # the offline reasoner on both sides
    if site is not None:
        env["PYTHONPATH"] = str(site)
    args = ["run", request, "--json"] + (["--stop-after", stop_after] if stop_after else [])
    code = f"import sys; from dexforge.cli import main; sys.exit(main({args!r}))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    return proc, time.time()


def outcome(run_dir: Path) -> dict:
    """What decides training: the final spec, plan (with its reward programs) of a run."""
    summary = json.loads((run_dir / "summary.json").read_text())
    specs = summary.get("specs") or []
    spec = (run_dir / specs[-1]["spec"]).read_text() if specs else ""
    plans = summary.get("plans") or []
    plan = (run_dir / plans[-1]).read_text() if plans else ""
    rewards = sorted(p.read_text() for p in run_dir.glob("subtasks/*/attempt*/reward.py"))
    return {"spec": spec, "plan": plan, "rewards": rewards}


def role_loops(run_dir: Path) -> dict:
    """Per role: loops, seconds inside them and tool calls (events.jsonl of this tree's run)."""
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    started = {e["loop"]: e for e in events if e["kind"] == "role_start"}
    out: dict[str, dict] = {}
    for e in events:
        if e["kind"] != "role_loop":
            continue
        row = out.setdefault(e["role"], {"loops": 0, "seconds": 0.0, "tool_calls": 0, "tools": {}})
        row["loops"] += 1
        row["seconds"] = round(row["seconds"] + e["t"] - started[e["loop"]]["t"], 3)
        row["tool_calls"] += e.get("tool_calls", 0)
    for e in events:
        if e["kind"] == "tool_call" and e.get("role") in out:
            tools = out[e["role"]]["tools"]
            tools[e["name"]] = tools.get(e["name"], 0) + 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BEFORE_TOOL_LOOPS, help="git ref of the baseline")
    parser.add_argument("--request", default="lift the cube")
    parser.add_argument("--stop-after", choices=["check", "decompose"], default=None)
    parser.add_argument("--work", type=Path, default=None, help="folder for the installs and runs (default: temp)")
    a = parser.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="dexforge-overhead-"))
    site = install(a.baseline, work)
    try:
        result = compare(site, work, a)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / f"{a.baseline}-tree")])
    print(json.dumps(result, indent=1))


def compare(site: Path, work: Path, a: argparse.Namespace) -> dict:
    runs = {}
    for side, where in (("baseline", site), ("current", None)):
        home = work / f"home-{side}"
        home.mkdir(parents=True, exist_ok=True)
        runs[side] = (*start(where, home, a.request, a.stop_after), home)
    result: dict = {
        "benchmark": "demo_overhead",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "request": a.request,
        "baseline_ref": a.baseline,
        "stop_after": a.stop_after,
    }
    found = {}
    for side, (proc, t0, _home) in runs.items():
        out, _ = proc.communicate()
        wall = time.time() - t0
        data = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        keep = ("status", "reason", "subtasks", "task_success_rate", "env_steps", "node_path")
        result[side] = {"wall_s": round(wall, 1), **{k: data.get(k) for k in keep}}
        if data.get("run_dir"):
            found[side] = Path(data["run_dir"])
    if len(found) == 2:
        before, after = outcome(found["baseline"]), outcome(found["current"])
        result["same_spec"] = before["spec"] == after["spec"]
        result["same_plan"] = before["plan"] == after["plan"]
        result["same_rewards"] = before["rewards"] == after["rewards"]
        result["current"]["role_loops"] = role_loops(found["current"])
    result["wall_ratio"] = round(result["current"]["wall_s"] / max(result["baseline"]["wall_s"], 1e-9), 3)
    return result


if __name__ == "__main__":
    main()
