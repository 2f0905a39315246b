"""A scripted grasp-and-lift and the `dexforge sim demo` job built on it.

The script is the simplest controller that shows the whole simulation layer working: it moves the
palm over the object, closes the hand in a power grasp and lifts. The policies layer has the real
planned and scripted controllers; this one is for demos and for the contact-settings test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import torch

from dexforge.sim import hand as H
from dexforge.sim.spec import TaskSpec


def example_spec(name: str = "lift_cube") -> TaskSpec:
    """A spec shipped with dexforge (`lift_cube`, `apple_in_bowl`, `open_drawer`)."""
    path = resources.files("dexforge.sim") / "examples" / f"{name}.yaml"
    return TaskSpec.from_yaml(path.read_text(), source=f"example:{name}")


def grasp_and_lift(
    env,
    obj: str,
    lift: float = 0.15,
    close_steps: int = 80,
    *,
    palm_dx: float | torch.Tensor = H.POWER_GRASP_PALM_OFFSET[0],
    depth: float | torch.Tensor = 0.004,
    squeeze: float | torch.Tensor = 0.0,
) -> Iterator[torch.Tensor]:
    """Yield full robot targets (N, D) step by step: hover, descend, close, lift, hold.

    `palm_dx`: the palm centre's x offset from the object's centre, m; `depth`: the wrist's height above the
    object's top when the hand closes, m (negative: lower, around a round or tall object); `squeeze`: rad
    added to the curling joints' targets of the grasp (clamped to their limits), a firmer hold for a round or
    tall object. Each may be a tensor (N,), one value per env, to try several grasps at once."""
    names = list(env.joint_names)
    col = {n: i for i, n in enumerate(names)}
    start = env.targets.clone()
    pos = env.metrics[f"{obj}.pos"]
    height = env.metrics[f"{obj}.pos"][:, 2] * 2  # objects rest on the table: centre at half height
    above = start.clone()
    above[:, col["wrist_x"]] = pos[:, 0] + palm_dx
    above[:, col["wrist_y"]] = pos[:, 1] + H.POWER_GRASP_PALM_OFFSET[1]
    yield from _ramp(start, above, 40)
    down = above.clone()
    down[:, col["wrist_z"]] = height + depth
    yield from _ramp(above, down, 50)
    closed = down.clone()
    for joint, value in H.POWER_GRASP.items():
        closed[:, col[joint]] = value
    flexion = [col[j] for j in H.FLEXION_JOINTS]
    squeeze_t = torch.as_tensor(squeeze, dtype=closed.dtype, device=closed.device)
    closed[:, flexion] += squeeze_t[:, None] if squeeze_t.ndim else squeeze_t
    yield from (closed for _ in range(close_steps))  # a fast close wraps the object before it is pushed away
    up = closed.clone()
    up[:, col["wrist_z"]] += lift
    yield from _ramp(closed, up, 60)
    while True:
        yield up


def _ramp(a: torch.Tensor, b: torch.Tensor, steps: int) -> Iterator[torch.Tensor]:
    for i in range(1, steps + 1):
        yield a + (b - a) * (i / steps)


def run_demo(out_dir: Path, spec: TaskSpec | None = None, steps: int = 330) -> dict:
    """Check, render and roll out the lift-cube example with the scripted grasp; returns a summary."""
    from dexforge.sim.checks import run_checks
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.render import record_rollout, render_views
    from dexforge.sim.scene import SceneConfig

    spec = spec or example_spec("lift_cube")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = HandEnv(spec, EnvConfig(randomize=False, auto_reset=False), SceneConfig(n_envs=1, cameras=True))
    report = run_checks(spec, env)
    views = render_views(env, out_dir)
    obj = spec.success[0].object if spec.success else spec.objects[0].key
    script = grasp_and_lift(env, obj)
    best = {"lift": 0.0, "success": False}

    def act(_t: int) -> None:
        result = env.step_targets(next(script))
        best["lift"] = max(best["lift"], float(result.metrics[f"{obj}.lift"][0]))
        best["success"] = best["success"] or bool(result.success[0])

    video = record_rollout(env, act, steps, out_dir / "rollout.mp4")
    summary = {
        "spec": spec.name,
        "checks_ok": report.ok,
        "findings": [f.model_dump() for f in report.findings],
        "renders": {k: str(v) for k, v in views.items()},
        "video": str(video),
        "max_lift_m": round(best["lift"], 4),
        "success": best["success"],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    spec.save(out_dir / "spec.yaml")
    return summary
