"""The trajectory dataset: robomimic layout, metadata, and clear errors for wrong input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from dexforge.home import DexforgeError
from dexforge.policies.dataset import TrajectoryWriter, inspect


def test_episodes_are_written_in_robomimic_layout(tmp_path):
    path = tmp_path / "d.hdf5"
    with TrajectoryWriter(path, task_spec_yaml="name: t\n", plan_yaml="task: t\n", env_args={"n": 2}) as w:
        for t in (5, 7):
            obs = {"joint_pos": np.random.rand(t, 30), "cube.pos": np.random.rand(t, 3)}
            w.add_episode(obs, np.random.rand(t, 30), rewards=np.ones(t), states=np.zeros((t, 37)), subtask_ends=[2, t])
    with h5py.File(path) as f:
        assert f["data"].attrs["total"] == 12
        assert sorted(f["data"]) == ["demo_0", "demo_1"]
        d1 = f["data/demo_1"]
        assert d1.attrs["num_samples"] == 7 and d1["obs/cube.pos"].shape == (7, 3)
        assert list(d1["dones"][:]) == [0] * 6 + [1] and d1["rewards"][:].sum() == 7
        assert d1["states"].shape == (7, 37) and d1.attrs["subtask_ends"] == "[2, 7]"
    info = inspect(path)
    assert info["episodes"] == 2 and info["steps"] == 12 and info["task"] == "t" and info["successes"] == 2
    assert info["keys"]["obs/joint_pos"] == [30] and info["keys"]["actions"] == [30]


def test_mismatched_lengths_and_bad_files_are_clear_errors(tmp_path):
    with TrajectoryWriter(tmp_path / "d.hdf5", task_spec_yaml="name: t\n") as w:
        with pytest.raises(ValueError, match="obs 'palm_pos' has 4 steps, actions have 5"):
            w.add_episode({"palm_pos": np.zeros((4, 3))}, np.zeros((5, 30)))
        with pytest.raises(ValueError, match="at least one step"):
            w.add_episode({}, np.zeros((0, 30)))
    with pytest.raises(DexforgeError, match="no such dataset file"):
        inspect(tmp_path / "nope.hdf5")
    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(DexforgeError, match="no 'data' group"):
        inspect(tmp_path / "other.hdf5")
