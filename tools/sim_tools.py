"""The graph's simulator tool: check and render a scene (the roles' own tools are in asset_tools, scene_tools,
plan_tools and reward_tools); `metric_keys` lists what a task's environment publishes.

Heavy work (anything that builds a Genesis scene) runs as a worker job; this module never imports
Genesis. Every tool returns `(summary for the model, structured result)`; a failure is a tool error
whose text says what to change.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.tools import tool
from pydantic import Field

from dexforge.sim.job_types import CheckSceneArgs, CheckSceneResult
from dexforge.tools.common import progress, run_worker


class CheckArgs(CheckSceneArgs):
    """The job's arguments, and how long the caller waits for it."""

    timeout_s: float = Field(default=900.0, gt=0, description="Most seconds the check may take.")


def metric_keys(spec) -> dict[str, str]:
    """Every metric key the task's environment publishes -> 'shape unit: meaning' (sim/metrics.py)."""
    from dexforge.sim.metrics import ARTICULATED_ONLY, GLOBAL_METRICS, OBJECT_METRICS

    keys = {k: f"{d.shape} {d.unit}: {d.description}" for k, d in GLOBAL_METRICS.items()}
    for obj in spec.objects:
        articulated = bool(spec.asset_of(obj.key).articulation)
        for field, d in OBJECT_METRICS.items():
            if field in ARTICULATED_ONLY and not articulated:
                continue
            keys[f"{obj.key}.{field}"] = f"{d.shape} {d.unit}: {d.description}"
    return keys


@tool(args_schema=CheckArgs, response_format="content_and_artifact")
def check_scene(
    spec_yaml: str, out_dir: str, render: bool = True, backend: str = "cpu", timeout_s: float = 900.0
) -> tuple[str, dict]:
    """Build the scene in the simulator and run the physics checks (interpenetration, settling, reach,
    scale against the hand, workspace); with `render`, front/side/top images. Findings carry numbers and
    say what would fix them."""
    from dexforge.tools.asset_tools import parse_spec

    spec = parse_spec(spec_yaml)
    progress(event="check", spec=spec.name)
    value = run_worker(
        "check_scene",
        CheckSceneArgs(spec_yaml=spec_yaml, out_dir=out_dir, render=render, backend=backend),
        Path(out_dir),
        timeout_s,
        hint="the scene could not be built or checked; simplify it (fewer objects, catalog assets) and retry",
    )
    result = CheckSceneResult.model_validate(value)
    lines = [f"{f['severity']}: {f['check']} {f['subject']}: {f['message']}" for f in result.findings]
    head = "no error findings" if result.ok else "error findings present"
    return "\n".join([head, *lines]), result.model_dump(mode="json")
