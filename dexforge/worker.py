"""Worker entry point: `python -m dexforge.worker REQUEST.json RESULT.json` (see dexforge.jobs).

`python -m dexforge.worker --spare` is a worker started ahead of its job (dexforge.jobs keeps one ready):
it imports what jobs need (Genesis takes about 10 s of a job's start), then reads its job from stdin as
three lines: REQUEST, RESULT and LOG (the file its output goes to; an empty line: the stdout it was started
with). Closing its stdin with nothing written lets it go.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path


def main(request_path: str, result_path: str) -> int:
    from dexforge.jobs import JOBS, TYPES, Job, JobResult, die_with_parent, job_model

    die_with_parent()
    job = Job.model_validate_json(Path(request_path).read_text())
    if job.crash:  # an injected fault: die as a crashing simulator would, with no result written
        os.abort()
    module_name, func_name = JOBS[job.kind].split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        args = job.args
        if job.kind in TYPES:  # both sides of a typed job are validated at the boundary
            args_model, result_model = (job_model(p) for p in TYPES[job.kind])
            args = args_model.model_validate(args).model_dump()
        value = func(**args)
        if job.kind in TYPES:
            value = result_model.model_validate(value).model_dump(mode="json")
        result = JobResult(ok=True, kind=job.kind, value=value)
    except Exception as exc:  # the job boundary: every failure becomes a result the caller can read
        tb = traceback.format_exc().splitlines()
        message = " ".join(str(exc).split()) or type(exc).__name__
        result = JobResult(
            ok=False, kind=job.kind, error=message, error_type=type(exc).__name__, traceback="\n".join(tb[-12:])
        )
    tmp = Path(result_path).with_suffix(".tmp")
    tmp.write_text(result.model_dump_json())
    tmp.replace(result_path)
    return 0 if result.ok else 1


def spare() -> int:
    """A worker started before its job: preload, then run the job read from stdin (module docstring)."""
    from dexforge.jobs import die_with_parent
    from dexforge.sim.genesis_init import preload

    die_with_parent()
    started_with = os.dup(1)  # where the output goes when no log file is named
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # nothing written while waiting may fill a pipe nobody reads yet
    os.dup2(quiet, 2)
    os.close(quiet)
    preload()
    # three lines, not "until end of file": a process forked from the parent may hold the pipe open
    request, result, log = (sys.stdin.readline().rstrip("\n") for _ in range(3))
    if not request or not result:
        return 0
    target = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if log else started_with
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    if target != started_with:
        os.close(started_with)
    return main(request, result)


if __name__ == "__main__":
    if sys.argv[1:] == ["--spare"]:
        sys.exit(spare())
    sys.exit(main(sys.argv[1], sys.argv[2]))
