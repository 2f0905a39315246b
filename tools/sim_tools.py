"""Simulator tools: validate a task spec, look up assets and metrics, check and render a scene.

Heavy work (anything that builds a Genesis scene) runs as a worker job; this module never imports
Genesis. Every tool returns `(summary for the model, structured result)`; a failure is a tool error
whose text says what to change.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from langchain_core.tools import ToolException, tool
from pydantic import BaseModel, Field, ValidationError

from dexforge.tools.common import progress, run_worker


class SpecArgs(BaseModel):
    spec_yaml: str = Field(description="The whole TaskSpec as YAML.")


class CheckArgs(SpecArgs):
    out_dir: str = Field(description="Folder for the renders and the job's files.")
    render: bool = Field(default=True, description="Also render front/side/top views (PNG).")
    backend: str = Field(default="cpu", description="Genesis backend: cpu or gpu.")
    timeout_s: float = Field(default=900.0, gt=0, description="Most seconds the check may take.")


class AssetArgs(BaseModel):
    query: str = Field(default="", description="A word to look for in ids, synonyms and tags; empty lists all.")


def parse_spec(spec_yaml: str):
    """The TaskSpec in `spec_yaml`, or a ToolException that names the bad field."""
    from dexforge.home import DexforgeError
    from dexforge.sim.spec import TaskSpec

    try:
        return TaskSpec.from_yaml(spec_yaml)
    except (DexforgeError, ValidationError) as exc:
        raise ToolException(f"invalid task spec: {exc}. Fix that field and send the whole spec again.") from None


@tool(args_schema=SpecArgs, response_format="content_and_artifact")
def validate_spec(spec_yaml: str) -> tuple[str, dict]:
    """Check that a TaskSpec is well-formed and grounded in the catalog (no simulation).
    Use it before proposing a spec; the error names the field to fix and the closest valid values."""
    spec = parse_spec(spec_yaml)
    return f"valid: {spec.name} with {len(spec.objects)} object(s)", {"name": spec.name}


@tool(args_schema=AssetArgs, response_format="content_and_artifact")
def find_assets(query: str = "") -> tuple[str, dict]:
    """List catalog objects matching a word (id, synonym or tag such as 'container', 'graspable'),
    with their sizes in metres and masses. Only catalog ids can appear in a TaskSpec."""
    from dexforge.sim.catalog import default_catalog

    catalog = default_catalog()
    q = query.strip().lower()
    rows = []
    for oid in catalog.object_ids():
        asset = catalog.object(oid)
        words = [*asset.names(), *asset.tags]
        if not q or any(q in w.lower() for w in words):
            rows.append({"id": asset.id, "names": list(asset.names()), "tags": list(asset.tags)})
    if not rows:
        close = difflib.get_close_matches(q, catalog.object_ids(), n=5, cutoff=0.4)
        raise ToolException(f"no asset matches '{query}'; closest ids: {close or catalog.object_ids()[:10]}")
    return "\n".join(f"{r['id']}: {', '.join(r['names'])} [{', '.join(r['tags'])}]" for r in rows), {"assets": rows}


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


@tool(args_schema=SpecArgs, response_format="content_and_artifact")
def describe_metrics(spec_yaml: str) -> tuple[str, dict]:
    """The metrics a reward program may read for this task: key, shape, unit, meaning."""
    keys = metric_keys(parse_spec(spec_yaml))
    return "\n".join(f"{k}: {v}" for k, v in keys.items()), {"metrics": keys}


@tool(args_schema=CheckArgs, response_format="content_and_artifact")
def check_scene(
    spec_yaml: str, out_dir: str, render: bool = True, backend: str = "cpu", timeout_s: float = 900.0
) -> tuple[str, dict]:
    """Build the scene in the simulator and run the physics checks (interpenetration, settling, reach,
    scale against the hand, workspace); with `render`, front/side/top images. Findings carry numbers and
    say what would fix them."""
    spec = parse_spec(spec_yaml)
    progress(event="check", spec=spec.name)
    from dexforge.sim.job_types import CheckSceneArgs, CheckSceneResult

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
