"""Typed tools for the roles: one pydantic model in, one pydantic result out, bound to a `Scope`.

A `RoleTool` is a plain function `run(args, scope) -> ToolResult` with its argument and result models
and a description written for the model. `RoleTool.bind(scope)` makes the LangChain tool a role's
model is bound to: the JSON schema the model sees is `args.model_json_schema()`, the same model the
call is validated with (a ValidationError goes back to the model as a tool message, through LangGraph's
ToolNode); the text the model reads is `result.summary()`, the structured result travels as the tool
message's artifact (and into the event log). A `ToolError` is an answer too: the message says what to
change, and the loop goes on.

The scope carries what every tool of a role may need and the model should not have to repeat: the run
folder, the current spec and its check, the plan, the subtask being rewarded, the Genesis backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field


class ToolError(ToolException):
    """A tool's answer that something is wrong, with what to do about it (the model reads the text)."""


class Scope(BaseModel):
    """What a role's tools act on (set by the graph node that runs the role)."""

    model_config = ConfigDict(frozen=True)

    run_dir: str = Field(description="The run's folder; tools write their files under it.")
    role: str = Field(description="The role whose tools these are (recorded with every call).")
    request: str = Field(default="", description="The person's request.")
    spec_yaml: str | None = Field(default=None, description="The current TaskSpec as YAML.")
    spec_dir: str | None = Field(
        default=None, description="The current spec version's folder (renders, findings, scene state, metrics batch)."
    )
    findings: list[dict] = Field(default_factory=list, description="The physics checks' findings of the current spec.")
    plan_yaml: str | None = Field(default=None, description="The current plan as YAML.")
    subtask: str | None = Field(default=None, description="The subtask being worked on (reward-writer).")
    start_states: str | None = Field(default=None, description="end_states.pt the current subtask starts from.")
    start_metrics: str | None = Field(default=None, description="Metrics batch at those start states (end_metrics.pt).")
    attempts: list[dict] = Field(default_factory=list, description="The current subtask's attempts so far.")
    backend: str = Field(default="cpu", description="Genesis backend of the worker jobs.")
    job_timeout_s: float = Field(default=900.0, gt=0, description="Wall-clock limit of one worker job.")
    memory: bool = Field(default=True, description="Whether the experience store may be read.")
    vision: bool = Field(default=False, description="Whether images go back to the model.")

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)

    def spec(self):
        """The current TaskSpec (a ToolError when there is none)."""
        from dexforge.sim.spec import TaskSpec

        if not self.spec_yaml:
            raise ToolError("there is no scene yet; this tool needs a proposed spec")
        return TaskSpec.from_yaml(self.spec_yaml)

    def plan(self):
        from dexforge.policies.subtask import Plan
        from dexforge.sim.spec import load_yaml

        if not self.plan_yaml:
            raise ToolError("there is no plan yet; this tool needs the decomposer's plan")
        return Plan.model_validate(load_yaml(self.plan_yaml))

    def tool_dir(self, tool: str) -> Path:
        """A fresh folder for one call's files: <run>/tools/<role>/<tool>-<n>/."""
        base = self.run_path / "tools" / self.role
        base.mkdir(parents=True, exist_ok=True)
        n = sum(1 for p in base.glob(f"{tool}-*"))
        while True:  # calls of one turn run side by side: the first to make a folder owns it
            n += 1
            try:
                (base / f"{tool}-{n}").mkdir()
            except FileExistsError:
                continue
            return base / f"{tool}-{n}"


class NoArgs(BaseModel):
    """This tool takes no arguments."""

    model_config = ConfigDict(extra="forbid")


class ToolResult(BaseModel):
    """A tool's structured result; `summary()` is what the model reads."""

    model_config = ConfigDict(extra="forbid")

    def summary(self) -> str:
        return self.model_dump_json(exclude_none=True)

    def images(self) -> list[str]:
        """Image files the model should see (render_view, settle_preview, rollout_frames)."""
        return []


@dataclass(frozen=True)
class RoleTool:
    """A tool a role's model can call: name, description for the model, typed arguments and result."""

    name: str
    description: str
    args: type[BaseModel]
    result: type[ToolResult]
    run: Callable[[Any, Scope], ToolResult]

    def bind(self, scope: Scope) -> BaseTool:
        def call(**kwargs: Any) -> tuple[str, dict]:
            args = self.args.model_validate(kwargs)
            result = self.run(args, scope)
            if not isinstance(result, self.result):
                raise TypeError(f"tool {self.name} returned {type(result).__name__}, not {self.result.__name__}")
            artifact = result.model_dump(mode="json")
            if images := result.images():
                artifact["_images"] = images
            return result.summary(), artifact

        return StructuredTool.from_function(
            func=call,
            name=self.name,
            description=self.description,
            args_schema=self.args,
            response_format="content_and_artifact",
            handle_tool_error=True,  # a ToolError becomes the tool message (status error)
            handle_validation_error=False,  # ToolNode formats it with the fields that failed
        )


def short(value: Any, limit: int = 200) -> Any:
    """A value as recorded in the event log: long texts (specs, programs) shortened to their size."""
    if isinstance(value, str) and len(value) > limit:
        return f"<{len(value)} characters>"
    if isinstance(value, dict):
        return {k: short(v, limit) for k, v in value.items()}
    if isinstance(value, list) and len(value) > 20:
        return [short(v, limit) for v in value[:20]] + [f"<{len(value) - 20} more>"]
    return value
