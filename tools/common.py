"""What every tool shares: running a worker job, reporting progress, calling a tool from a node."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel

CRASH_JOBS: ContextVar[frozenset[str]] = ContextVar("dexforge_crash_jobs", default=frozenset())
"""Job kinds whose worker aborts as it starts (an eval suite's worker_crash fault, set by the train node)."""

TOOL_CALLS: ContextVar[Callable[[dict], None] | None] = ContextVar("dexforge_tool_calls", default=None)
"""Where `call_tool` reports each call (the runner logs them to the run's events for eval suites)."""


def _brief_args(args: dict) -> dict:
    """Tool arguments as recorded: long texts (specs, plans, programs) shortened to their size."""
    return {k: (f"<{len(v)} characters>" if isinstance(v, str) and len(v) > 200 else v) for k, v in args.items()}


def progress(**event) -> None:
    """Send a progress event to whoever streams the graph (custom stream mode); a no-op outside a graph."""
    try:
        from langgraph.config import get_stream_writer

        writer = get_stream_writer()
    except (RuntimeError, KeyError, ImportError):
        return
    writer(event)


def run_worker(kind: str, args: dict | BaseModel, run_dir: Path, timeout_s: float, hint: str) -> dict:
    """Run a registered job in a worker process, forwarding its progress lines; its value, or a
    ToolException with the reason and `hint`. Typed arguments (a job's args model) are sent as JSON."""
    from dexforge.jobs import Job, run_job

    def on_line(line: str) -> None:
        if line.startswith("@progress "):
            try:
                progress(**json.loads(line[len("@progress ") :]))
            except json.JSONDecodeError:
                return

    crash = CRASH_JOBS.get()
    if isinstance(args, BaseModel):
        args = args.model_dump(mode="json")
    job = Job(kind=kind, args=args, run_dir=str(run_dir), timeout_s=timeout_s, crash=kind in crash)
    result = run_job(job, on_line=on_line)
    if not result.ok:
        kind_text = f"{result.error_type}: " if result.error_type else ""
        raise ToolException(f"{kind} failed ({kind_text}{result.error}); {hint}. Log: {result.log}")
    return result.value or {}


class ToolFailed(Exception):
    """A tool answered with an error (the text is what the model would see)."""

    def __init__(self, tool: str, message: str):
        super().__init__(message)
        self.tool, self.message = tool, message


def call_tool(tool: BaseTool, **args) -> dict:
    """Invoke `tool` as a model's tool call would and return its structured result; raise ToolFailed
    with the tool error's text when it fails (bad arguments included)."""
    tool.handle_tool_error = True
    tool.handle_validation_error = True
    call = {"type": "tool_call", "name": tool.name, "args": args, "id": f"call_{tool.name}"}
    message = tool.invoke(call)
    if not isinstance(message, ToolMessage):
        raise TypeError(f"tool {tool.name} answered {type(message).__name__}, not a ToolMessage")
    failed = message.status == "error" or message.artifact is None
    if (record := TOOL_CALLS.get()) is not None:
        error = str(message.content)[:500] if failed else None
        record({"role": "graph", "name": tool.name, "args": _brief_args(args), "ok": not failed, "error": error})
    if failed:
        raise ToolFailed(tool.name, str(message.content))
    return message.artifact


__all__ = ["ToolException", "ToolFailed", "call_tool", "progress", "run_worker"]
