"""Run directories: `runs/<run_id>/` holds the request, every spec version with its renders and
critique, the plans, per subtask its attempts, the dataset, the report, an event log and the LangGraph
checkpoint database (`checkpoints.sqlite`), so that `dexforge resume RUN_ID` can continue a run.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

from dexforge.agents.context import AgentContext
from dexforge.home import DexforgeError, runs_dir

RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints.sqlite"


class RunNotFound(DexforgeError):
    """No run with that id (or folder)."""


def new_run_id(request: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", request.lower()).strip("-")[:40].strip("-") or "task"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


def create_run(request: str, ctx: AgentContext, root: Path | None = None) -> tuple[str, Path]:
    """A fresh run directory with run.json (request, settings, backends); returns (run id, path)."""
    run_id = new_run_id(request)
    path = (root or runs_dir()) / run_id
    path.mkdir(parents=True, exist_ok=False)
    meta = {
        "run_id": run_id,
        "request": request,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "context": json.loads(ctx.model_dump_json()),
        "backends": {role: ctx.model_for(role).label for role in ctx.models},
    }
    (path / RUN_FILE).write_text(json.dumps(meta, indent=2))
    return run_id, path


def find_run(run: str, root: Path | None = None) -> Path:
    """A run directory from its id (or a unique prefix of it) or its path."""
    as_path = Path(run).expanduser()
    if (as_path / RUN_FILE).is_file():
        return as_path
    base = root or runs_dir()
    matches = sorted(p for p in base.glob(f"{run}*") if (p / RUN_FILE).is_file())
    if len(matches) == 1:
        return matches[0]
    if not matches:
        recent = sorted((p.name for p in base.iterdir() if (p / RUN_FILE).is_file()), reverse=True)[:5]
        raise RunNotFound(f"no run '{run}' in {base}; recent runs: {recent or 'none'}")
    raise RunNotFound(f"'{run}' matches {len(matches)} runs: {[m.name for m in matches[:5]]}; give more of the id")


def load_run(path: Path) -> dict:
    return json.loads((path / RUN_FILE).read_text())


def log_event(run_dir: str | Path, kind: str, **data) -> None:
    """Append one event to the run's event log (events.jsonl)."""
    record = {"t": round(time.time(), 3), "kind": kind, **data}
    with (Path(run_dir) / "events.jsonl").open("a") as f:
        f.write(json.dumps(record, default=str) + "\n")


def rel(run_dir: str | Path, path: str | Path | None) -> str | None:
    """`path` relative to the run directory (as the report expects), or None."""
    if path is None:
        return None
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(p)
