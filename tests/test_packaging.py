"""The layers install as dexforge.<name> and nothing generic lands at the top of site-packages."""

import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("agents", "tools", "sim", "policies", "memory", "evals")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_installed_under_dexforge():
    cfg = _pyproject()["tool"]["setuptools"]
    mapping, packages = cfg["package-dir"], set(cfg["packages"])
    for layer in LAYERS:
        assert mapping[f"dexforge.{layer}"] == layer
    for init in ROOT.glob("*/**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts[0] in (".venv", "tests", "benchmarks", "build") or rel.parts[0].startswith("."):
            continue
        top = rel.parts[0]
        name = "dexforge" if top == "dexforge" else ".".join(("dexforge", *rel.parts))
        assert name in packages, f"{rel} has an __init__.py but is not listed in pyproject's packages"


def test_only_dexforge_is_top_level():
    dist = metadata.distribution("dexforge")
    assert dist.entry_points.select(group="console_scripts")["dexforge"].value == "dexforge.cli:main"
    import dexforge.agents
    import dexforge.sim

    assert Path(dexforge.sim.__file__).parent == ROOT / "sim"
    assert Path(dexforge.agents.__file__).parent == ROOT / "agents"


def test_home_follows_dexforge_home(monkeypatch, tmp_path):
    from dexforge import home

    monkeypatch.setenv("DEXFORGE_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("DEXFORGE_KERNEL_CACHE", raising=False)
    assert home.home() == tmp_path / "h"
    assert home.runs_dir().is_relative_to(tmp_path / "h")
    assert home.kernel_cache_dir().is_relative_to(tmp_path / "h")


def test_openmp_threads_wait_passively_unless_asked_otherwise():
    """Every dexforge process (and so its children) asks OpenMP for sleeping waiters before torch loads; a
    user's own OMP_WAIT_POLICY stands."""
    import os
    import subprocess
    import sys

    probe = "import dexforge, os, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PASSIVE"]
    out = subprocess.run(
        [sys.executable, "-c", probe], env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True
    )
    assert out.stdout.split() == ["ACTIVE"]
