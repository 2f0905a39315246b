"""Trajectory datasets of successful episodes, in robomimic's HDF5 layout.

    data/                       attrs: total (steps), env_args (JSON), task_spec (YAML), plan (YAML),
                                       dexforge_version, created
    data/demo_<i>/              attrs: num_samples, success, subtask_ends (step index where each subtask ended)
        obs/<key>               (T, ...) float32 observations (joint_pos, palm_pos, <object>.pos, ...)
        actions                 (T, D) float32 absolute joint targets (every controller kind writes these)
        rewards                 (T,) float32
        dones                   (T,) uint8, 1 on the last step
        states                  (T, S) float32 flattened simulator state (robot q, object q)

Actions are joint targets rather than normalised policy outputs so that motion-planned, scripted and
learned segments share one action space and a dataset can be replayed with `HandEnv.step_targets`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dexforge import __version__

OBS_KEYS = ("joint_pos", "joint_vel", "palm_pos", "palm_quat", "fingertip_pos")
OBJECT_OBS = ("pos", "quat", "linvel", "contacts")


class TrajectoryWriter:
    """Appends episodes to an HDF5 file; `close()` (or a with-block) writes the totals."""

    def __init__(self, path: Path, *, task_spec_yaml: str, plan_yaml: str = "", env_args: dict | None = None):
        import h5py

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(self.path, "w")
        self._data = self._file.create_group("data")
        self._data.attrs["env_args"] = json.dumps(env_args or {})
        self._data.attrs["task_spec"] = task_spec_yaml
        self._data.attrs["plan"] = plan_yaml
        self._data.attrs["dexforge_version"] = __version__
        self._data.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.episodes = 0
        self.total = 0

    def add_episode(
        self,
        obs: dict[str, np.ndarray],
        actions: np.ndarray,
        rewards: np.ndarray | None = None,
        states: np.ndarray | None = None,
        *,
        success: bool = True,
        subtask_ends: list[int] | None = None,
    ) -> str:
        """Write one episode of T steps; every array has T leading. Returns the demo's name."""
        actions = np.asarray(actions, dtype=np.float32)
        t = actions.shape[0]
        if t == 0:
            raise ValueError("an episode needs at least one step")
        for key, value in obs.items():
            if np.asarray(value).shape[0] != t:
                raise ValueError(f"obs '{key}' has {np.asarray(value).shape[0]} steps, actions have {t}")
        name = f"demo_{self.episodes}"
        group = self._data.create_group(name)
        group.attrs["num_samples"] = t
        group.attrs["success"] = bool(success)
        group.attrs["subtask_ends"] = json.dumps(subtask_ends or [])
        obs_group = group.create_group("obs")
        for key, value in obs.items():
            obs_group.create_dataset(key, data=np.asarray(value, dtype=np.float32), compression="gzip")
        group.create_dataset("actions", data=actions, compression="gzip")
        r = np.zeros(t, np.float32) if rewards is None else np.asarray(rewards, dtype=np.float32)
        group.create_dataset("rewards", data=r)
        dones = np.zeros(t, np.uint8)
        dones[-1] = 1
        group.create_dataset("dones", data=dones)
        if states is not None:
            group.create_dataset("states", data=np.asarray(states, dtype=np.float32), compression="gzip")
        self.episodes += 1
        self.total += t
        return name

    def close(self) -> None:
        if self._file.id.valid:
            self._data.attrs["total"] = self.total
            self._file.close()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def inspect(path: Path) -> dict:
    """What a dataset file holds: episodes, steps, keys and shapes, the task, success count."""
    import h5py

    path = Path(path)
    if not path.is_file():
        from dexforge.home import DexforgeError

        raise DexforgeError(f"no such dataset file: {path}")
    with h5py.File(path, "r") as f:
        if "data" not in f:
            from dexforge.home import DexforgeError

            raise DexforgeError(f"{path} is not a dexforge/robomimic dataset (no 'data' group)")
        data = f["data"]
        demos = sorted(data.keys(), key=lambda k: int(k.split("_")[-1]))
        lengths = [int(data[d].attrs["num_samples"]) for d in demos]
        first = data[demos[0]] if demos else None
        shapes = {}
        if first is not None:
            shapes = {f"obs/{k}": list(first["obs"][k].shape[1:]) for k in first["obs"]}
            shapes.update(
                {k: list(first[k].shape[1:]) for k in ("actions", "rewards", "dones", "states") if k in first}
            )
        import yaml

        spec = yaml.safe_load(data.attrs.get("task_spec", "") or "{}") or {}
        return {
            "path": str(path),
            "episodes": len(demos),
            "steps": int(data.attrs.get("total", sum(lengths))),
            "mean_length": float(np.mean(lengths)) if lengths else 0.0,
            "successes": int(sum(bool(data[d].attrs["success"]) for d in demos)),
            "task": spec.get("name", ""),
            "keys": shapes,
            "created": str(data.attrs.get("created", "")),
        }
