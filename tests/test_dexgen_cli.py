"""`dexforge dexgen`, its jobs and its tool without a scene or training: help texts, errors on a folder that
lacks what a step needs, registration."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dexforge.cli import app, main
from dexforge.jobs import JOBS

COMMANDS = {
    "collect": ["--asset", "--envs", "--expert-steps", "--runs", "--steps", "--seed", "minutes"],
    "train": ["--epochs", "--seed", "data.hdf5", "minutes"],
    "eval": ["--asset", "--seconds", "--noise", "--slow", "--strength", "--json", "minutes"],
    "assist": ["--asset", "--noise", "--strength", "--json", "minutes"],
}
KINDS = ("dexgen_collect", "dexgen_train", "dexgen_eval", "dexgen_assist")


@pytest.fixture(autouse=True)
def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEXFORGE_DEBUG", raising=False)
    monkeypatch.setenv("COLUMNS", "100")


def test_dexgen_help_lists_the_commands_in_order() -> None:
    result = CliRunner().invoke(app, ["dexgen", "--help"])
    assert result.exit_code == 0, result.output
    assert "dexgen/default" in result.output
    listing = result.output[result.output.index("Commands:") :]
    positions = [listing.index(f"  {name} ") for name in COMMANDS]
    assert positions == sorted(positions)  # collect, train, eval, assist: the order they are run in


def test_dexgen_is_listed_at_the_root() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "dexgen" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command: str) -> None:
    result = CliRunner().invoke(app, ["dexgen", command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage:") and "FOLDER" in result.output
    for word in COMMANDS[command]:
        assert word in result.output, word


def test_train_on_an_empty_folder_says_to_collect_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dexgen", "train", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip() == f"error: no data.hdf5 in {tmp_path}; run `dexforge dexgen collect {tmp_path}` first"
    assert not (tmp_path / "jobs").exists()  # refused before any worker started


@pytest.mark.parametrize("command", ["eval", "assist"])
def test_eval_and_assist_need_a_model(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.hdf5").touch()
    code = main(["dexgen", command, str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "no trained DexGen model" in err and f"dexforge dexgen train {tmp_path}" in err


def test_assist_names_the_missing_expert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dexgen.pt").touch()
    (tmp_path / "experts" / "cube").mkdir(parents=True)
    (tmp_path / "experts" / "cube" / "expert.json").write_text("{}")
    code = main(["dexgen", "assist", str(tmp_path), "--asset", "ball"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no hold expert for 'ball'" in err and "experts: cube" in err and "--asset ball" in err


def test_eval_names_a_missing_spin_expert_and_rejects_an_unknown_skill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dexgen.pt").touch()
    (tmp_path / "experts" / "cube").mkdir(parents=True)
    (tmp_path / "experts" / "cube" / "expert.json").write_text("{}")
    code = main(["dexgen", "eval", str(tmp_path), "--skill", "spin_thumb"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no spin_thumb expert" in err and "--skill spin_thumb" in err
    code = main(["dexgen", "collect", str(tmp_path), "--skill", "juggle"])
    err = capsys.readouterr().err
    assert code == 2 and "spin_normal" in err, err


def test_collect_rejects_an_unknown_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dexgen", "collect", str(tmp_path), "--asset", "cubee"])
    err = capsys.readouterr().err
    assert code == 2 and "cube" in err, err


def test_the_default_folder_is_where_a_dexgen_subtask_looks() -> None:
    from dexforge.policies.dexgen.assist import default_model
    from dexforge.policies.dexgen.jobs import default_folder

    assert default_model() == default_folder() / "dexgen.pt"


@pytest.mark.parametrize("kind", KINDS)
def test_job_kinds_are_registered_and_importable(kind: str) -> None:
    module, name = JOBS[kind].split(":")
    func = getattr(importlib.import_module(module), name)
    assert callable(func) and "out" in inspect.signature(func).parameters


def test_the_tool_is_registered_and_says_when_dexgen_helps() -> None:
    from dexforge.tools import all_tools

    (tool,) = [t for t in all_tools() if t.name == "dexgen_assist"]
    text = tool.description.lower()
    for phrase in ("in-hand", "drops", "noisy", "wrist", "gravity", "not for release", "35 minutes", "safety_filter"):
        assert phrase in text, phrase
    assert {"folder", "noise", "strength"} <= set(tool.args)


def test_the_tool_without_a_model_is_a_tool_error_with_the_fix(tmp_path: Path) -> None:
    from dexforge.tools.common import ToolFailed, call_tool
    from dexforge.tools.dexgen_tools import dexgen_assist

    with pytest.raises(ToolFailed) as failed:
        call_tool(dexgen_assist, folder=str(tmp_path))
    assert f"dexforge dexgen collect {tmp_path}" in failed.value.message


# the display of a job's progress and results (run_job replaced: no worker, no scene) -------------------------


def _ready_folder(folder: Path) -> None:
    (folder / "dexgen.pt").touch()
    (folder / "experts" / "cube").mkdir(parents=True)
    (folder / "experts" / "cube" / "expert.json").write_text("{}")


def _fake_run_job(monkeypatch: pytest.MonkeyPatch, kind: str, lines: list[str], value: dict | None, ok: bool = True):
    from dexforge import jobs

    seen: list = []

    def run_job(job: jobs.Job, on_line=None) -> jobs.JobResult:
        assert job.kind == kind and job.kind in JOBS
        jobs.job_model(jobs.TYPES[kind][0]).model_validate(job.args)  # what the worker checks first
        seen.append(job)
        for line in lines:
            on_line(line)
        return jobs.JobResult(ok=ok, kind=kind, value=value, error=None if ok else "boom", log="/x/job.log")

    monkeypatch.setattr(jobs, "run_job", run_job)
    return seen


def _progress_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    from dexforge.policies.dexgen.jobs import _emit

    capsys.readouterr()
    _emit("assist", "cube: expert alone", done=0, total=2)
    _emit("assist", "through DexGen 6.10 s", done=2, total=2, event="done")
    _emit("expert cube", "kept", event="done")
    return ["Genesis says hello", *capsys.readouterr().out.splitlines()]


ASSIST_VALUE = {
    "asset": "cube",
    "skill": "hold",
    "corruption": "noise U(-1,1)",
    "strength": 1.0,
    "envs": 64,
    "seconds_cap": 8.0,
    "raw_hold_s": 0.61,
    "dexgen_hold_s": 6.1,
    "ratio": 10.0,
    "raw_held_to_end": 0.0,
    "dexgen_held_to_end": 0.5,
    "latency_ms": 9.5,
    "model": "x/dexgen.pt",
    "raw_goals": None,
    "dexgen_goals": None,
}


def test_assist_shows_progress_then_a_table_or_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    _ready_folder(tmp_path)
    lines = _progress_lines(capsys)
    seen = _fake_run_job(monkeypatch, "dexgen_assist", lines, ASSIST_VALUE)
    assert main(["dexgen", "assist", str(tmp_path), "--noise", "1"]) == 0
    out = capsys.readouterr().out
    assert "expert alone" in out and "6.10" in out and "10x as long" in out
    assert seen[0].args["asset"] is None and seen[0].run_dir == str(tmp_path / "jobs")

    assert main(["dexgen", "assist", str(tmp_path), "--json", "--asset", "cube"]) == 0
    assert json.loads(capsys.readouterr().out) == ASSIST_VALUE
    assert seen[1].args["asset"] == "cube"


def test_eval_prints_every_run_and_the_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dexforge.policies.dexgen.evaluate import Corruption, HoldResult
    from dexforge.policies.dexgen.jobs import eval_result

    _ready_folder(tmp_path)
    corruptions = [Corruption(noise=0.0), Corruption(noise=1.0), Corruption(slow=0.5)]
    rows = []
    for c, raw in zip(corruptions, (8.0, 0.5, 2.0), strict=True):
        rows.append(HoldResult(c.label, None, raw, 0.0, 4))
        rows.append(HoldResult(c.label, 1.0, min(8.0, raw * 12), 0.5, 4, latency_ms=9.0))
    latency = {"median_ms": 12.0, "p95_ms": 15.0, "ddim_steps": 8, "torch_threads": 1}
    value = eval_result("cube", 4, 8.0, rows, corruptions, latency) | {"model": "x/dexgen.pt", "wall_s": 60.0}
    assert value["target"]["judged"]["judged_at"] == "noise U(-1,1)" and value["target"]["meets_10x"]
    _fake_run_job(monkeypatch, "dexgen_eval", [], value)
    assert main(["dexgen", "eval", str(tmp_path), "--envs", "4"]) == 0
    out = capsys.readouterr().out
    assert "slow U(0,0.5)" in out and "DexGen, strength 1" in out
    assert "12x as long" in out and "target 10x: met" in out and "target 27 ms: met" in out


def test_a_failed_job_is_one_error_line_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data.hdf5").touch()
    _fake_run_job(monkeypatch, "dexgen_train", [], None, ok=False)
    assert main(["dexgen", "train", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "error: dexgen train failed: boom (log: /x/job.log)"


def test_collect_shows_each_expert_and_the_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    experts = [
        {"asset": "cube", "skill": "hold", "best_success": 0.97, "env_steps": 120_000, "stop_reason": "target"},
        {"asset": "cube", "skill": "spin_normal", "best_success": 0.61, "env_steps": 400_000, "stop_reason": "budget"},
        {"asset": "ball", "skill": "hold", "skipped": "dropped it"},
    ]
    value = {
        "folder": str(tmp_path),
        "experts": experts,
        "data": str(tmp_path / "data.hdf5"),
        "data_kept": False,
        "data_mb": 3.2,
        "wall_s": {"experts": 900.0, "collect": 300.0},
    }
    seen = _fake_run_job(monkeypatch, "dexgen_collect", [], value)
    assert main(["dexgen", "collect", str(tmp_path), "-a", "cube", "-a", "ball", "--envs", "8"]) == 0
    out = capsys.readouterr().out
    assert "97%" in out and "120,000" in out and "dropped it" in out and f"dexforge dexgen train {tmp_path}" in out
    assert seen[0].args["assets"] == ["cube", "ball"] and seen[0].args["n_envs"] == 8
    assert "spin_normal" in out and "61%" in out
    assert seen[0].args["skills"] == ["hold", "spin_normal"] and seen[0].args["spin_steps"] == 400_000


def test_a_spin_experts_eval_shows_its_goals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dexforge.policies.dexgen.evaluate import Corruption, HoldResult
    from dexforge.policies.dexgen.job_types import DexGenEvalResult
    from dexforge.policies.dexgen.jobs import eval_result

    _ready_folder(tmp_path)
    (tmp_path / "experts" / "cube" / "spin_normal").mkdir()
    (tmp_path / "experts" / "cube" / "spin_normal" / "expert.json").write_text("{}")
    corruptions = [Corruption(noise=0.0), Corruption(noise=2.0)]
    rows = []
    for c, raw in zip(corruptions, (8.0, 1.0), strict=True):
        rows.append(HoldResult(c.label, None, raw, 0.0, 4, expert="spin_normal", goals=0.25, turned_deg=20.0))
        rows.append(HoldResult(c.label, 1.0, 6.0, 0.5, 4, latency_ms=9.0, expert="spin_normal", goals=1.75))
    latency = {"median_ms": 30.0, "p95_ms": 35.0, "ddim_steps": 8, "torch_threads": 1}
    value = eval_result("cube", 4, 8.0, rows, corruptions, latency, "spin_normal") | {"model": "m", "wall_s": 1.0}
    result = DexGenEvalResult.model_validate(value)
    assert result.goals is not None and result.goals["noise U(-2,2)"].dexgen_best_goals == 1.75
    assert result.target.judged is not None and result.target.judged.judged_at == "noise U(-2,2)"
    _fake_run_job(monkeypatch, "dexgen_eval", [], value)
    assert main(["dexgen", "eval", str(tmp_path), "--skill", "spin_normal"]) == 0
    out = capsys.readouterr().out
    assert "goals" in out and "1.75" in out and "6x as long" in out and "target 27 ms: not met" in out


def test_the_tool_reads_the_typed_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dexforge.tools.common import call_tool
    from dexforge.tools.dexgen_tools import dexgen_assist

    _ready_folder(tmp_path)
    (tmp_path / "experts" / "cube" / "spin_normal").mkdir()
    (tmp_path / "experts" / "cube" / "spin_normal" / "expert.json").write_text("{}")
    spin = ASSIST_VALUE | {"skill": "spin_normal", "raw_goals": 0.25, "dexgen_goals": 1.5}
    seen = _fake_run_job(monkeypatch, "dexgen_assist", [], spin)
    artifact = call_tool(dexgen_assist, folder=str(tmp_path), skill="spin_normal", noise=2.0)
    assert artifact == spin
    assert seen[0].args["noise"] == 2.0 and seen[0].args["skill"] == "spin_normal"
    assert seen[0].run_dir == str(tmp_path / "jobs")


def test_a_result_that_does_not_fit_its_model_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data.hdf5").touch()
    _fake_run_job(monkeypatch, "dexgen_train", [], {"model": "m", "epochs": 6})
    assert main(["dexgen", "train", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error:") and "windows" in err[-1]


def test_every_field_of_the_dexgen_job_models_is_described() -> None:
    from pydantic import BaseModel

    from dexforge.jobs import TYPES, job_model

    todo = [job_model(path) for kind in KINDS for path in TYPES[kind]]
    seen: set[type] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                for inner in (arg, *getattr(arg, "__args__", ())):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        todo.append(inner)
    assert len(seen) > 8  # the nested models were reached too
