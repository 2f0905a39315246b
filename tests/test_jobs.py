"""Worker jobs: results come back, and failures of every kind come back as results, never as crashes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from dexforge.jobs import Job, run_job


def gone(pid: int, within: float = 20.0) -> bool:
    """Whether process `pid` ends within `within` seconds (if not, it is killed and False comes back)."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return False


def job(tmp_path, mode: str, timeout: float = 60.0, **args) -> Job:
    return Job(kind="selftest", args={"mode": mode, **args}, run_dir=str(tmp_path), timeout_s=timeout)


def test_a_job_returns_its_value_from_another_process(tmp_path):
    result = run_job(job(tmp_path, "ok"))
    assert result.ok and result.value["mode"] == "ok"
    assert result.value["pid"] != os.getpid()
    assert "selftest progress line" in Path(result.log).read_text()


def test_progress_lines_reach_the_caller(tmp_path):
    lines: list[str] = []
    result = run_job(job(tmp_path, "ok"), on_line=lines.append)
    assert result.ok and "selftest progress line" in lines


def test_an_exception_is_reported_with_its_type_and_traceback(tmp_path):
    result = run_job(job(tmp_path, "raise"))
    assert not result.ok and result.error_type == "ValueError"
    assert result.error == "selftest asked to fail" and "selftest_job" in result.traceback


def test_a_crash_or_exit_does_not_take_the_caller_down(tmp_path):
    crashed = run_job(job(tmp_path, "segfault"))
    assert not crashed.ok and crashed.error_type == "WorkerCrash" and "signal 11" in crashed.error
    exited = run_job(job(tmp_path, "exit"))
    assert not exited.ok and exited.exit_code == 3 and "status 3" in exited.error


def test_a_hanging_job_is_killed_at_its_timeout(tmp_path):
    result = run_job(job(tmp_path, "sleep", timeout=3.0, seconds=60.0))
    assert not result.ok and result.error_type == "Timeout" and result.wall_s < 30


def test_unknown_kinds_are_refused(tmp_path):
    result = run_job(Job(kind="rm_rf", run_dir=str(tmp_path)))
    assert not result.ok and "unknown job kind" in result.error


def test_a_worker_dies_with_the_process_that_started_it(tmp_path):
    code = (
        "from dexforge.jobs import Job, run_job;"
        f"run_job(Job(kind='selftest', args={{'mode': 'sleep', 'seconds': 120}}, run_dir={str(tmp_path)!r}))"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    worker = None
    deadline = time.time() + 60
    while worker is None and time.time() < deadline:
        for log in tmp_path.glob("job-selftest-*.log"):
            found = re.search(r"pid=(\d+)", log.read_text())
            worker = int(found.group(1)) if found else None
        time.sleep(0.2)
    assert worker is not None, "the worker never started"
    parent.send_signal(signal.SIGKILL)  # the parent alone, as `kill -9 PID` would
    parent.wait()
    assert gone(worker), "the worker outlived the process that started it"


def test_typed_jobs_are_validated_on_both_sides_of_the_boundary(tmp_path):
    """A typed job's arguments are checked against its model in the worker before the call (a misnamed or
    missing argument is a clear failure, not a TypeError deep inside), and every typed kind names real models."""
    from dexforge.jobs import JOBS, TYPES, job_model

    result = run_job(Job(kind="check_scene", args={"spec_yaml": "name: x", "outdir": "/tmp"}, run_dir=str(tmp_path)))
    assert not result.ok and result.error_type == "ValidationError"
    assert "out_dir" in result.error and "outdir" in result.error
    for kind, (args, out) in TYPES.items():
        assert kind in JOBS
        module, name = JOBS[kind].split(":")
        import importlib
        import inspect

        params = set(inspect.signature(getattr(importlib.import_module(module), name)).parameters)
        assert set(job_model(args).model_fields) == params, kind  # the model is the function's signature
        assert job_model(out).model_fields


def test_dexgen_and_run_plan_jobs_are_typed(tmp_path):
    """The DexGen jobs and run_plan are typed too: a misspelt argument fails in the worker before any work."""
    from dexforge.jobs import TYPES

    assert {"run_plan", "dexgen_collect", "dexgen_train", "dexgen_eval", "dexgen_assist"} <= set(TYPES)
    result = run_job(Job(kind="dexgen_train", args={"out": str(tmp_path), "epoch": 3}, run_dir=str(tmp_path)))
    assert not result.ok and result.error_type == "ValidationError" and "epoch" in result.error
    assert not (tmp_path / "dexgen.pt").exists()


# spare workers: started ahead of their job ------------------------------------------------------------------
def ready_spare(env: dict[str, str], timeout: float = 30.0) -> int:
    from dexforge.jobs import SPARES

    SPARES.prepare(env)
    deadline = time.time() + timeout
    while SPARES.pid is None and time.time() < deadline:
        time.sleep(0.05)
    assert SPARES.pid is not None, "no spare worker started"
    return SPARES.pid


def test_a_spare_worker_runs_the_next_job_and_writes_its_log(tmp_path):
    from dexforge.jobs import SPARES, child_env

    spare = ready_spare(child_env(PYTHONUNBUFFERED="1"))
    result = run_job(job(tmp_path, "ok"))
    assert result.ok and result.value["pid"] == spare  # the job ran in the spare, not a fresh worker
    assert "selftest progress line" in Path(result.log).read_text()
    assert SPARES.pid is None  # taken; a light job (selftest) starts no new one

    spare = ready_spare(child_env(PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    result = run_job(job(tmp_path, "ok"), on_line=lines.append)
    assert result.ok and result.value["pid"] == spare and "selftest progress line" in lines


def test_a_spare_started_for_another_environment_is_not_used(tmp_path):
    from dexforge.jobs import child_env

    spare = ready_spare(child_env(PYTHONUNBUFFERED="1", DEXFORGE_SOMETHING_ELSE="1"))
    result = run_job(job(tmp_path, "ok"))
    assert result.ok and result.value["pid"] != spare
    assert gone(spare), "the unused spare kept running"  # and it was stopped


def test_failures_in_a_spare_come_back_as_results(tmp_path):
    from dexforge.jobs import child_env

    ready_spare(child_env(PYTHONUNBUFFERED="1"))
    result = run_job(job(tmp_path, "sleep", timeout=20.0, seconds=120.0))  # preloading counts in its time
    assert not result.ok and result.error_type == "Timeout"
    ready_spare(child_env(PYTHONUNBUFFERED="1"))
    crashed = run_job(job(tmp_path, "segfault"))
    assert not crashed.ok and crashed.error_type == "WorkerCrash" and "signal 11" in crashed.error


def test_a_genesis_job_starts_a_spare_and_the_setting_turns_it_off(tmp_path, monkeypatch):
    import pytest

    from dexforge.jobs import SPARES, spare_setting

    SPARES.close()
    run_job(Job(kind="check_scene", args={"spec_yaml": "name: x", "outdir": "/tmp"}, run_dir=str(tmp_path)))
    deadline = time.time() + 20
    while SPARES.pid is None and time.time() < deadline:
        time.sleep(0.05)
    assert SPARES.pid is not None
    SPARES.close()
    monkeypatch.setenv("DEXFORGE_SPARE_WORKER", "0")
    assert not spare_setting()
    run_job(Job(kind="check_scene", args={"spec_yaml": "name: x", "outdir": "/tmp"}, run_dir=str(tmp_path)))
    time.sleep(1.0)
    assert SPARES.pid is None
    monkeypatch.setenv("DEXFORGE_SPARE_WORKER", "sometimes")
    with pytest.raises(ValueError, match="DEXFORGE_SPARE_WORKER"):
        spare_setting()


def test_a_spare_dies_with_the_process_that_started_it(tmp_path):
    code = (
        "import time; from dexforge.jobs import SPARES, child_env;"
        "SPARES.prepare(child_env());"
        "exec('while SPARES.pid is None: time.sleep(0.05)');"
        "print(SPARES.pid, flush=True); time.sleep(120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    spare = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert gone(spare), "the spare outlived the process that started it"


def test_a_spare_takes_its_job_while_a_forked_process_holds_its_stdin(tmp_path):
    """A process forked from this one (a sandbox, a pool) inherits the spare's stdin pipe and keeps it open:
    the spare reads its three lines, it does not wait for the end of the file."""
    from dexforge.jobs import child_env

    spare = ready_spare(child_env(PYTHONUNBUFFERED="1"))
    child = os.fork()
    if child == 0:  # holds every inherited descriptor, the spare's stdin among them
        time.sleep(90)
        os._exit(0)
    try:
        result = run_job(job(tmp_path, "ok", timeout=45.0))
        assert result.ok and result.value["pid"] == spare
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
