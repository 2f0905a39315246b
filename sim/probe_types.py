"""Results of the simulator probes (`dexforge.sim.probe`, `check_scene`), importable without torch or Genesis.

The agent process reads these from worker jobs' JSON (`Model.model_validate(job_result.value)`); the
descriptions are what a language model sees. Lengths are metres, angles degrees, times seconds, in the
world frame: z up, the table's top at z = 0, the workspace centred on the origin.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Vec3 = tuple[float, float, float]


class BodyBox(BaseModel):
    """Where one body is: a reference point and its axis-aligned bounding box."""

    name: str = Field(
        description="The object's instance name in the spec; 'hand' (the whole robot hand), 'arm' (an arm mount), "
        "'palm', 'thumb_tip', 'index_tip', 'middle_tip', 'ring_tip', 'little_tip' (its parts), or 'table'."
    )
    kind: Literal["object", "hand", "table"] = Field(
        description="object: a body of the spec; hand: the robot or one of its parts; table: the table area."
    )
    pos: Vec3 = Field(
        description="Reference point, m: an object's bounding-box centre, the palm's centre for 'hand' and 'palm', "
        "the fingertip for a '*_tip', the centre of the table's top for 'table'."
    )
    aabb_min: Vec3 = Field(description="Lowest x, y, z of the body's collision geometry, m.")
    aabb_max: Vec3 = Field(description="Highest x, y, z of the body's collision geometry, m.")


class SceneState(BaseModel):
    """The scene's bodies as laid out and after settling with the hand held still."""

    bodies: list[BodyBox] = Field(description="Every body in the initial layout (no randomisation).")
    settled: list[BodyBox] = Field(
        description="The same bodies after `settle_s` seconds of simulation with the hand holding its pose: "
        "an object that falls, slides or tips shows it here."
    )
    settle_s: float = Field(description="Simulated seconds between `bodies` and `settled`.")


class RenderViewResult(BaseModel):
    """One picture of the scene's initial layout from a chosen camera."""

    image: str = Field(description="Path of the PNG.")
    eye: Vec3 = Field(description="Camera position, m.")
    target: Vec3 = Field(description="Point the camera looks at, m.")
    width: int = Field(description="Image width, pixels.")
    height: int = Field(description="Image height, pixels.")
    fov: float = Field(description="Vertical field of view, degrees.")


class SettleObject(BaseModel):
    """What one object did while the scene settled with no actions."""

    name: str = Field(description="The object's instance name in the spec.")
    start_pos: Vec3 = Field(description="Bounding-box centre at t = 0, m.")
    end_pos: Vec3 = Field(description="Bounding-box centre at the end, m.")
    moved_m: float = Field(description="Distance between start and end, m.")
    tilt_deg: float = Field(description="Angle between its start and end orientation, degrees.")
    fell: bool = Field(
        description="It dropped more than 2 cm or tilted more than 20 degrees: it does not rest where it starts "
        "(lower it onto its support, or give it a stable pose)."
    )


class SettlePreviewResult(BaseModel):
    """The scene settling with the hand held still: pictures over time and each object's motion."""

    frames: list[str] = Field(description="PNG paths, in time order; the first at t = 0.")
    times_s: list[float] = Field(description="Simulated time of each frame, s.")
    objects: list[SettleObject] = Field(description="Each object's displacement and tilt over the preview.")


class MetricsBatchResult(BaseModel):
    """A batch of the environment's metrics dict, saved for dry-running reward programs."""

    path: str = Field(description="torch.save file: dict of metric key -> CPU tensor with num_envs rows first.")
    num_envs: int = Field(description="Rows of every tensor in the batch.")
    keys: list[str] = Field(description="The metric keys in the batch (the keys a reward program may read).")


# the jobs' arguments (dexforge.jobs.TYPES: the worker validates them before the call) ---------------------
class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RenderViewArgs(_Args):
    spec_yaml: str = Field(description="The TaskSpec as YAML.")
    out_path: str = Field(description="Where to write the PNG.")
    eye: list[float] = Field(description="Camera position (x, y, z), m.")
    target: list[float] = Field(description="Point the camera looks at (x, y, z), m.")
    width: int = Field(default=640, description="Image width, pixels (16 to 4096).")
    height: int = Field(default=480, description="Image height, pixels (16 to 4096).")
    fov: float = Field(default=40.0, description="Vertical field of view, degrees (1 to 170).")
    backend: str = Field(default="cpu", description="Genesis backend: cpu or gpu.")


class SettlePreviewArgs(_Args):
    spec_yaml: str = Field(description="The TaskSpec as YAML.")
    out_dir: str = Field(description="Folder for the PNG frames.")
    seconds: float = Field(default=1.0, description="Simulated time to preview, s (up to 10).")
    frames: int = Field(default=4, description="Pictures, evenly spaced in time from t = 0 (1 to 30).")
    eye: list[float] | None = Field(default=None, description="Camera position, m; default a 3/4 view of the objects.")
    target: list[float] | None = Field(default=None, description="Point the camera looks at, m; default the objects.")
    width: int = Field(default=320, description="Image width, pixels.")
    height: int = Field(default=240, description="Image height, pixels.")
    backend: str = Field(default="cpu", description="Genesis backend: cpu or gpu.")


class MetricsBatchArgs(_Args):
    spec_yaml: str = Field(description="The TaskSpec as YAML.")
    out_path: str = Field(description="Where to torch.save the batch.")
    start_states: str | None = Field(default=None, description="end_states.pt to start from; None: the layout.")
    n_envs: int = Field(default=16, description="Envs (rows of the batch).")
    steps: int = Field(default=8, description="Steps of small random actions before the batch is taken.")
    backend: str = Field(default="cpu", description="Genesis backend: cpu or gpu.")
