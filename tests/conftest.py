"""Test settings: a temporary DEXFORGE_HOME per session, with the machine's Genesis kernel cache shared.

Genesis allows one backend per process, so every simulator test in the session runs on the CPU.
"""

from __future__ import annotations

import os

import pytest

from dexforge import home as home_mod


@pytest.fixture(scope="session", autouse=True)
def dexforge_home(tmp_path_factory):
    """Isolate all state the tests write; keep compiled kernels where later runs find them."""
    quiet = {
        "LANGSMITH_TEST_TRACKING": "false",  # no tracing to LangSmith from tests
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "DEXFORGE_EMBEDDER": "hashing",  # memory: the fast deterministic embedder unless a test asks for MiniLM
    }
    saved = {k: os.environ.get(k) for k in (home_mod.HOME_ENV, home_mod.KERNEL_CACHE_ENV, *quiet)}
    os.environ.update(quiet)
    kernels = os.environ.get(home_mod.KERNEL_CACHE_ENV) or str(home_mod.kernel_cache_dir())
    root = tmp_path_factory.mktemp("dexforge_home")
    os.environ[home_mod.HOME_ENV] = str(root)
    os.environ[home_mod.KERNEL_CACHE_ENV] = kernels
    from dexforge.sim.catalog import default_catalog

    default_catalog.cache_clear()
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_collection_modifyitems(config, items):
    """Fast tests first, then the ones that build Genesis scenes (marked `genesis`): a quick failure shows
    before the slow part starts, and the slow part compiles kernels once."""
    items.sort(key=lambda item: item.get_closest_marker("genesis") is not None)
