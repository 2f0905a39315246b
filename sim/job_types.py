"""The typed arguments and results of the simulation jobs the agent runs (pydantic only: the agent process
imports this without torch or Genesis). The worker validates a job's arguments with its model before the
call and its result after it (dexforge.jobs.TYPES); the caller reads the result model, never a dict."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckSceneArgs(_Model):
    spec_yaml: str = Field(description="The whole TaskSpec as YAML.")
    out_dir: str = Field(description="Folder for the renders, the scene state and the metrics batch.")
    render: bool = Field(default=True, description="Also render front/side/top views (PNG).")
    backend: str = Field(default="cpu", description="Genesis backend: cpu or gpu.")


class CheckSceneResult(_Model):
    ok: bool = Field(description="No error findings.")
    findings: list[dict] = Field(default_factory=list, description="sim.checks.Finding dumps.")
    checks_run: list[str] = Field(default_factory=list)
    renders: dict[str, str] = Field(default_factory=dict, description="View -> PNG path.")
    scene_state: str | None = Field(default=None, description="scene_state.json: the bodies' boxes.")
    metrics_batch: str | None = Field(default=None, description="metrics_batch.pt: a batch of the env's metrics.")
