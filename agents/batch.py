"""Overnight batches: many tasks, unattended, each its own graph thread, run directory and process.

A batch lives in `$DEXFORGE_HOME/batches/<batch id>/`: `batch.json` (settings, deadline, every task with
its status), `events.jsonl`, one capped log per task and `report.html` (the morning report, rewritten
after every task). Requests come from the user's list first, then from the proposer, which invents
new ones steering away from what memory and the batch already hold: a candidate whose request is
closer than `max_similarity` (cosine, memory embedder) to a stored or earlier one is dropped.

Unattended: each task runs in its own process group (the agent, its worker jobs) and is killed at its
wall-time budget; a crash, a hang, a NaN or a model error is that task's recorded failure and the batch
goes on. `batch.json` is rewritten atomically at every change, so after `kill -9` or a reboot
`dexforge overnight --resume BATCH_ID` continues: a task that had finished is kept, one that was running
is resumed from its LangGraph checkpoint (its finished subtasks are not trained again), the rest run.
Finished processes are gone, logs are capped (`LOG_CAP` bytes, head and tail kept), so disk and memory
stay bounded over many hours.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dexforge.home import DexforgeError, home
from dexforge.jobs import child_env

LOG_CAP = 2_000_000
BATCH_FILE = "batch.json"
TaskStatus = Literal["pending", "running", "succeeded", "failed", "stopped"]


class BatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hours: float = Field(default=8.0, gt=0, description="Stop starting tasks after this long.")
    max_tasks: int | None = Field(default=None, ge=1, description="Stop after this many tasks.")
    requests: list[str] = Field(default_factory=list, description="Requests to run first, in order.")
    invent: bool = Field(default=True, description="Invent more requests when the list runs out.")
    seed: int = Field(default=0, description="Seed of the invented requests.")
    task_timeout_s: float = Field(default=3600.0, gt=0, description="Wall-time budget of one task.")
    max_similarity: float = Field(default=0.9, gt=0, le=1, description="Reject an invention this close to a held one.")
    agent: dict[str, Any] = Field(default_factory=dict, description="AgentContext fields for every task.")


class TaskEntry(BaseModel):
    index: int
    request: str
    source: Literal["user", "invented"] = "user"
    status: TaskStatus = "pending"
    run_id: str | None = None
    run_dir: str | None = None
    started: float | None = None
    ended: float | None = None
    attempts: int = Field(default=0, description="Times the task was started or resumed.")
    reason: str | None = None
    task_success_rate: float | None = None
    env_steps: int | None = None
    model_calls: int = 0
    cost_usd: float = 0.0
    retries: list[str] = Field(default_factory=list, description="Why subtasks were retried or re-planned.")

    @property
    def wall_s(self) -> float | None:
        return None if self.started is None or self.ended is None else round(self.ended - self.started, 1)


class Batch(BaseModel):
    batch_id: str
    created: float
    deadline: float
    settings: BatchSettings
    tasks: list[TaskEntry] = Field(default_factory=list)
    finished: bool = False
    invent_rounds: int = 0

    # files ---------------------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return batches_dir() / self.batch_id

    def save(self) -> None:
        tmp = self.dir / f"{BATCH_FILE}.tmp"
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(self.dir / BATCH_FILE)

    def log(self, kind: str, **data: Any) -> None:
        with (self.dir / "events.jsonl").open("a") as f:
            f.write(json.dumps({"t": round(time.time(), 3), "kind": kind, **data}, default=str) + "\n")

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("pending", "running", "succeeded", "failed", "stopped")}
        for t in self.tasks:
            out[t.status] += 1
        return out


def batches_dir() -> Path:
    path = home() / "batches"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_batch(settings: BatchSettings) -> Batch:
    now = time.time()
    batch_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{random.randrange(16**4):04x}"
    batch = Batch(batch_id=batch_id, created=now, deadline=now + settings.hours * 3600, settings=settings)
    batch.dir.mkdir(parents=True)
    batch.save()
    batch.log("created", settings=settings.model_dump())
    return batch


def load_batch(batch_id: str) -> Batch:
    as_path = Path(batch_id).expanduser()
    path = as_path / BATCH_FILE if (as_path / BATCH_FILE).is_file() else batches_dir() / batch_id / BATCH_FILE
    if not path.is_file():
        found = sorted(p.name for p in batches_dir().glob(f"{batch_id}*") if (p / BATCH_FILE).is_file())
        if len(found) == 1:
            path = batches_dir() / found[0] / BATCH_FILE
        else:
            known = ", ".join(sorted(p.name for p in batches_dir().iterdir())[-5:]) or "none yet"
            raise DexforgeError(f"no batch '{batch_id}' in {batches_dir()} (latest: {known})")
    return Batch.model_validate_json(path.read_text())


# choosing requests ------------------------------------------------------------------------------------
def _held_requests() -> list[str]:
    """Requests already in the experience store (nothing when it cannot be read)."""
    from dexforge.memory.store import ExperienceStore

    try:
        with ExperienceStore.open(writer=False) as store:
            return [e.record.request for e in store.list("task", limit=10_000)]
    except DexforgeError:
        return []


def too_close(candidates: list[str], held: list[str], threshold: float, embed) -> list[tuple[str, str, float]]:
    """(candidate, nearest held or earlier candidate, cosine) for every candidate at or over `threshold`."""
    import numpy as np

    if not candidates:
        return []
    vecs = np.asarray(embed(candidates + held), dtype=float)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-12)
    out = []
    kept: list[int] = []
    for i, text in enumerate(candidates):
        others = [*kept, *range(len(candidates), len(candidates) + len(held))]
        if others:
            sims = vecs[others] @ vecs[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                out.append((text, (candidates + held)[others[j]], float(sims[j])))
                continue
        kept.append(i)
    return out


def next_requests(batch: Batch, ctx, count: int, embed) -> list[str]:
    """Up to `count` new requests from the proposer, none too close to memory or this batch."""
    from dexforge.agents.roles import ask_role
    from dexforge.agents.schemas import InventBrief, Invention

    held = _held_requests() + [t.request for t in batch.tasks]
    brief = InventBrief(count=count, avoid=held[-200:], seed=batch.settings.seed * 1000 + batch.invent_rounds)
    batch.invent_rounds += 1
    answer, _ = ask_role("proposer", brief, ctx)
    assert isinstance(answer, Invention)
    rejected = too_close(answer.requests, held, batch.settings.max_similarity, embed)
    for text, nearest, sim in rejected:
        batch.log("invention_rejected", request=text, nearest=nearest, similarity=round(sim, 3))
    dropped = {r[0] for r in rejected}
    return [r for r in answer.requests if r not in dropped][:count]


# running tasks ----------------------------------------------------------------------------------------
def _cap_log(path: Path, cap: int = LOG_CAP) -> None:
    if path.exists() and path.stat().st_size > cap:
        data = path.read_bytes()
        keep = cap // 2
        path.write_bytes(data[:keep] + b"\n... (log capped by dexforge) ...\n" + data[-keep:])


def _task_file(batch: Batch, task: TaskEntry) -> Path:
    return batch.dir / f"task-{task.index:03d}.json"


def _finish_task(batch: Batch, task: TaskEntry) -> None:
    """Fill a finished task from its run's summary.json."""
    if not task.run_dir or not (Path(task.run_dir) / "summary.json").exists():
        return
    data = json.loads((Path(task.run_dir) / "summary.json").read_text())
    task.status = data.get("status") if data.get("status") in ("succeeded", "failed", "stopped") else "failed"
    task.reason = data.get("reason")
    task.task_success_rate = data.get("task_success_rate")
    task.env_steps = data.get("env_steps")
    calls = data.get("model_calls", {}).values()
    task.model_calls = sum(c.get("calls", 0) for c in calls)
    task.cost_usd = round(sum(c.get("cost_usd", 0.0) for c in calls), 6)
    task.retries = [
        f"{s['name']} attempt {a.get('attempt')}: "
        + (a.get("error") or f"success {a.get('success_rate', 0):.0%} ({a.get('stop_reason') or 'stopped'})")
        for s in data.get("subtasks", [])
        for a in s.get("attempts", [])[:-1]
    ]


def run_task(batch: Batch, task: TaskEntry, on_tick: Callable[[], None] | None = None) -> None:
    """Run (or resume) one task in its own process group, killed at its wall-time budget."""
    log_path = batch.dir / f"task-{task.index:03d}.log"
    resume = task.run_dir is not None and Path(task.run_dir).exists()
    task.status, task.attempts = "running", task.attempts + 1
    task.started = task.started or time.time()
    batch.save()
    batch.log("task_started", index=task.index, request=task.request, resume=resume)
    cmd = [sys.executable, "-m", "dexforge.agents.batch_task", str(batch.dir), str(task.index)]
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env(PYTHONUNBUFFERED="1"),
        )
        budget_end = time.time() + batch.settings.task_timeout_s
        while proc.poll() is None and time.time() < budget_end:
            _adopt_run_dir(batch, task)
            if on_tick is not None:
                on_tick()
            time.sleep(0.5)
        timed_out = proc.poll() is None
        if timed_out:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _cap_log(log_path)
    _adopt_run_dir(batch, task)
    task.ended = time.time()
    if timed_out:
        task.status = "stopped"
        task.reason = f"exceeded its wall-time budget of {batch.settings.task_timeout_s:g} s and was stopped"
    elif task.run_dir and (Path(task.run_dir) / "summary.json").exists():
        _finish_task(batch, task)
    else:
        task.status = "failed"
        tail = log_path.read_text(errors="replace")[-300:].strip().replace("\n", " | ")
        task.reason = f"the task process ended (exit code {proc.returncode}) without a result: {tail}"
    batch.save()
    batch.log("task_ended", index=task.index, status=task.status, reason=task.reason, wall_s=task.wall_s)


def _adopt_run_dir(batch: Batch, task: TaskEntry) -> None:
    """The run directory the task process created (it writes task-NNN.json first thing)."""
    path = _task_file(batch, task)
    if path.exists():
        data = json.loads(path.read_text())
        if data["run_dir"] != task.run_dir:
            task.run_id, task.run_dir = data["run_id"], data["run_dir"]
            batch.save()


def run_batch(batch: Batch, on_tick: Callable[[Batch], None] | None = None) -> Batch:
    """Run (or continue) `batch` until its deadline or task limit; the morning report is kept current."""
    from dexforge.agents.batch_report import write_report
    from dexforge.agents.context import AgentContext
    from dexforge.memory.client import MemorySettings

    ctx = AgentContext.from_env(**batch.settings.agent)
    embedder = MemorySettings.from_env().make_embedder()
    tick = (lambda: on_tick(batch)) if on_tick is not None else None
    batch.finished = False
    batch.save()
    queue = [t for t in batch.tasks if t.status in ("running", "pending")]  # a resumed batch: unfinished first
    while True:
        if not queue:
            limit = batch.settings.max_tasks
            if time.time() >= batch.deadline or (limit is not None and len(batch.tasks) >= limit):
                break
            queue = _more_tasks(batch, ctx, embedder.embed)
            if not queue:
                batch.log("out_of_requests")
                break
        task = queue.pop(0)
        if task.status == "running" and task.run_dir and (Path(task.run_dir) / "summary.json").exists():
            _finish_task(batch, task)  # it had finished when the batch was killed
            task.ended = task.ended or time.time()
            batch.save()
        else:
            run_task(batch, task, tick)
        write_report(batch)
        if tick is not None:
            tick()
    batch.finished = True
    batch.save()
    batch.log("finished", counts=batch.counts())
    write_report(batch)
    return batch


def _more_tasks(batch: Batch, ctx, embed) -> list[TaskEntry]:
    given = [r for r in batch.settings.requests if r not in {t.request for t in batch.tasks}]
    if given:
        requests, source = given[:1], "user"
    elif batch.settings.invent:
        try:
            requests, source = next_requests(batch, ctx, 1, embed), "invented"
        except DexforgeError as exc:  # the proposer could not invent (a model error): the batch ends cleanly
            batch.log("invent_failed", error=str(exc))
            return []
    else:
        return []
    entries = [
        TaskEntry(index=len(batch.tasks) + i, request=r, source=source)  # type: ignore[arg-type]
        for i, r in enumerate(requests)
    ]
    batch.tasks.extend(entries)
    batch.save()
    return entries
