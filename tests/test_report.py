"""The run report renders a full run directory, a sparse one, and refuses a directory with no summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dexforge.agents.report import SummaryMissingError, write_report
from dexforge.home import DexforgeError

REWARD = 'def compute_reward(m):\n    r = m["grasp"] - 0.1 * m["dist"]\n    return r, {"grasp": m["grasp"]}\n'
SPEC = "objects:\n  - name: cube\n    pos: [0.1, 0.0, 0.02]\n"
REQUEST = "lift the <script>alert(1)</script> cube & hold"


def _full_run(run_dir: Path) -> Path:
    renders = run_dir / "specs" / "v1" / "renders"
    renders.mkdir(parents=True)
    for view in ("front", "side", "top"):
        Image.new("RGB", (8, 8), (200, 30, 30)).save(renders / f"{view}.png")
    (run_dir / "specs" / "v1" / "spec.yaml").write_text(SPEC)
    (run_dir / "plan_v1.yaml").write_text("subtasks:\n  - name: grasp\n    controller: rl\n")
    attempt = run_dir / "subtasks" / "grasp" / "attempt0"
    attempt.mkdir(parents=True)
    (attempt / "reward.py").write_text(REWARD)
    rows = [
        {
            "iteration": i,
            "env_steps": 1024 * (i + 1),
            "wall_s": 1.0 + i,
            "episodes": 4 * i,
            "success_rate": None if i == 0 else 0.2 * i,
            "reward_mean": 0.5 * i,
            "components": {"grasp": 0.1 * i, "contact": 0.05 * i},
        }
        for i in range(4)
    ]
    (attempt / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"iteration": 4, "env')
    summary = {
        "run_id": "20261126-113000-lift-the-cube-ab12",
        "request": REQUEST,
        "status": "succeeded",
        "reason": None,
        "backends": {"proposer": "offline reasoner", "critic": "gpt-4o @ http://localhost:8000"},
        "specs": [
            {
                "version": 1,
                "spec": "specs/v1/spec.yaml",
                "renders": {v: f"specs/v1/renders/{v}.png" for v in ("front", "side", "top")},
                "findings": [
                    {
                        "check": "interpenetration",
                        "severity": "error",
                        "subject": "cube <-> bowl",
                        "message": "cube sinks 1 cm into bowl",
                        "values": {"depth": 0.01},
                    }
                ],
                "critique": {
                    "findings": ["the cube overlaps the <bowl>"],
                    "corrections": [{"kind": "move", "object": "cube", "pos": [0.1, 0, 0.02]}],
                    "verdict": "revise",
                },
            }
        ],
        "plans": ["plan_v1.yaml"],
        "subtasks": [
            {
                "name": "grasp",
                "controller": "rl",
                "passed": True,
                "success_rate": 0.84,
                "attempts": [
                    {
                        "attempt": 0,
                        "reward": "subtasks/grasp/attempt0/reward.py",
                        "stats": "subtasks/grasp/attempt0/stats.jsonl",
                        "success_rate": 0.84,
                        "env_steps": 120000,
                        "stop_reason": "target",
                        "error": None,
                        "reflection": "grasp reward & contact <helped>",
                        "warm_start": "/old/run/best.pt",
                        "warm_start_memory": "subtask-<7>",
                    }
                ],
            },
            {"name": "lift", "controller": "scripted", "passed": True, "success_rate": 0.9, "attempts": []},
        ],
        "task_success_rate": 0.8,
        "kept_after": {"approach": 1.0, "grasp": 0.95, "lift<": 0.8},
        "episodes": 64,
        "env_steps": 120000,
        "wall_s": 300.5,
        "dataset": "collect/dataset.hdf5",
        "video": "collect/rollout.mp4",
        "node_path": ["recall", "propose", "check", "decompose", "write_reward", "train", "judge", "report"],
        "model_calls": {"critic": {"calls": 2, "input_tokens": 1500, "output_tokens": 300, "cost_usd": 0.0123}},
        "memories": ["lifting needs a <firm> grasp first"],
        "examples": [{"id": "task-1", "request": "lift the <red> cube", "similarity": 0.91, "task_success_rate": 0.7}],
    }
    (run_dir / "collect").mkdir()
    (run_dir / "collect" / "rollout.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (run_dir / "collect" / "dataset.hdf5").write_bytes(b"\x89HDF")
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_full_run_report(tmp_path: Path) -> None:
    out = write_report(_full_run(tmp_path))
    assert out == tmp_path / "report.html"
    page = out.read_text()
    assert "<script>" not in page
    assert "lift the &lt;script&gt;alert(1)&lt;/script&gt; cube &amp; hold" in page
    for view in ("front", "side", "top"):
        assert f'<img src="specs/v1/renders/{view}.png"' in page
    for name in ("grasp_attempt0_progress.svg", "grasp_attempt0_components.svg"):
        figure = tmp_path / "report" / name
        assert figure.is_file() and figure.stat().st_size > 0
        assert f'src="report/{name}"' in page
    assert "1 unreadable line(s)" in page  # the cut-off last line of stats.jsonl
    assert "compute_reward(m):\n    r = m[&quot;grasp&quot;] - 0.1 * m[&quot;dist&quot;]" in page
    assert "interpenetration" in page and "cube &lt;-&gt; bowl" in page and "cube sinks 1 cm into bowl" in page
    assert "the cube overlaps the &lt;bowl&gt;" in page and "revise" in page
    assert "objects:\n  - name: cube" in page  # spec YAML
    assert "subtasks:\n  - name: grasp" in page  # plan YAML
    assert "grasp reward &amp; contact &lt;helped&gt;" in page
    assert '<video controls src="collect/rollout.mp4">' in page
    assert 'href="collect/dataset.hdf5"' in page
    chips = [f'<span class="chip">{n}</span>' for n in ("recall", "write_reward", "report")]
    assert all(c in page for c in chips)
    assert page.index(chips[0]) < page.index(chips[1]) < page.index(chips[2])
    assert "80%" in page and "120,000" in page and "5 min 0 s" in page
    assert "approach 100% → grasp 95% → lift&lt; 80%" in page  # where the chain lost its episodes
    assert "gpt-4o @ http://localhost:8000" in page and "$0.0123" in page
    assert "lifting needs a &lt;firm&gt; grasp first" in page
    assert "started from the stored policy of memory subtask-&lt;7&gt;" in page
    assert "lift the &lt;red&gt; cube (memory task-1, similarity 0.91, whole-task success 70%)" in page
    # sections in order
    marks = ["<h1>", "Scene versions", "<h2>Plan", "<h2>Training", "<h2>Rollout", "<h2>Node path", "memories"]
    positions = [page.index(m) for m in marks]
    assert positions == sorted(positions)


def test_rewriting_is_stable(tmp_path: Path) -> None:
    run_dir = _full_run(tmp_path)
    first = write_report(run_dir).read_text()
    second = write_report(run_dir).read_text()
    assert first == second
    assert sorted(p.name for p in (run_dir / "report").iterdir()) == [
        "grasp_attempt0_components.svg",
        "grasp_attempt0_progress.svg",
    ]


def test_sparse_failed_run_still_renders(tmp_path: Path) -> None:
    summary = {
        "run_id": "r1",
        "request": "open the drawer",
        "status": "failed",
        "reason": "the critic rejected the scene 3 times: <drawer> intersects the table",
        "specs": [{"version": 1, "spec": None, "renders": None, "findings": [], "critique": None}],
        "plans": [],
        "subtasks": [
            {
                "name": "pull",
                "controller": "rl",
                "passed": False,
                "success_rate": None,
                "attempts": [
                    {
                        "attempt": 0,
                        "reward": "missing/reward.py",
                        "stats": None,
                        "success_rate": None,
                        "env_steps": None,
                        "stop_reason": None,
                        "error": "reward is NaN in 12 of 256 envs",
                        "reflection": None,
                    }
                ],
            },
        ],
        "task_success_rate": None,
        "video": None,
        "dataset": None,
        "node_path": None,
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    page = write_report(tmp_path).read_text()
    assert "the critic rejected the scene 3 times: &lt;drawer&gt; intersects the table" in page
    assert 'class="badge failed"' in page
    assert "Renders: <span" in page and "No physics findings." in page
    assert "Video: <span" in page
    assert "reward is NaN in 12 of 256 envs" in page
    assert "Training curves: <span" in page
    assert "not available" in page
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


def test_minimal_summary_and_missing_render_file(tmp_path: Path) -> None:
    summary = {
        "status": "running",
        "specs": [{"version": 2, "renders": {"front": "specs/v2/renders/front.png"}}],
        "video": "rollout.gif",
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    Image.new("RGB", (4, 4)).save(tmp_path / "rollout.gif")
    page = write_report(tmp_path).read_text()
    assert "(no request recorded)" in page and 'class="badge running"' in page
    assert "Version 2" in page and "<figcaption>front</figcaption>" in page
    assert "No scene version" not in page and "No memory was retrieved." in page
    assert '<img src="rollout.gif" alt="rollout">' in page and "<video" not in page


def test_missing_summary_raises(tmp_path: Path) -> None:
    with pytest.raises(SummaryMissingError, match=r"no summary\.json"):
        write_report(tmp_path)
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path)
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(DexforgeError, match="not a JSON object"):
        write_report(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(DexforgeError, match="not valid JSON"):
        write_report(tmp_path)
