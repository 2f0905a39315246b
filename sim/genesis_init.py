"""One Genesis per process: cache locations, backend choice and `gs.init`, done once.

Genesis allows one `gs.init` per process and compiles kernels for minutes on a fresh machine. The
kernel caches are pointed at `dexforge.home.kernel_cache_dir()` before Genesis is imported, so that
every run on a machine (CI included) reuses them.
"""

from __future__ import annotations

import os
from typing import Literal

Backend = Literal["cpu", "gpu", "cuda", "metal"]
_STATE: dict[str, object] = {}


def set_cache_env() -> None:
    from dexforge.home import kernel_cache_dir

    root = kernel_cache_dir()
    os.environ.setdefault("QD_OFFLINE_CACHE_FILE_PATH", str(root / "qdcache"))
    os.environ.setdefault("GS_CACHE_FILE_PATH", str(root / "genesis"))


def preload() -> None:
    """Import what jobs import first (torch, Genesis with dexforge's kernel caches, skrl, the env), without
    initialising Genesis: a worker started ahead of its job spends its wait on this (about 10 s on a CPU)."""
    import contextlib
    import importlib

    set_cache_env()
    for name in ("torch", "genesis", "skrl.agents.torch.ppo", "dexforge.sim.env"):
        with contextlib.suppress(Exception):  # the job that needs it reports the failure with its traceback
            importlib.import_module(name)


def genesis(backend: Backend = "cpu", *, seed: int | None = None, precision: str = "32"):
    """The initialised `genesis` module; the first call picks the backend for the whole process."""
    if "gs" in _STATE:
        if _STATE["backend"] != backend:
            raise RuntimeError(
                f"Genesis already runs on '{_STATE['backend']}' in this process; one backend per process"
            )
        return _STATE["gs"]
    set_cache_env()
    import genesis as gs

    chosen = getattr(gs, backend)
    gs.init(backend=chosen, logging_level="warning", precision=precision, seed=seed)
    _STATE.update(gs=gs, backend=backend)
    return gs


def torch_device():
    """The device Genesis keeps its tensors on."""
    gs = _STATE.get("gs")
    import torch

    return gs.device if gs is not None else torch.device("cpu")
