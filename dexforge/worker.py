"""Worker entry point: `python -m dexforge.worker REQUEST.json RESULT.json` (see dexforge.jobs)."""

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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
