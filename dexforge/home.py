"""Where dexforge keeps its state.

Everything dexforge writes (runs, memory, caches) goes under one directory: `$DEXFORGE_HOME` when set,
otherwise the user's data directory (`~/.local/share/dexforge` on Linux). The one exception a user may
ask for is the Genesis kernel cache, which `$DEXFORGE_KERNEL_CACHE` can point elsewhere so that several
homes (a test suite's temporary one, say) share compiled kernels.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "DEXFORGE_HOME"
KERNEL_CACHE_ENV = "DEXFORGE_KERNEL_CACHE"


def home() -> Path:
    """The root of all dexforge state, created on first use."""
    explicit = os.environ.get(HOME_ENV)
    root = Path(explicit).expanduser() if explicit else Path(platformdirs.user_data_dir("dexforge"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(name: str) -> Path:
    """A named cache folder under the home (`assets`, `urdf`, ...), created on first use."""
    path = home() / "cache" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def kernel_cache_dir() -> Path:
    """Where Genesis and its kernel compiler keep compiled kernels (minutes to rebuild on a fresh machine)."""
    explicit = os.environ.get(KERNEL_CACHE_ENV)
    path = Path(explicit).expanduser() if explicit else home() / "cache" / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


class DexforgeError(Exception):
    """Base class of the errors dexforge raises for bad input; the CLI prints them as one line."""
