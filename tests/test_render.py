"""Headless renders and rollout videos of env 0."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from dexforge.sim.env import EnvConfig, HandEnv
from dexforge.sim.render import record_rollout, render_views
from dexforge.sim.scene import SceneConfig
from dexforge.sim.spec import HandSpec, ObjectSpec, Pose, TaskSpec

pytestmark = pytest.mark.genesis


@pytest.fixture(scope="module")
def env():
    spec = TaskSpec(
        hand=HandSpec(pose=Pose(pos=(-0.05, 0.0, 0.2))),
        objects=[
            ObjectSpec(asset="apple", pose=Pose(pos=(0.0, -0.1, 0.04))),
            ObjectSpec(asset="bowl", pose=Pose(pos=(0.05, 0.12, 0.03))),
        ],
    )
    return HandEnv(spec, EnvConfig(active=("fingers",)), SceneConfig(n_envs=2, cameras=True, camera_res=(160, 120)))


def test_views_are_non_blank_images_of_the_expected_size(env, tmp_path):
    paths = render_views(env, tmp_path, ["front", "side", "top"])
    images = {}
    for view, path in paths.items():
        img = np.asarray(Image.open(path))
        assert img.shape == (120, 160, 3), view
        assert img.std() > 10, f"{view} is blank"  # a real picture has contrast
        images[view] = img
    assert np.abs(images["front"].astype(int) - images["top"].astype(int)).mean() > 5  # different viewpoints


def test_the_apple_is_red_in_the_top_view(env, tmp_path):
    img = np.asarray(Image.open(render_views(env, tmp_path, ["top"])["top"])).astype(int)
    red = (img[..., 0] > 120) & (img[..., 1] < 80) & (img[..., 2] < 80)
    assert red.sum() > 20


def test_unknown_view_is_a_clear_error(env, tmp_path):
    with pytest.raises(ValueError, match="unknown view 'back'"):
        render_views(env, tmp_path, ["back"])


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_rollout_video(env, tmp_path, suffix):
    env.reset()
    close = torch.ones(2, env.num_actions)  # curl every finger joint
    path = record_rollout(env, lambda t: env.step(close), 40, tmp_path / f"r{suffix}", every=4)
    frames = iio.imread(path, index=None)
    assert len(frames) == 11  # the first frame and one every 4 steps
    assert frames[0].shape[:2] == (120, 160)
    changed = np.abs(frames[-1].astype(int) - frames[0].astype(int)).max(axis=-1) > 25
    assert changed.sum() > 15  # the fingers curled in the picture (mp4 compression blurs small changes)
