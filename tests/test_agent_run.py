"""The agent end to end: real Genesis workers, real LangGraph with its SQLite checkpointer, and either
the offline reasoner or scripted models behind a real local OpenAI-compatible HTTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
import yaml

from dexforge.agents import runner
from dexforge.agents.context import AgentContext, ModelSettings
from dexforge.agents.experience import subtask_text
from dexforge.evals.scripted import ScriptedOpenAI, image_urls
from dexforge.memory.records import SubtaskRecord
from dexforge.memory.store import ExperienceStore
from dexforge.policies.policy_files import checkpoint_misfit
from dexforge.policies.rewards.templates import render
from dexforge.sim.spec import TaskSpec

pytestmark = pytest.mark.genesis

TINY = {
    "n_envs": 8,
    "rl_budget": 1024,
    "eval_episodes": 8,
    "video": False,
    "max_retries": 1,
    "max_redecompose": 0,
    "max_improve": 0,
}


def lift_spec() -> TaskSpec:
    return TaskSpec.from_yaml((resources.files("dexforge.sim") / "examples" / "lift_cube.yaml").read_text())


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# scripted models -------------------------------------------------------------------------------------
def proposal(spec: TaskSpec) -> dict:
    return {"reasoning": "a cube to lift", "family": "lift", "spec": spec.model_dump(mode="json")}


def overlapping_spec() -> dict:
    data = lift_spec().model_dump(mode="json")
    data["objects"].append({"asset": "ball", "pose": {"pos": [0.03, 0.0, 0.03]}})  # inside the cube
    return data


PLAN = {
    "reasoning": "approach by planning, grasp by RL with the wrist frozen",
    "plan": {
        "task": "lift_cube",
        "subtasks": [
            {
                "name": "approach",
                "controller": "motion_plan",
                "active": ["wrist"],
                "goal": {"relative_to": "cube", "offset": [-0.04, 0.0, 0.029], "align_yaw": True},
                "success": [{"kind": "reached", "object": "cube", "offset": [-0.04, 0.0, 0.029], "tolerance": 0.02}],
                "episode_length": 80,
                "start": "initial",
            },
            {
                "name": "grasp",
                "controller": "rl",
                "active": ["fingers"],
                "reward_template": "grasp",
                "reward_params": {"obj": "cube"},
                "success": [{"kind": "lifted", "object": "cube", "height": 0.05}],
                "lift_test": 0.08,
                "lift_test_steps": 10,
                "episode_length": 40,
            },
        ],
    },
}

HOSTILE = "import os\n\ndef compute_reward(m):\n    os.system('true')\n    return m['cube.lift'], {}\n"


def critique_from_findings(request: dict) -> dict:
    text = json.dumps(request["messages"])
    assert "interpenetration" in text, "the critic must be given the physics findings"
    return {
        "findings": ["the ball sits inside the cube (interpenetration); the scene cannot start like this"],
        "corrections": [],
        "verdict": "revise",
    }


def test_scripted_models_recover_from_bad_answers_and_failed_training(tmp_path, monkeypatch):
    fixed = lift_spec()
    script = {
        "proposer": [
            {**proposal(fixed), "spec": {**fixed.model_dump(mode="json"), "objects": [{"asset": "piano"}]}},
            {"reasoning": "a cube and a ball", "family": "lift", "spec": overlapping_spec()},
            proposal(fixed),
        ],
        "critic": [critique_from_findings, {"findings": ["clean"], "corrections": [], "verdict": "accept"}],
        "decomposer": ['{"reasoning": "oops", "plan": {', PLAN],
        "reward_writer": [
            {"reasoning": "hostile", "subtask": "grasp", "source": HOSTILE},
            {"reasoning": "template", "subtask": "grasp", "source": render("grasp", obj="cube")},
            {
                "reasoning": "more contact weight after a failure",
                "subtask": "grasp",
                "source": render("grasp", obj="cube", weights={"contact": 3.0}),
            },
        ],
    }
    with ScriptedOpenAI(script) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="scripted", vision=False)
        models = {r: settings for r in ("proposer", "decomposer", "reward_writer")}
        models["critic"] = settings.model_copy(update={"vision": True, "stream": True})  # SSE as well as JSON
        models["decomposer"] = settings.model_copy(update={"stream": True})
        ctx = AgentContext(models=models, **TINY)
        result = runner.start("lift the cube", ctx, root=tmp_path)
        requests = {role: server.for_role(role) for role in script}

    assert result.state["node_path"] == [
        "recall",
        "propose",
        "check",
        "propose",
        "check",
        "decompose",
        "train",
        "judge",
        "write_reward",
        "train",
        "judge",
        "write_reward",
        "train",
        "judge",
        "archive",
        "report",
    ]
    assert result.status == "failed" and "grasp" in result.state["reason"]
    # every bad answer went back to its model with the error
    assert "piano" in requests["proposer"][1].text() and "rejected" in requests["proposer"][1].text()
    assert "interpenetration" in requests["proposer"][2].text()
    assert "rejected" in requests["decomposer"][1].text()
    assert "`os`" in requests["reward_writer"][1].text() or "os" in requests["reward_writer"][1].text()
    third = requests["reward_writer"][2].text()
    assert "success 0%" in third and "contact" in third  # the failure and the per-component statistics
    assert all(r.body.get("stream") for r in requests["critic"] + requests["decomposer"])
    assert not any(r.body.get("stream") for r in requests["proposer"])
    # the critic saw the renders
    assert all(len(image_urls(r)) == 3 for r in requests["critic"])
    # the run directory holds what the report shows
    summary = json.loads((result.run_dir / "summary.json").read_text())
    grasp = next(s for s in summary["subtasks"] if s["name"] == "grasp")
    sources = [(result.run_dir / a["reward"]).read_text() for a in grasp["attempts"]]
    assert len(sources) == 2 and sources[0] != sources[1]
    assert grasp["attempts"][1]["reflection"] == "more contact weight after a failure"
    assert [v["version"] for v in summary["specs"]] == [1, 2]
    assert summary["specs"][0]["critique"]["verdict"] == "revise"
    assert summary["model_calls"]["proposer"]["calls"] == 3 and summary["model_calls"]["proposer"]["input_tokens"] > 0
    assert (result.run_dir / "report.html").exists() and (result.run_dir / "checkpoints.sqlite").exists()


def test_offline_lift_reaches_the_report(tmp_path):
    ctx = AgentContext(**TINY)
    result = runner.start("lift the cube", ctx, root=tmp_path)
    # approach (planned) passes; the grasp cannot learn in 1024 steps: one reward rewrite, then it gives up
    assert result.state["node_path"] == [
        "recall", "propose", "check", "decompose", "train", "judge",
        "write_reward", "train", "judge", "write_reward", "train", "judge", "archive", "report",
    ]  # fmt: skip
    assert result.status == "failed" and "grasp" in result.state["reason"]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["backends"]["critic"] == "offline reasoner"
    assert summary["specs"][0]["renders"], "the scene was rendered"
    assert all((result.run_dir / p).exists() for p in summary["specs"][0]["renders"].values())
    rl = [s for s in summary["subtasks"] if s["controller"] == "rl"]
    assert rl and rl[0]["attempts"], "an rl subtask was trained"
    html = (result.run_dir / "report.html").read_text()
    assert "lift the cube" in html


def test_a_subtask_trained_before_starts_from_the_stored_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("DEXFORGE_MEMORY_DIR", str(tmp_path / "memory"))
    ctx = AgentContext(**{**TINY, "max_retries": 0})
    first = runner.start("lift the cube", ctx, root=tmp_path)
    trained = first.state["attempts"]["grasp"][0]
    assert trained["warm_start"] is None and "warm_start_memory" not in trained  # an empty store: from scratch
    obs, act = trained["obs_size"], trained["act_size"]
    assert act == 22 and obs > act  # the 22 finger joints (the wrist is frozen) and what they observe
    checkpoint = first.run_dir / trained["checkpoint"]
    assert checkpoint_misfit(checkpoint, obs, act) is None
    assert "differ" in checkpoint_misfit(checkpoint, obs + 1, act)
    assert "does not exist" in checkpoint_misfit(tmp_path / "none.pt", obs, act)
    # the tiny budget cannot pass the grasp, so the store does not hold it yet: record it as a long run would
    with ExperienceStore.open() as store:
        stored = SubtaskRecord(
            name="grasp",
            controller="rl",
            description=subtask_text("grasp", "rl", "lift the cube"),
            success_rate=0.9,
            checkpoint=str(checkpoint),
            obs_size=obs,
            act_size=act,
            objects=["cube"],
        )
        memory_id = store.add_subtask(stored)
    second = runner.start("lift the cube", ctx, root=tmp_path)
    started = second.state["attempts"]["grasp"][0]
    assert started["warm_start_memory"] == memory_id and started["warm_start"] == str(checkpoint)
    assert [e["id"] for e in events(second.run_dir) if e["kind"] == "warm_start"] == [memory_id]
    outcome = json.loads((second.run_dir / "subtasks" / "grasp" / "attempt0" / "outcome.json").read_text())
    assert outcome["warm_start"] == str(checkpoint)


def test_kill_minus_nine_then_resume_redoes_no_finished_subtask(tmp_path, monkeypatch):
    env = {**os.environ, "DEXFORGE_HOME": str(tmp_path / "home")}
    code = (
        "from dexforge.agents import runner; from dexforge.agents.context import AgentContext;"
        f"runner.start('lift the cube', AgentContext(**{TINY!r}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs = tmp_path / "home" / "runs"
    run_dir = None
    deadline = time.time() + 600
    try:
        while time.time() < deadline:  # wait for the first subtask to finish and the next to start training
            dirs = list(runs.glob("*")) if runs.exists() else []
            run_dir = dirs[0] if dirs else None
            if (
                run_dir is not None
                and any(e["kind"] == "trained" and e.get("subtask") == "approach" for e in events(run_dir))
                and list((run_dir / "subtasks").glob("grasp/attempt0/job-*.log"))
            ):
                time.sleep(3)
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("the run did not reach the grasp subtask in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert run_dir is not None and not (run_dir / "summary.json").exists()
    monkeypatch.setenv("DEXFORGE_HOME", str(tmp_path / "home"))
    result = runner.resume(run_dir)
    trained = [e["subtask"] for e in events(run_dir) if e["kind"] == "trained"]
    assert trained.count("approach") == 1, trained
    assert "grasp" in trained
    assert list((run_dir / "subtasks" / "grasp").glob("attempt0.interrupted-*")), "the killed attempt was kept aside"
    assert result.state["node_path"][-1] == "report" and (run_dir / "report.html").exists()
    assert result.state["node_path"].count("decompose") == 1


def test_chat_shows_the_scene_and_applies_an_amendment(tmp_path):
    ctx = AgentContext(**TINY, mode="chat")
    result = runner.start("lift the cube", ctx, root=tmp_path)
    assert result.status == "waiting" and result.interrupt["kind"] == "approve"
    assert set(result.interrupt["renders"]) == {"front", "side", "top"}
    before = yaml.safe_load(result.interrupt["spec"])
    result = runner.resume(result.run_dir, reply="make the cube smaller")
    assert result.status == "waiting"
    after = yaml.safe_load(result.interrupt["spec"])
    cube = lambda s: next(o for o in s["objects"] if o["asset"] == "cube")  # noqa: E731
    assert cube(after).get("scale", 1.0) < cube(before).get("scale", 1.0)
    assert result.state["node_path"] == ["recall", "propose", "check", "approve", "propose", "check"]
