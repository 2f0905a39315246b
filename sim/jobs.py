"""Simulation jobs the agent runs in worker subprocesses (see dexforge.jobs): check and render a scene.

More probes of a scene (a camera anywhere, settling over time, a metrics batch) are in `dexforge.sim.probe`.
"""

from __future__ import annotations

import time
from pathlib import Path

from dexforge.sim.spec import TaskSpec


def check_scene_job(spec_yaml: str, out_dir: str, render: bool = True, backend: str = "cpu") -> dict:
    """Physics checks of one env of the spec and, with `render`, front/side/top PNGs in `out_dir`.

    Also writes `scene_state.json` (a SceneState: the bodies' boxes as laid out and after the settling
    check) and `metrics_batch.pt` (16 rows of env 0's metrics under small seeded random actions, for
    dry-running reward programs) into `out_dir`.

    Returns {"ok", "findings": [Finding...], "checks_run", "renders": {view: path}, "scene_state": path,
    "metrics_batch": path}.
    """
    from dexforge.sim.checks import run_checks
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.probe import scene_state_and_metrics
    from dexforge.sim.render import render_views
    from dexforge.sim.scene import SceneConfig

    spec = TaskSpec.from_yaml(spec_yaml)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = HandEnv(
        spec, EnvConfig(randomize=False, auto_reset=False), SceneConfig(n_envs=1, cameras=render, backend=backend)
    )
    renders = {k: str(v) for k, v in render_views(env, out / "renders").items()} if render else {}
    checks_s = 0.0

    def checks(on_settled):
        nonlocal checks_s
        t = time.perf_counter()
        report = run_checks(spec, env, on_settled=on_settled)
        checks_s = time.perf_counter() - t
        return report

    t0 = time.perf_counter()
    report, scene_state, metrics_batch = scene_state_and_metrics(env, checks, out)
    print(f"check_scene: scene state and metrics batch took {time.perf_counter() - t0 - checks_s:.2f} s", flush=True)
    return {
        "ok": report.ok,
        "findings": [f.model_dump() for f in report.findings],
        "checks_run": list(report.checks_run),
        "renders": renders,
        "scene_state": str(scene_state),
        "metrics_batch": str(metrics_batch),
    }
