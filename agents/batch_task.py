"""One overnight task in its own process: `python -m dexforge.agents.batch_task BATCH_DIR INDEX`.

Starts the task's run (recording its run directory in `task-NNN.json` before anything else, so that a
killed batch knows where to resume), or resumes it from its LangGraph checkpoint when the batch was
interrupted while it ran. The run writes its own summary and report; the batch reads them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(batch_dir: str, index: str) -> int:
    from dexforge.agents import runner
    from dexforge.agents.batch import BATCH_FILE, Batch
    from dexforge.agents.context import AgentContext
    from dexforge.jobs import die_with_parent

    die_with_parent()
    batch = Batch.model_validate_json((Path(batch_dir) / BATCH_FILE).read_text())
    task = batch.tasks[int(index)]
    ctx = AgentContext.from_env(**batch.settings.agent)
    record = Path(batch_dir) / f"task-{task.index:03d}.json"

    def on_event(mode: str, chunk) -> None:
        if mode == "run" and not chunk.get("resumed"):
            record.write_text(json.dumps({"run_id": chunk["run_id"], "run_dir": chunk["run_dir"]}))
        elif mode == "custom" and isinstance(chunk, dict):
            print(json.dumps(chunk, default=str), flush=True)  # progress, into the task's log

    if task.run_dir and _has_checkpoint(Path(task.run_dir)):
        print(f"resuming {task.run_dir}", flush=True)
        result = runner.resume(Path(task.run_dir), on_event)
    else:
        result = runner.start(task.request, ctx, on_event)
    print(f"ended: {result.status} ({result.state.get('reason') or 'no reason'})", flush=True)
    return 0


def _has_checkpoint(run_dir: Path) -> bool:
    from dexforge.agents.runner import _config, compiled
    from dexforge.agents.runs import load_run

    if not (run_dir / "run.json").exists():
        return False
    with compiled(run_dir) as graph:
        return bool(graph.get_state(_config(load_run(run_dir)["run_id"])).values)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
