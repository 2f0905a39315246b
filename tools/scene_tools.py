"""The critic's tools: look at the scene from anywhere, read the physics findings, measure, watch it settle.

`physics_findings` and `measure` read what the scene check already recorded for this spec version
(`findings`, `scene_state.json`: every body's box in the initial layout and after settling), so they
answer at once. `render_view` and `settle_preview` build the scene in a worker job (seconds on a warm
kernel cache); their images go back to a model that has vision.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dexforge.tools.base import RoleTool, Scope, ToolError, ToolResult
from dexforge.tools.common import run_worker

Vec3 = tuple[float, float, float]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


# render_view ------------------------------------------------------------------------------------------------
class RenderViewArgs(_Args):
    eye: Vec3 = Field(description="Camera position, metres (e.g. [0, 0, 1.2] looks straight down from 1.2 m).")
    target: Vec3 = Field(default=(0.0, 0.0, 0.0), description="The point the camera looks at, metres.")
    width: int = Field(default=480, ge=64, le=1280, description="Image width, pixels.")
    height: int = Field(default=360, ge=64, le=960, description="Image height, pixels.")
    fov: float = Field(default=40.0, gt=5.0, lt=120.0, description="Vertical field of view, degrees.")


class RenderViewResult(ToolResult):
    image: str = Field(description="Path of the PNG.")
    eye: Vec3
    target: Vec3
    width: int
    height: int
    fov: float

    def summary(self) -> str:
        return (
            f"rendered {self.width}x{self.height} from eye {list(self.eye)} towards {list(self.target)} "
            f"(fov {self.fov:g} deg): {self.image}"
        )

    def images(self) -> list[str]:
        return [self.image]


def render_view(args: RenderViewArgs, scope: Scope) -> RenderViewResult:
    if all(abs(e - t) < 1e-6 for e, t in zip(args.eye, args.target, strict=True)):
        raise ToolError("eye and target are the same point; put the camera somewhere else")
    scope.spec()
    out = scope.tool_dir("render_view")
    value = run_worker(
        "render_view",
        {
            "spec_yaml": scope.spec_yaml,
            "out_path": str(out / "view.png"),
            "eye": list(args.eye),
            "target": list(args.target),
            "width": args.width,
            "height": args.height,
            "fov": args.fov,
            "backend": scope.backend,
        },
        out,
        scope.job_timeout_s,
        hint="the view could not be rendered; try another camera position",
    )
    return RenderViewResult.model_validate({k: value[k] for k in RenderViewResult.model_fields})


# physics_findings -------------------------------------------------------------------------------------------
class FindingsArgs(_Args):
    severity: Literal["error", "warning", "info"] | None = Field(
        default=None, description="Only findings of this severity; none: all of them."
    )


class FindingsResult(ToolResult):
    findings: list[dict] = Field(description="check, severity, subject, message (numbers, fix), values (SI).")
    checks_run: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        if not self.findings:
            return "the physics checks (interpenetration, settling, reach, scale, workspace) found nothing"
        return "\n".join(f"{f['severity']}: {f['check']} {f['subject']}: {f['message']}" for f in self.findings)


def physics_findings(args: FindingsArgs, scope: Scope) -> FindingsResult:
    found = [f for f in scope.findings if args.severity is None or f.get("severity") == args.severity]
    return FindingsResult(findings=found, checks_run=["interpenetration", "settling", "reach", "scale", "workspace"])


# measure ----------------------------------------------------------------------------------------------------
class MeasureArgs(_Args):
    a: str = Field(description="A body: an object's instance name, 'hand', 'palm', a fingertip, or 'table'.")
    b: str = Field(default="table", description="The other body (default the table).")
    settled: bool = Field(
        default=False, description="Measure after one second of settling with the hand still, not the initial layout."
    )


class MeasureResult(ToolResult):
    a: str
    b: str
    settled: bool
    centre_distance_m: float = Field(description="Distance between the two boxes' centres.")
    gap_m: float = Field(description="Clearance between the boxes; negative: they overlap by that much.")
    height_above_m: float = Field(description="a's bottom minus b's top (negative: a reaches below b's top).")
    overhang_m: float | None = Field(
        default=None, description="With b = table: how far a's box reaches past the table's edge (0: fully on it)."
    )
    off_table_fraction: float | None = Field(
        default=None, description="With b = table: fraction of a's footprint outside the table area."
    )
    a_box: dict = Field(description="a's box: min and max corners, metres.")
    b_box: dict = Field(description="b's box: min and max corners, metres.")

    def summary(self) -> str:
        when = "after settling" if self.settled else "in the initial layout"
        text = (
            f"{self.a} to {self.b} {when}: centres {self.centre_distance_m:.3f} m apart, gap {self.gap_m:+.3f} m, "
            f"{self.a}'s bottom {self.height_above_m:+.3f} m above {self.b}'s top"
        )
        if self.overhang_m is not None:
            text += (
                f"; reaches {self.overhang_m:.3f} m past the table edge "
                f"({self.off_table_fraction:.0%} of its footprint off the table)"
            )
        return text


def _boxes(scope: Scope, settled: bool) -> dict[str, dict]:
    if not scope.spec_dir or not (Path(scope.spec_dir) / "scene_state.json").exists():
        raise ToolError("no scene state was recorded for this spec (the scene check did not finish); use render_view")
    state = json.loads((Path(scope.spec_dir) / "scene_state.json").read_text())
    rows = state["settled"] if settled and state.get("settled") else state["bodies"]
    return {r["name"]: r for r in rows}


def _gap(lo_a, hi_a, lo_b, hi_b) -> float:
    """Euclidean distance between two boxes, or minus the smallest overlap depth when they intersect."""
    outside = [max(lo_b[i] - hi_a[i], lo_a[i] - hi_b[i], 0.0) for i in range(3)]
    if any(d > 0 for d in outside):
        return math.sqrt(sum(d * d for d in outside))
    return -min(min(hi_a[i], hi_b[i]) - max(lo_a[i], lo_b[i]) for i in range(3))


def measure(args: MeasureArgs, scope: Scope) -> MeasureResult:
    boxes = _boxes(scope, args.settled)
    for name in (args.a, args.b):
        if name not in boxes:
            raise ToolError(f"no body named '{name}'; bodies: {', '.join(sorted(boxes))}")
    a, b = boxes[args.a], boxes[args.b]
    lo_a, hi_a, lo_b, hi_b = a["aabb_min"], a["aabb_max"], b["aabb_min"], b["aabb_max"]
    ca = [(lo_a[i] + hi_a[i]) / 2 for i in range(3)]
    cb = [(lo_b[i] + hi_b[i]) / 2 for i in range(3)]
    result = {
        "a": args.a,
        "b": args.b,
        "settled": args.settled,
        "centre_distance_m": round(math.dist(ca, cb), 4),
        "gap_m": round(_gap(lo_a, hi_a, lo_b, hi_b), 4),
        "height_above_m": round(lo_a[2] - hi_b[2], 4),
        "a_box": {"min": lo_a, "max": hi_a},
        "b_box": {"min": lo_b, "max": hi_b},
    }
    if b.get("kind") == "table":
        over = max(lo_b[0] - lo_a[0], hi_a[0] - hi_b[0], lo_b[1] - lo_a[1], hi_a[1] - hi_b[1], 0.0)
        area = max((hi_a[0] - lo_a[0]) * (hi_a[1] - lo_a[1]), 1e-12)
        ix = max(0.0, min(hi_a[0], hi_b[0]) - max(lo_a[0], lo_b[0]))
        iy = max(0.0, min(hi_a[1], hi_b[1]) - max(lo_a[1], lo_b[1]))
        result["overhang_m"] = round(over, 4)
        result["off_table_fraction"] = round(1.0 - ix * iy / area, 3)
    return MeasureResult.model_validate(result)


# settle_preview ---------------------------------------------------------------------------------------------
class SettleArgs(_Args):
    seconds: float = Field(default=1.0, gt=0.0, le=5.0, description="Simulated seconds to watch.")
    frames: int = Field(default=4, ge=1, le=8, description="Frames to return, evenly spaced from t = 0.")
    eye: Vec3 | None = Field(default=None, description="Camera position; none: a 3/4 view of the objects.")
    target: Vec3 | None = Field(default=None, description="Where the camera looks; none: the objects.")


class SettlePreviewResult(ToolResult):
    frames: list[str]
    times_s: list[float]
    objects: list[dict] = Field(description="name, start_pos, end_pos, moved_m, tilt_deg, fell.")

    def summary(self) -> str:
        rows = [
            f"{o['name']}: moved {o['moved_m']:.3f} m, tilted {o['tilt_deg']:.0f} deg{', FELL' if o['fell'] else ''}"
            for o in self.objects
        ]
        return f"{len(self.frames)} frames at t = {', '.join(f'{t:.2f}' for t in self.times_s)} s; " + "; ".join(rows)

    def images(self) -> list[str]:
        return list(self.frames)


def settle_preview(args: SettleArgs, scope: Scope) -> SettlePreviewResult:
    scope.spec()
    out = scope.tool_dir("settle_preview")
    value = run_worker(
        "settle_preview",
        {
            "spec_yaml": scope.spec_yaml,
            "out_dir": str(out),
            "seconds": args.seconds,
            "frames": args.frames,
            "eye": list(args.eye) if args.eye else None,
            "target": list(args.target) if args.target else None,
            "backend": scope.backend,
        },
        out,
        scope.job_timeout_s,
        hint="the scene could not be simulated; look at the physics findings",
    )
    return SettlePreviewResult(frames=value["frames"], times_s=value["times_s"], objects=value["objects"])


TOOLS = [
    RoleTool(
        "render_view",
        "Render the scene from any camera: `eye` (position) looking at `target`, `width` x `height` pixels. Use it "
        "to look again from a side the attached renders do not show (a top view: eye [0, 0, 1.2]; a side view: "
        "eye [0, -0.8, 0.3]). The image comes back to you. Takes a few seconds (the scene is built anew).",
        RenderViewArgs,
        RenderViewResult,
        render_view,
    ),
    RoleTool(
        "physics_findings",
        "The findings of the physics checks of this scene (interpenetration, settling, reach, scale, workspace), "
        "each with its numbers and what would fix it. Errors must be fixed before training; warnings may be "
        "accepted with a reason.",
        FindingsArgs,
        FindingsResult,
        physics_findings,
    ),
    RoleTool(
        "measure",
        "Measure between two named bodies of the scene (objects by instance name, 'hand', 'palm', fingertips, "
        "'table'): centre distance, clearance (negative = overlap), height of a's bottom above b's top and, against "
        "the table, how far a reaches past its edge. In the initial layout, or after settling (`settled`). Instant.",
        MeasureArgs,
        MeasureResult,
        measure,
    ),
    RoleTool(
        "settle_preview",
        "Watch the scene settle for `seconds` with the hand still: frames (they come back to you) and, per object, "
        "how far it moved, how much it tilted and whether it fell. Use it when a finding or a render suggests an "
        "object is unstable, floating or off its support. Takes a few seconds.",
        SettleArgs,
        SettlePreviewResult,
        settle_preview,
    ),
]
