"""The probe jobs behind the agent's tools, through the real worker boundary (`run_job`) on tiny scenes.

Every Genesis job costs a worker ~20 s (importing Genesis, building the scene) however small its scene, so
the module runs them on two lanes at once (`board`): one chain trains a tiny rl subtask and then films it
and records metrics from its end states; the other checks, probes and renders. Selecting one Genesis test
with -k still runs every job (about 2 minutes on 2 cores with a warm kernel cache).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dexforge.jobs import Job, JobResult, run_job
from dexforge.policies.probe_types import DryRunResult, ProbeMotionResult, RolloutFramesResult
from dexforge.policies.skrl_env import EpisodeComponentTracker
from dexforge.sim.demo import example_spec
from dexforge.sim.probe_types import MetricsBatchResult, RenderViewResult, SceneState, SettlePreviewResult
from dexforge.sim.spec import HandSpec, Lifted, ObjectSpec, Pose, TaskSpec

ROOT = Path(__file__).resolve().parents[1]
# "high" starts 7.5 cm above the table and drops; "edge" rests on the floor just past the table's edge
SCENE = TaskSpec(
    name="probe",
    hand=HandSpec(pose=Pose(pos=(-0.1, 0.0, 0.3))),
    objects=[
        ObjectSpec(name="high", asset="cube", pose=Pose(pos=(0.0, 0.1, 0.1))),
        ObjectSpec(name="edge", asset="cube", pose=Pose(pos=(0.62, 0.0, 0.025))),
    ],
    success=[Lifted(object="high")],
).to_yaml()
LIFT = example_spec("lift_cube").to_yaml()
LIFT_PLAN = (ROOT / "policies" / "examples" / "lift_cube.plan.yaml").read_text()
PRESS_PLAN = """
task: lift_cube
subtasks:
  - name: press
    controller: motion_plan
    active: [wrist]
    goal: {offset: [0.2, 0.2, 0.0], speed: 0.5}
    start: initial
"""
# The smallest rl subtask that trains: 2 PPO iterations of 2 envs. Its tolerance makes the start a success:
# the rollout test checks the plumbing (policy, frames, reward components), not learning.
REACH_PLAN = """
task: lift_cube
subtasks:
  - name: reach
    controller: rl
    active: [wrist_translation]
    reward_template: reach
    reward_params: {obj: cube}
    success: [{kind: reached, object: cube, offset: [-0.04, 0.0, 0.029], tolerance: 0.2}]
    episode_length: 20
    budget: {env_steps: 64, wall_time_s: 120}
    start: initial
"""
GOOD_REWARD = """
def compute_reward(m):
    near = torch.exp(-10.0 * m["high.palm_dist"])
    still = -m["high.linvel"].norm(dim=-1)
    return near + still, {"near": near, "still": still}
"""
NAN_REWARD = """
def compute_reward(m):
    zero = m["high.pos"][:, 2] * 0.0
    r = torch.where(m["step"] % 2 == 0, zero / zero, zero)
    return r, {"r": r}
"""


class Board:
    """Jobs run in lanes (one thread each, jobs of a lane in order); `get(name)` waits for a job's result.
    A job's function gets the board, so it can wait for an earlier job of its lane (a checkpoint)."""

    def __init__(self, root: Path, lanes: list[list[tuple[str, Callable[[Board], JobResult]]]]):
        self.root = root
        self._results: dict[str, Future] = {name: Future() for lane in lanes for name, _ in lane}
        for lane in lanes:
            threading.Thread(target=self._run, args=(lane,), daemon=True).start()

    def _run(self, lane) -> None:
        for name, fn in lane:
            try:
                self._results[name].set_result(fn(self))
            except Exception as exc:  # the test that asks for this job sees it
                self._results[name].set_exception(exc)

    def get(self, name: str) -> JobResult:
        return self._results[name].result(timeout=900)

    def job(self, kind: str, name: str, **args) -> JobResult:
        return run_job(Job(kind=kind, args=args, run_dir=str(self.root / name), timeout_s=600))

    def value(self, name: str) -> dict:
        result = self.get(name)
        assert result.ok, f"{name}: {result.error_type}: {result.error}\n{result.traceback}"
        return result.value


def _train(b: Board) -> JobResult:
    out = b.root / "reach"
    return b.job("train_subtask", "train", spec_yaml=LIFT, plan_yaml=REACH_PLAN, index=0, out_dir=str(out),
                 n_envs=2, eval_episodes=2)  # fmt: skip


def _rollout(b: Board) -> JobResult:
    checkpoint = b.value("train")["checkpoint"]
    return b.job("rollout_frames", "rollout", spec_yaml=LIFT, plan_yaml=REACH_PLAN, index=0, checkpoint=checkpoint,
                 out_dir=str(b.root / "frames"), frames=3, width=160, height=120)  # fmt: skip


def _metrics_from_ends(b: Board) -> JobResult:
    ends = b.value("train")["end_states"]
    return b.job("metrics_batch", "metrics", spec_yaml=LIFT, out_path=str(b.root / "metrics" / "batch.pt"),
                 start_states=ends, n_envs=3, steps=2)  # fmt: skip


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Board:
    root = tmp_path_factory.mktemp("probe_jobs")
    lanes = [
        [
            ("train", _train),
            ("rollout", _rollout),
            ("metrics", _metrics_from_ends),
            ("render", lambda b: b.job("render_view", "render", spec_yaml=SCENE, out_path=str(root / "view.png"),
                                       eye=[0.5, -0.5, 0.4], target=[0.0, 0.0, 0.05], width=200, height=150)),
        ],
        [
            ("check", lambda b: b.job("check_scene", "check", spec_yaml=SCENE, out_dir=str(root / "check"),
                                      render=False)),
            ("approach", lambda b: b.job("probe_motion", "approach", spec_yaml=LIFT, plan_yaml=LIFT_PLAN, index=0,
                                         n_envs=2)),
            ("press", lambda b: b.job("probe_motion", "press", spec_yaml=LIFT, plan_yaml=PRESS_PLAN, index=0,
                                      n_envs=2)),
            ("settle", lambda b: b.job("settle_preview", "settle", spec_yaml=SCENE, out_dir=str(root / "settle"),
                                       seconds=0.6, frames=3)),
        ],
    ]  # fmt: skip
    return Board(root, lanes)


# without Genesis -----------------------------------------------------------------------------------
def test_episode_components_are_split_by_outcome():
    tracker = EpisodeComponentTracker(num_envs=3)
    yes = torch.tensor([True, True, True])
    step = lambda a, done, success, counted=yes: tracker.update(  # noqa: E731
        {"a": torch.tensor(a)}, torch.tensor(done), torch.tensor(success), counted
    )
    step([1.0, 2.0, 5.0], [False, False, False], [False, False, False])
    step([3.0, 4.0, 5.0], [True, False, False], [True, False, False])  # env 0 succeeds: mean 2
    step([9.0, 6.0, 5.0], [False, True, True], [False, False, True], counted=torch.tensor([True, True, False]))
    # env 1 fails after 3 steps (mean 4); env 2 ends too but its episode was not whole (a staggered start)
    out = tracker.drain()
    assert out["success"] == {"n": 1, "mean": {"a": 2.0}, "min": {"a": 2.0}, "max": {"a": 2.0}}
    assert out["failure"] == {"n": 1, "mean": {"a": 4.0}, "min": {"a": 4.0}, "max": {"a": 4.0}}
    step([1.0, 1.0, 3.0], [False, True, True], [False, False, False])  # both restarted: one step each
    step([5.0, 0.0, 0.0], [True, False, False], [False, False, False])  # env 0: (9 + 1 + 5) / 3
    out = tracker.drain()
    assert out["success"]["n"] == 0 and out["success"]["mean"] == {}
    assert out["failure"]["n"] == 3
    assert out["failure"]["min"]["a"] == pytest.approx(1.0) and out["failure"]["max"]["a"] == pytest.approx(5.0)
    assert out["failure"]["mean"]["a"] == pytest.approx((1.0 + 3.0 + 5.0) / 3)


# scenes --------------------------------------------------------------------------------------------
@pytest.mark.genesis
def test_render_view_writes_a_png_of_the_requested_size(board):
    result = RenderViewResult.model_validate(board.value("render"))
    image = np.asarray(Image.open(result.image))
    assert image.shape == (150, 200, 3) and image.std() > 10
    assert result.eye == (0.5, -0.5, 0.4) and result.fov == 40.0


@pytest.mark.genesis
def test_settle_preview_tells_a_falling_object_from_a_resting_one(board):
    result = SettlePreviewResult.model_validate(board.value("settle"))
    assert result.times_s == pytest.approx([0.0, 0.3, 0.6])
    assert [np.asarray(Image.open(p)).shape for p in result.frames] == [(240, 320, 3)] * 3
    objects = {o.name: o for o in result.objects}
    assert objects["high"].fell and objects["high"].end_pos[2] == pytest.approx(0.025, abs=0.005)
    assert not objects["edge"].fell and objects["edge"].moved_m < 0.005
    first, last = (np.asarray(Image.open(p)).astype(int) for p in (result.frames[0], result.frames[-1]))
    assert np.abs(first - last).max(axis=-1).sum() > 0  # the drop shows in the pictures


@pytest.mark.genesis
def test_check_scene_saves_the_scene_state_and_a_metrics_batch(board):
    value = board.value("check")
    assert {"ok", "findings", "checks_run", "renders"} <= set(value)  # what it returned before
    state = SceneState.model_validate_json(Path(value["scene_state"]).read_text())
    bodies = {b.name: b for b in state.bodies}
    settled = {b.name: b for b in state.settled}
    assert {"high", "edge", "hand", "palm", "thumb_tip", "little_tip", "table"} <= set(bodies)
    assert bodies["table"].kind == "table" and bodies["table"].aabb_max == (0.6, 0.6, 0.0)
    assert bodies["table"].aabb_min == (-0.6, -0.6, -0.02)
    assert bodies["edge"].kind == "object" and bodies["edge"].aabb_max[0] > 0.6
    assert bodies["high"].aabb_min[2] == pytest.approx(0.075, abs=0.002)
    assert settled["high"].aabb_min[2] == pytest.approx(0.0, abs=0.005)  # it fell during the settling check
    assert state.settle_s == 1.0 and settled["hand"].pos == pytest.approx(bodies["hand"].pos, abs=0.005)
    batch = torch.load(value["metrics_batch"], weights_only=True)
    assert all(t.shape[0] == 16 for t in batch.values())
    assert batch["palm_pos"].shape == (16, 3) and batch["fingertip_pos"].shape == (16, 5, 3)
    assert batch["step"].tolist() == list(range(1, 17))


@pytest.mark.genesis
def test_dry_run_reward_reports_stats_or_the_error(board):
    batch = board.value("check")["metrics_batch"]
    run = lambda source: run_job(  # noqa: E731
        Job(kind="dry_run_reward", args={"source": source, "metrics_path": batch}, run_dir=str(board.root / "dry"))
    )
    good = run(GOOD_REWARD)
    assert good.ok, good.error
    result = DryRunResult.model_validate(good.value)
    assert result.ok and result.num_envs == 16 and set(result.components) == {"near", "still"}
    assert 0 < result.components["near"]["mean"] < 1 and result.components["still"]["max"] <= 0
    assert result.keys_used == ["high.linvel", "high.palm_dist"] and result.error is None
    nan = run(NAN_REWARD)
    assert nan.ok, nan.error  # a bad program is an answer, not a failed job
    result = DryRunResult.model_validate(nan.value)
    assert not result.ok and result.error_kind == "RewardNotFinite" and "NaN in 8 of 16 envs" in result.error


@pytest.mark.genesis
def test_dry_run_reward_never_imports_genesis(board):
    code = (
        "import json, sys\n"
        "from dexforge.policies.probe import dry_run_reward_job\n"
        f"r = dry_run_reward_job({GOOD_REWARD!r}, {board.value('check')['metrics_batch']!r})\n"
        "print(json.dumps({'ok': r['ok'], 'genesis': 'genesis' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == {"ok": True, "genesis": False}


# plans ---------------------------------------------------------------------------------------------
@pytest.mark.genesis
def test_probe_motion_runs_the_approach_without_touching_the_ground(board):
    result = ProbeMotionResult.model_validate(board.value("approach"))
    assert result.subtask == "approach" and result.controller == "motion_plan" and result.episodes == 2
    assert result.reached_rate == 1.0 and result.final_error_m < 0.01 and result.steps > 20
    assert not [c for c in result.collisions if c["b"] == "ground"]
    assert result.moved_objects["cube"] < 0.01


@pytest.mark.genesis
def test_probe_motion_sees_the_palm_pressed_on_the_ground(board):
    result = ProbeMotionResult.model_validate(board.value("press"))
    assert any(c["a"] == "palm" and c["b"] == "ground" and c["envs"] > 0 for c in result.collisions)
    assert result.reached_rate == 1.0  # no predicates: the palm got within 2 cm of its goal


@pytest.mark.genesis
def test_probe_motion_refuses_an_rl_subtask(tmp_path):
    result = run_job(
        Job(
            kind="probe_motion",
            args={"spec_yaml": LIFT, "plan_yaml": LIFT_PLAN, "index": 1},
            run_dir=str(tmp_path),
            timeout_s=300,
        )
    )
    assert not result.ok and result.error_type == "ValueError"
    assert "probe_motion runs planned or scripted legs" in result.error and "needs training" in result.error


@pytest.mark.genesis
def test_train_subtask_saves_end_metrics_and_episode_components(board):
    value = board.value("train")
    metrics = torch.load(value["end_metrics"], weights_only=True)
    n = torch.load(value["end_states"], weights_only=True)["robot_q"].shape[0]
    assert all(t.shape[0] == n for t in metrics.values()) and bool(metrics["success"].all())
    last = json.loads((Path(value["checkpoint"]).parent / "stats.jsonl").read_text().splitlines()[-1])
    split = last["episode_components"]
    assert set(split) == {"success", "failure"} and split["success"]["n"] + split["failure"]["n"] >= 1
    grouped = split["success"] if split["success"]["n"] else split["failure"]
    assert set(grouped["mean"]) == set(last["components"])


@pytest.mark.genesis
def test_rollout_frames_films_a_trained_policy(board):
    result = RolloutFramesResult.model_validate(board.value("rollout"))
    assert result.subtask == "reach" and result.steps == 20 and result.success
    assert [np.asarray(Image.open(p)).shape for p in result.frames] == [(120, 160, 3)] * 3
    assert {"fingertip_proximity", "palm_proximity", "object_stability"} <= set(result.components)


@pytest.mark.genesis
def test_metrics_batch_from_saved_end_states(board):
    result = MetricsBatchResult.model_validate(board.value("metrics"))
    batch = torch.load(result.path, weights_only=True)
    assert result.num_envs == 3 and sorted(batch) == result.keys
    assert all(t.shape[0] == 3 and t.device.type == "cpu" for t in batch.values())
    assert batch["step"].tolist() == [2, 2, 2]
    # the envs start from the reach's end states: two small steps (at most 4 mm of wrist target) from one of
    # them, where the trained policy has moved the wrist's targets away from the layout's
    ends = torch.load(board.value("train")["end_states"], weights_only=True)["targets"][:, :3]
    layout = torch.tensor([-0.04, 0.0, 0.2])
    assert float((ends - layout).abs().amax(-1).min()) > 0.01
    gap = (batch["targets"][:, None, :3] - ends[None]).abs().amax(-1).min(dim=1).values
    assert float(gap.max()) < 0.0045
