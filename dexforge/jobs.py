"""Jobs in worker subprocesses: a request model in, a result model out, files in the run directory.

Genesis allows one `gs.init` per process, a solver crash or a leak must stay in the worker, and every
job needs a timeout; so simulation, checking, rendering and training run through `run_job`. A job
names a registered function (`JOBS`) and its JSON arguments; the worker imports and calls it and
writes the returned dict as JSON. Whatever happens in the worker (an exception, a segfault, a kill,
a timeout), the caller gets a `JobResult` with `ok=False` and the reason; it never raises for that.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

# Registered job kinds -> "module:function". Only these can run in a worker.
JOBS: dict[str, str] = {
    "run_plan": "dexforge.policies.train:run_plan_job",
    "check_scene": "dexforge.sim.jobs:check_scene_job",
    "render_view": "dexforge.sim.probe:render_view_job",
    "settle_preview": "dexforge.sim.probe:settle_preview_job",
    "metrics_batch": "dexforge.sim.probe:metrics_batch_job",
    "train_subtask": "dexforge.policies.jobs:train_subtask_job",
    "collect": "dexforge.policies.jobs:collect_job",
    "dry_run_reward": "dexforge.policies.probe:dry_run_reward_job",
    "probe_motion": "dexforge.policies.probe:probe_motion_job",
    "rollout_frames": "dexforge.policies.probe:rollout_frames_job",
    "dexgen_collect": "dexforge.policies.dexgen.jobs:collect_job",
    "dexgen_train": "dexforge.policies.dexgen.jobs:train_job",
    "dexgen_eval": "dexforge.policies.dexgen.jobs:eval_job",
    "dexgen_assist": "dexforge.policies.dexgen.jobs:assist_job",
    "selftest": "dexforge.jobs:selftest_job",
}


TYPES: dict[str, tuple[str, str]] = {
    "run_plan": ("dexforge.policies.job_types:RunPlanArgs", "dexforge.policies.job_types:RunPlanResult"),
    "check_scene": ("dexforge.sim.job_types:CheckSceneArgs", "dexforge.sim.job_types:CheckSceneResult"),
    "train_subtask": ("dexforge.policies.job_types:TrainSubtaskArgs", "dexforge.policies.job_types:TrainSubtaskResult"),
    "collect": ("dexforge.policies.job_types:CollectArgs", "dexforge.policies.job_types:CollectResult"),
    "render_view": ("dexforge.sim.probe_types:RenderViewArgs", "dexforge.sim.probe_types:RenderViewResult"),
    "settle_preview": ("dexforge.sim.probe_types:SettlePreviewArgs", "dexforge.sim.probe_types:SettlePreviewResult"),
    "metrics_batch": ("dexforge.sim.probe_types:MetricsBatchArgs", "dexforge.sim.probe_types:MetricsBatchResult"),
    "dry_run_reward": ("dexforge.policies.probe_types:DryRunRewardArgs", "dexforge.policies.probe_types:DryRunResult"),
    "probe_motion": (
        "dexforge.policies.probe_types:ProbeMotionArgs",
        "dexforge.policies.probe_types:ProbeMotionResult",
    ),
    "rollout_frames": (
        "dexforge.policies.probe_types:RolloutFramesArgs",
        "dexforge.policies.probe_types:RolloutFramesResult",
    ),
    "dexgen_collect": (
        "dexforge.policies.dexgen.job_types:DexGenCollectArgs",
        "dexforge.policies.dexgen.job_types:DexGenCollectResult",
    ),
    "dexgen_train": (
        "dexforge.policies.dexgen.job_types:DexGenTrainArgs",
        "dexforge.policies.dexgen.job_types:DexGenTrainResult",
    ),
    "dexgen_eval": (
        "dexforge.policies.dexgen.job_types:DexGenEvalArgs",
        "dexforge.policies.dexgen.job_types:DexGenEvalResult",
    ),
    "dexgen_assist": (
        "dexforge.policies.dexgen.job_types:DexGenAssistArgs",
        "dexforge.policies.dexgen.job_types:DexGenAssistResult",
    ),
}
"""Job kind -> (its arguments' model, its result's model): the worker validates both sides of the call."""


def job_model(path: str) -> type[BaseModel]:
    """A model class from its "module:Name" path."""
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


class Job(BaseModel):
    kind: str = Field(description="A key of dexforge.jobs.JOBS.")
    args: dict = Field(default_factory=dict, description="JSON-serialisable keyword arguments.")
    run_dir: str = Field(description="Folder for the job's files (log, request, result).")
    timeout_s: float = Field(default=3600.0, gt=0, description="Wall-clock limit; the worker is killed after it.")
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:8])
    crash: bool = Field(default=False, description="Abort the worker as it starts (an eval suite's injected fault).")


class JobResult(BaseModel):
    ok: bool
    kind: str
    value: dict | None = None
    error: str | None = Field(default=None, description="One line: what went wrong.")
    error_type: str | None = None
    traceback: str | None = Field(default=None, description="The last lines of the worker's traceback.")
    exit_code: int | None = None
    wall_s: float = 0.0
    log: str = ""


def run_job(job: Job, on_line: Callable[[str], None] | None = None) -> JobResult:
    """Run `job` in a worker process (a spare started ahead, else a fresh one) and wait for it (at most
    `job.timeout_s`)."""
    if job.kind not in JOBS:
        return JobResult(ok=False, kind=job.kind, error=f"unknown job kind '{job.kind}'; kinds: {sorted(JOBS)}")
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    request = run_dir / f"job-{job.kind}-{job.id}.json"
    result_path = request.with_suffix(".result.json")
    log_path = request.with_suffix(".log")
    request.write_text(job.model_dump_json())
    t0 = time.time()
    with log_path.open("w") as log:
        env = child_env(PYTHONUNBUFFERED="1")
        proc = SPARES.hand(env, [str(request), str(result_path), "" if on_line else str(log_path)])
        if proc is None:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dexforge.worker", str(request), str(result_path)],
                stdout=subprocess.PIPE if on_line else log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a timeout kills its children too
                text=True,
                env=env,
            )
        if job.kind not in LIGHT_KINDS:  # the next job is likely to need Genesis too: start its worker now
            SPARES.prepare(env)
        timed_out = False
        try:
            if on_line is not None:
                _pump(proc, log, on_line, t0 + job.timeout_s)
            proc.wait(timeout=max(0.0, t0 + job.timeout_s - time.time()))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
    wall = time.time() - t0
    if timed_out:
        return JobResult(
            ok=False,
            kind=job.kind,
            error=f"timed out after {job.timeout_s:.0f} s",
            error_type="Timeout",
            exit_code=proc.returncode,
            wall_s=wall,
            log=str(log_path),
        )
    if result_path.exists():
        result = JobResult.model_validate_json(result_path.read_text())
        return result.model_copy(update={"exit_code": proc.returncode, "wall_s": wall, "log": str(log_path)})
    tail = _tail(log_path)
    why = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with status {proc.returncode}"
    return JobResult(
        ok=False,
        kind=job.kind,
        error=f"the worker {why} without a result",
        error_type="WorkerCrash",
        traceback=tail,
        exit_code=proc.returncode,
        wall_s=wall,
        log=str(log_path),
    )


SPARE_ENV = "DEXFORGE_SPARE_WORKER"
LIGHT_KINDS = frozenset({"selftest"})
"""Job kinds that do not start a spare worker for the next job (they need no Genesis, nor does what follows)."""


def spare_setting() -> bool:
    """`DEXFORGE_SPARE_WORKER`: 1 (the default) keeps a worker started ahead of the next job; 0 starts each
    worker when its job comes."""
    raw = os.environ.get(SPARE_ENV, "1").strip().lower()
    if raw in ("1", "true", "on", "yes", ""):
        return True
    if raw in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{SPARE_ENV} must be 1 or 0, got {raw!r}")


class Spares:
    """At most one worker process started ahead of its job (`python -m dexforge.worker --spare`).

    A job's start is mostly imports (Genesis alone takes about 10 s), so while one job runs the next one's
    worker imports on whatever core is free. A spare is used only by a job with the same environment as it
    was started with, and only while alive; otherwise the job starts a fresh worker as before. Spares are
    started from one long-lived thread: Linux kills a worker when the thread that started it ends
    (`die_with_parent`), and the thread that asks for one may be a pool thread that ends before its use."""

    def __init__(self):
        import queue
        import threading

        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._env: dict[str, str] | None = None
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._threading = threading

    @property
    def pid(self) -> int | None:
        """The ready spare's process id, if one is."""
        with self._lock:
            return self._proc.pid if self._proc is not None else None

    def prepare(self, env: dict[str, str]) -> None:
        """Have a spare for `env` ready soon (started in the background; nothing happens if one is)."""
        if not spare_setting():
            return
        with self._lock:
            if self._proc is not None and self._proc.poll() is None and self._env == env:
                return
            self._discard()
            self._env = env
            if self._thread is None or not self._thread.is_alive():
                self._thread = self._threading.Thread(target=self._starter, name="dexforge-spares", daemon=True)
                self._thread.start()
        self._queue.put(env)

    def hand(self, env: dict[str, str], lines: list[str]) -> subprocess.Popen | None:
        """The spare, given its job (`lines`: request, result, log), if one for `env` is alive; else None."""
        with self._lock:
            proc, self._proc = self._proc, None
            same = self._env == env
            self._env = None
        if proc is None:
            return None
        if not same or proc.poll() is not None:
            _close_spare(proc)
            return None
        try:
            assert proc.stdin is not None
            proc.stdin.write("\n".join(lines) + "\n")
            proc.stdin.close()
        except OSError:  # it died just now
            _close_spare(proc)
            return None
        return proc

    def close(self) -> None:
        """Stop the spare, if any."""
        with self._lock:
            self._env = None
            self._discard()

    def _discard(self) -> None:
        if self._proc is not None:
            _close_spare(self._proc)
            self._proc = None

    def _starter(self) -> None:
        while True:
            env = self._queue.get()
            with self._lock:
                if self._env != env or self._proc is not None:
                    continue  # asked for another environment since, or one is there already
            proc = subprocess.Popen(
                [sys.executable, "-m", "dexforge.worker", "--spare"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                text=True,
                env=env,
            )
            with self._lock:
                if self._env == env and self._proc is None:
                    self._proc = proc
                    continue
            _close_spare(proc)


def _close_spare(proc: subprocess.Popen) -> None:
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    _kill(proc)


SPARES = Spares()
atexit.register(SPARES.close)


PARENT_ENV = "DEXFORGE_PARENT_PID"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that must not outlive this one (see die_with_parent)."""
    return {**os.environ, PARENT_ENV: str(os.getpid()), **extra}


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel kill this process when the process that started it dies (Linux; elsewhere a no-op).
    `parent`: its pid, when not passed in the environment (child_env).

    Workers and overnight task processes run in their own sessions so that a timeout can kill their
    whole group; this keeps a `kill -9` of the parent (a run, a batch) from leaving them running on."""
    expected = str(parent) if parent is not None else os.environ.get(PARENT_ENV)
    if not sys.platform.startswith("linux") or not expected:
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(expected):  # the parent died before the signal was armed
        os._exit(1)


def _pump(proc: subprocess.Popen, log, on_line: Callable[[str], None], deadline: float) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        log.flush()
        on_line(line.rstrip("\n"))
        if time.time() > deadline:
            raise subprocess.TimeoutExpired(proc.args, 0)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def selftest_job(mode: str = "ok", seconds: float = 0.0) -> dict:
    """A job for testing the machinery: returns, raises, sleeps or dies as asked."""
    if mode == "raise":
        raise ValueError("selftest asked to fail")
    if mode == "sleep":
        print(f"selftest sleeping pid={os.getpid()}", flush=True)
        time.sleep(seconds)
    if mode == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "exit":
        os._exit(3)
    print("selftest progress line", flush=True)
    return {"mode": mode, "pid": os.getpid()}


def emit_progress(**fields) -> None:
    """Workers call this to report progress; the parent sees one JSON line prefixed with '@progress '."""
    print("@progress " + json.dumps(fields), flush=True)
