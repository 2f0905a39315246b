"""The `dexforge` command in-process and as the installed console script (no scene is built, fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import dexforge.sim
from dexforge.cli import main
from dexforge.sim.spec import TaskSpec

EXAMPLES = Path(dexforge.sim.__file__).parent / "examples"
LIFT_CUBE = EXAMPLES / "lift_cube.yaml"

BAD_SPECS: dict[str, tuple[str | None, str]] = {
    # name: (file content, or None for no file; a piece the error must contain)
    "unknown_asset": ("objects:\n  - asset: cubee\n", "closest: cube"),
    "negative_scale": ("objects:\n  - asset: cube\n    scale: -1.5\n", "objects.0.scale"),
    "missing_file": (None, "no such spec file"),
    "malformed_yaml": ("name: x\nobjects:\n  - asset: cube\n   scale: [1\n", "line 4"),
    "list_not_mapping": ("- asset: cube\n- asset: ball\n", "mapping"),
}


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """DEXFORGE_DEBUG=1 turns user errors back into tracebacks; these tests check the normal path."""
    monkeypatch.delenv("DEXFORGE_DEBUG", raising=False)
    monkeypatch.setenv("COLUMNS", "80")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, out: str, err: str) -> str:
    """Exit status 2 and exactly one `error: ...` line on stderr; returns that line."""
    assert code == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and lines[0].removeprefix("error: ").strip()
    assert "Traceback" not in out + err
    return lines[0]


def bad_spec(tmp_path: Path, name: str) -> Path:
    content, _ = BAD_SPECS[name]
    path = tmp_path / f"{name}.yaml"
    if content is not None:
        path.write_text(content)
    return path


# Bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BAD_SPECS)
def test_bad_spec_is_one_error_line(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = bad_spec(tmp_path, name)
    line = assert_one_line_error(*run(["sim", "validate", str(path)], capsys))
    assert BAD_SPECS[name][1] in line
    assert str(path) in line


def test_render_rejects_a_bad_resolution_before_building_a_scene(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def scene_stub(module: str) -> types.ModuleType:
        """A stand-in for a scene module that fails the test as soon as anything is taken from it."""

        def reached(name: str) -> object:
            raise AssertionError(f"render imported {module} ({name}) although --res was bad")

        stub = types.ModuleType(module)
        stub.__getattr__ = reached  # type: ignore[method-assign]
        return stub

    for module in ("dexforge.sim.scene", "dexforge.sim.env", "dexforge.sim.render"):
        monkeypatch.setitem(sys.modules, module, scene_stub(module))
    line = assert_one_line_error(*run(["sim", "render", str(LIFT_CUBE), "--res", "banana"], capsys))
    assert "--res" in line and "banana" in line


def test_catalog_add_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nowhere" / "teapot.obj"
    line = assert_one_line_error(*run(["sim", "catalog", "add", str(path)], capsys))
    assert str(path) in line


def test_unknown_hand_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hand.yaml"
    path.write_text("hand: {asset: allegro}\n")
    line = assert_one_line_error(*run(["sim", "validate", str(path)], capsys))
    assert "allegro" in line and "shadow_hand" in line


# validate ----------------------------------------------------------------------------------------------


def test_validate_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["sim", "validate", str(LIFT_CUBE)], capsys)
    assert code == 0, err
    assert out.startswith("ok lift_cube")
    assert "name:" not in out


def printed_spec(out: str) -> TaskSpec:
    """The spec `validate --print` printed after its `ok` line."""
    assert out.startswith("ok ")
    return TaskSpec.from_yaml(out[out.index("\nname:") + 1 :])


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_validate_print_loads_back(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["sim", "validate", str(example), "--print"], capsys)
    assert code == 0, err
    assert printed_spec(out) == TaskSpec.load(example)


def test_validate_print_keeps_long_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = TaskSpec(name="long", description="Reference: https://example.com/" + "a" * 300 + " (see above).")
    path = spec.save(tmp_path / "long.yaml")
    code, out, err = run(["sim", "validate", str(path), "--print"], capsys)
    assert code == 0, err
    assert printed_spec(out) == spec


# catalog and metrics -----------------------------------------------------------------------------------


def test_catalog_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["sim", "catalog", "--json"], capsys)
    assert code == 0, err
    ids = [entry["id"] for entry in json.loads(out)]
    assert {"cube", "bowl", "cabinet_drawer"} <= set(ids)
    assert len(ids) == len(set(ids))


def test_catalog_tag_filters(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["sim", "catalog", "--tag", "container"], capsys)
    assert code == 0, err
    assert "bowl" in out and "mug" in out
    assert "cube" not in out and "plate" not in out
    code, out, err = run(["sim", "catalog", "--tag", "container", "--json"], capsys)
    assert code == 0, err
    entries = json.loads(out)
    assert "bowl" in [e["id"] for e in entries] and "cube" not in [e["id"] for e in entries]
    assert all("container" in e["tags"] for e in entries)


def test_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["sim", "metrics"], capsys)
    assert code == 0, err
    for key in ("palm_pos", "fingertip_pos", "<object>.lift", "<object>.grasp_time"):
        assert key in out


# help --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["--help"], ["sim", "--version"]),
        (["sim", "--help"], ["validate", "check", "render", "catalog", "metrics", "demo"]),
        (["sim", "check", "--help"], ["spec", "--json", "physics checks"]),
        (["sim", "catalog", "--help"], ["add", "--tag", "--json"]),
    ],
    ids=["dexforge", "sim", "check", "catalog"],
)
def test_help(argv: list[str], mentions: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert out.splitlines()[0].startswith("Usage:")
    for word in mentions:
        assert word in out, word


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"dexforge {dexforge.__version__}"


# the installed console script --------------------------------------------------------------------------


def test_console_script_bad_spec(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "dexforge"
    assert script.is_file(), f"{script} missing: install the package (pip install -e .)"
    path = bad_spec(tmp_path, "unknown_asset")
    env = {k: v for k, v in os.environ.items() if k != "DEXFORGE_DEBUG"} | {"DEXFORGE_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [str(script), "sim", "validate", str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "closest: cube" in lines[0]
    assert proc.stdout == ""
    assert (tmp_path / "home").is_dir()
