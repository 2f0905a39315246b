"""`dexforge train | eval | dataset inspect` as a user runs them."""

from __future__ import annotations

import json

import pytest

from dexforge.cli import main

PLAN = """
task: lift_cube
subtasks:
  - name: approach
    controller: motion_plan
    goal: {relative_to: cube, offset: [-0.04, 0.0, 0.029], align_yaw: true}
    success: [{kind: reached, object: cube, offset: [-0.04, 0.0, 0.029], tolerance: 0.02}]
    start: initial
  - name: grasp
    controller: scripted
    script: power_grasp
    success: [{kind: touching, object: cube, min_fingers: 3}]
  - name: lift
    controller: motion_plan
    goal: {lift: 0.15}
    success: [{kind: lifted, object: cube, height: 0.1}]
"""


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


def test_bad_plans_are_one_line_errors(tmp_path, capsys):
    from importlib import resources

    spec = resources.files("dexforge.sim") / "examples" / "lift_cube.yaml"
    assert main(["train", str(spec), str(tmp_path / "missing.yaml")]) == 2
    assert "no such plan file" in one_error_line(capsys)
    (tmp_path / "bad.yaml").write_text(PLAN.replace("relative_to: cube", "relative_to: bowl"))
    assert main(["train", str(spec), str(tmp_path / "bad.yaml")]) == 2
    assert "no object named 'bowl'" in one_error_line(capsys)
    (tmp_path / "rl.yaml").write_text("task: lift_cube\nsubtasks: [{name: g, controller: rl}]\n")
    assert main(["train", str(spec), str(tmp_path / "rl.yaml")]) == 2
    assert "reward" in one_error_line(capsys)


def test_eval_and_dataset_inspect_need_real_files(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "no outcome.json" in one_error_line(capsys)
    assert main(["dataset", "inspect", str(tmp_path / "x.hdf5")]) == 2
    assert "no such dataset file" in one_error_line(capsys)


@pytest.mark.genesis
def test_train_runs_in_a_worker_and_its_outputs_can_be_read(tmp_path, capsys):
    from importlib import resources

    spec = resources.files("dexforge.sim") / "examples" / "lift_cube.yaml"
    (tmp_path / "plan.yaml").write_text(PLAN)
    run = tmp_path / "run"
    code = main(["train", str(spec), str(tmp_path / "plan.yaml"), "--envs", "2", "--episodes", "2", "--out", str(run)])
    assert code == 0, capsys.readouterr()
    shown = capsys.readouterr().out
    assert "whole-task success" in shown and "approach" in shown and "dataset" in shown
    assert "chained episodes kept: approach" in shown
    outcome = json.loads((run / "outcome.json").read_text())
    assert [s["name"] for s in outcome["subtasks"]] == ["approach", "grasp", "lift"]
    assert outcome["task_success_rate"] >= 0.5
    assert main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "lift_cube"
    assert main(["dataset", "inspect", outcome["dataset"], "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] >= 1 and info["keys"]["actions"] == [30]


def _outcome(run) -> dict:
    """A run_plan result as the worker returns it (RunPlanResult's full shape)."""
    from dexforge.policies.job_types import RunPlanResult

    motion = {"controller": "motion_plan", "success_rate": 1.0, "episodes": 2}
    subtasks = [{"name": "approach", **motion}, {"name": "grasp", **motion, "controller": "scripted"}]
    subtasks.append({"name": "lift", **motion, "success_rate": 0.5})
    value = {"task": "lift_cube", "subtasks": subtasks, "task_success_rate": 0.5, "wall_s": 12.0}
    value |= {"dataset": str(run / "dataset.hdf5"), "episodes": 2}
    value |= {"kept_after": {"approach": 1.0, "grasp": 1.0, "lift": 0.5}}
    return RunPlanResult.model_validate(value).model_dump(mode="json")


def test_train_sends_typed_arguments_and_prints_the_typed_outcome(tmp_path, monkeypatch, capsys):
    from importlib import resources

    from dexforge import jobs
    from dexforge.policies.job_types import RunPlanArgs

    spec = resources.files("dexforge.sim") / "examples" / "lift_cube.yaml"
    (tmp_path / "plan.yaml").write_text(PLAN)
    run = tmp_path / "run"
    seen: list[jobs.Job] = []

    def run_job(job: jobs.Job, on_line=None) -> jobs.JobResult:
        seen.append(job)
        on_line('@progress {"subtask": "approach", "event": "done", "success_rate": 1.0}')
        return jobs.JobResult(ok=True, kind=job.kind, value=_outcome(run))

    monkeypatch.setattr(jobs, "run_job", run_job)
    code = main(["train", str(spec), str(tmp_path / "plan.yaml"), "--envs", "2", "--episodes", "2", "--out", str(run)])
    assert code == 0, capsys.readouterr()
    args = RunPlanArgs.model_validate(seen[0].args)  # what the worker checks before the call
    assert (args.n_envs, args.eval_episodes, args.run_dir) == (2, 2, str(run)) and "lift" in args.plan_yaml
    shown = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "lift_cube: whole-task success 50%" in shown and "scripted" in shown
    assert f"dataset {run / 'dataset.hdf5'} (2 evaluation episodes)" in shown
    assert "chained episodes kept: approach 100% -> grasp 100% -> lift 50%" in shown


def test_eval_prints_an_outcome_and_names_a_file_that_is_not_one(tmp_path, capsys):
    (tmp_path / "outcome.json").write_text(json.dumps(_outcome(tmp_path)))
    assert main(["eval", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "whole-task success 50%" in shown and "approach" in shown and "motion_plan" in shown
    (tmp_path / "outcome.json").write_text(json.dumps({"task": "lift_cube", "subtasks": [{"name": "x"}]}))
    assert main(["eval", str(tmp_path), "--json"]) == 0  # --json prints the file as it is
    assert json.loads(capsys.readouterr().out)["subtasks"] == [{"name": "x"}]
    assert main(["eval", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert "is not a `dexforge train` outcome" in line and "subtasks.0.controller" in line
