"""Pictures of a scene: multi-view PNGs for the critic and people, and rollout videos.

Rendering runs headless on the CPU (Mesa EGL): 40-100 ms a 320x240 view. Only env 0 is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

DEFAULT_VIEWS = ("front", "side", "top")


def render_views(env, out_dir: Path, views: Iterable[str] = DEFAULT_VIEWS, prefix: str = "") -> dict[str, Path]:
    """Render env 0 from each named camera to `out_dir/<prefix><view>.png`; returns view -> path."""
    from PIL import Image

    cameras = env.built.cameras
    if not cameras:
        raise ValueError("this scene was built without cameras; build it with SceneConfig(cameras=True)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    _sync(env)
    for view in views:
        if view not in cameras:
            raise ValueError(f"unknown view '{view}'; views: {', '.join(cameras)}")
        rgb = _frame(cameras[view])
        path = out_dir / f"{prefix}{view}.png"
        Image.fromarray(rgb).save(path)
        paths[view] = path
    return paths


def _sync(env) -> None:
    """Bring the renderer up to date with states set outside a step (resets, restored states)."""
    env.built.scene.visualizer.update(force=True)


def _frame(camera) -> np.ndarray:
    rgb = camera.render(rgb=True, depth=False)[0]
    rgb = np.asarray(rgb.cpu() if hasattr(rgb, "cpu") else rgb)
    if rgb.ndim == 4:  # (n_envs, h, w, 3) when several envs are rendered
        rgb = rgb[0]
    return rgb.astype(np.uint8)


def record_rollout(
    env,
    act: Callable[[int], object],
    steps: int,
    out_path: Path,
    view: str = "oblique",
    every: int = 2,
    fps: int | None = None,
) -> Path:
    """Run `steps` steps, `act(t)` giving each step's `StepResult`-producing call, and save a video of env 0.

    `act(t)` must advance the env one step (e.g. `lambda t: env.step(policy(obs))`). MP4 when ffmpeg is
    available (imageio-ffmpeg ships it), GIF otherwise or when `out_path` ends in .gif.
    """
    import imageio.v2 as imageio

    camera = env.built.cameras.get(view)
    if camera is None:
        raise ValueError(f"unknown view '{view}'; build the scene with cameras")
    _sync(env)
    frames = [_frame(camera)]
    for t in range(steps):
        act(t)
        if (t + 1) % every == 0:
            frames.append(_frame(camera))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fps = fps or max(1, round(1.0 / (env.dt * every)))
    if out_path.suffix == ".gif":
        imageio.mimsave(out_path, frames, duration=1.0 / fps, loop=0)
    else:
        imageio.mimsave(out_path, frames, fps=fps, macro_block_size=1)
    return out_path
