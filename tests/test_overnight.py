"""Overnight batches: invented tasks, the diversity measure, failure causes, a task stopped at its budget,
and a batch killed with -9 and resumed that records every task once (real graph, real Genesis workers)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from dexforge.agents.batch import BATCH_FILE, Batch, BatchSettings, load_batch, new_batch, run_batch, too_close
from dexforge.agents.batch_report import cause, diversity
from dexforge.agents.context import AgentContext
from dexforge.agents.offline.understand import parse_request
from dexforge.agents.roles import ask_role
from dexforge.agents.schemas import InventBrief
from dexforge.cli import main
from dexforge.memory.embeddings import HashingEmbedder
from dexforge.sim.catalog import default_catalog


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEXFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEXFORGE_MEMORY_DIR", raising=False)
    return tmp_path / "home"


def test_diversity_is_the_mean_pairwise_cosine_similarity():
    vectors = {"a": [1.0, 0.0], "b": [0.0, 2.0], "c": [3.0, 3.0]}  # cosines: a-b 0, a-c 1/sqrt2, b-c 1/sqrt2
    score = diversity(["a", "b", "c"], lambda texts: [vectors[t] for t in texts])
    assert score == pytest.approx((0 + 2 / math.sqrt(2)) / 3)
    assert diversity(["a"], lambda texts: [vectors[t] for t in texts]) is None
    same = diversity(["lift the cube", "lift the cube"], HashingEmbedder().embed)
    assert same == pytest.approx(1.0)


def test_invented_requests_are_groundable_varied_and_steer_away_from_what_is_held():
    ideas, _ = ask_role("proposer", InventBrief(count=10, seed=1), AgentContext())
    catalog = default_catalog()
    families = {parse_request(r, catalog, None).family for r in ideas.requests}
    assert len(ideas.requests) == 10 and families == {"lift", "place", "rotate", "push", "open"}
    again, _ = ask_role("proposer", InventBrief(count=10, seed=1, avoid=ideas.requests[:5]), AgentContext())
    assert not set(again.requests) & set(ideas.requests[:5])
    embed = HashingEmbedder().embed
    rejected = too_close(["pick up the cube", "open the drawer", "open the drawer"], ["pick up the cube"], 0.9, embed)
    assert [(r[0], r[1]) for r in rejected] == [
        ("pick up the cube", "pick up the cube"),
        ("open the drawer", "open the drawer"),  # the earlier candidate of this batch
    ]


def test_failures_are_grouped_by_cause():
    assert cause("exceeded its wall-time budget of 60 s and was stopped") == "stopped at its wall-time budget"
    reason = "subtask 'grasp' failed after 3 attempt(s): attempt 2: success 12% < 50%"
    assert cause(reason) == "subtask 'grasp' did not reach the pass rate"
    assert cause("RoleError: proposer: no valid answer after 3 attempt(s)") == "a role gave no valid answer"
    assert cause("the task process ended (exit code -9) without a result") == "a process crashed"
    assert cause("something odd 12 times") == "other: something odd N times"


def test_a_task_over_its_budget_is_stopped_and_the_batch_goes_on(home):
    settings = BatchSettings(
        hours=1,
        requests=["lift the cube", "juggle the piano"],
        invent=False,
        task_timeout_s=8.0,
        agent={"render": False},
    )
    batch = run_batch(new_batch(settings))
    first, second = batch.tasks
    assert first.status == "stopped" and "wall-time budget of 8 s" in first.reason
    assert second.status in ("failed", "stopped") and second.attempts == 1  # the batch went on to it
    assert batch.finished and (batch.dir / "report.html").exists()
    assert "stopped at its wall-time budget" in (batch.dir / "report.html").read_text()
    assert not [
        p
        for p in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
        if "dexforge.worker" in p and str(home) in p
    ]  # no worker left behind


@pytest.mark.genesis
def test_a_batch_killed_mid_way_and_resumed_records_every_task_once(home):
    requests = ["lift the cube", "pick up the apple", "put the ball in the bowl"]
    args = [
        "overnight",
        "--no-invent",
        "--stop-after",
        "decompose",
        "--no-render",
        "--no-live",
        "--task-timeout",
        "600",
    ]
    args += [a for r in requests for a in ("-r", r)]
    env = {**os.environ, "DEXFORGE_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import sys; from dexforge.cli import main; sys.exit(main({args!r}))"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    batch_file = None
    try:
        deadline = time.time() + 600
        while time.time() < deadline:  # kill it while the second task runs
            found = list((home / "batches").glob(f"*/{BATCH_FILE}")) if (home / "batches").exists() else []
            if found:
                batch_file = found[0]
                tasks = json.loads(batch_file.read_text())["tasks"]
                if len(tasks) >= 2 and tasks[1]["status"] == "running" and tasks[1]["run_dir"]:
                    time.sleep(2)
                    break
            assert proc.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.3)
        else:
            pytest.fail("the batch never reached its second task")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = Batch.model_validate_json(batch_file.read_text())
    assert killed.tasks[0].status == "stopped" and not killed.finished
    assert main(["overnight", "--resume", killed.batch_id, "--no-live"]) == 0
    batch = load_batch(killed.batch_id)
    assert batch.finished and [t.request for t in batch.tasks] == requests
    assert [t.status for t in batch.tasks] == ["stopped"] * 3  # each planned once (stop_after=decompose)
    assert batch.tasks[0].attempts == 1 and batch.tasks[1].attempts == 2 and batch.tasks[2].attempts == 1
    assert len({t.run_dir for t in batch.tasks}) == 3
    page = (batch.dir / "report.html").read_text()
    assert all(r in page for r in requests) and "Diversity" in page
