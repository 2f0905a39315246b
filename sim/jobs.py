"""Simulation jobs the agent runs in worker subprocesses (see dexforge.jobs): check and render a scene."""

from __future__ import annotations

from pathlib import Path

from dexforge.sim.spec import TaskSpec


def check_scene_job(spec_yaml: str, out_dir: str, render: bool = True, backend: str = "cpu") -> dict:
    """Physics checks of one env of the spec and, with `render`, front/side/top PNGs in `out_dir`.

    Returns {"ok", "findings": [Finding...], "checks_run", "renders": {view: path}}.
    """
    from dexforge.sim.checks import run_checks
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.render import render_views
    from dexforge.sim.scene import SceneConfig

    spec = TaskSpec.from_yaml(spec_yaml)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = HandEnv(
        spec, EnvConfig(randomize=False, auto_reset=False), SceneConfig(n_envs=1, cameras=render, backend=backend)
    )
    renders = {k: str(v) for k, v in render_views(env, out / "renders").items()} if render else {}
    report = run_checks(spec, env)
    return {
        "ok": report.ok,
        "findings": [f.model_dump() for f in report.findings],
        "checks_run": list(report.checks_run),
        "renders": renders,
    }
