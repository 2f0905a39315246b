"""Probes of a scene for the agent's tools, as worker jobs (see dexforge.jobs): a picture from any camera,
the scene settling over time, a batch of real metrics; and the helpers `check_scene` uses to save the
bodies' boxes and a metrics batch beside its findings.

Every job builds the spec in its own worker (Genesis allows one `gs.init` per process) and returns a
result model of `dexforge.sim.probe_types` as JSON. Pictures are of env 0, rendered headless.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from dexforge.sim import hand as H
from dexforge.sim.checks import MOVE_TOL, SETTLE_TIME, TILT_TOL, WORKSPACE_XY
from dexforge.sim.probe_types import (
    BodyBox,
    MetricsBatchResult,
    RenderViewResult,
    SceneState,
    SettleObject,
    SettlePreviewResult,
)
from dexforge.sim.spec import TaskSpec

RANDOM_ACTION = 0.2  # half-range of the small random actions the metrics batches are recorded under
TABLE_THICKNESS = 0.02  # m: the synthetic table box reaches this far below z = 0
SETTLE_FOV = 45.0  # degrees: the scene cameras' field of view
TIP_NAMES = tuple(f"{finger}_tip" for finger in H.FINGERS)


# bodies ---------------------------------------------------------------------------------------------
def _vec(t: torch.Tensor) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in t.reshape(3))
    return (x, y, z)


def _box(name: str, kind: str, pos: torch.Tensor, aabb: torch.Tensor) -> BodyBox:
    return BodyBox(name=name, kind=kind, pos=_vec(pos), aabb_min=_vec(aabb[0]), aabb_max=_vec(aabb[1]))


def body_boxes(env, i: int = 0) -> list[BodyBox]:
    """Boxes of env `i` as it is now: every object, the hand, its palm and fingertips, the arm, the table.

    Reads `env.metrics`, so call it after a step, a reset or a `set_state` (they refresh the metrics)."""
    m = env.metrics
    boxes = [_box(name, "object", m[f"{name}.pos"][i], entity.get_AABB()[i]) for name, entity in env.objects.items()]
    hand = env.built.hand
    boxes.append(_box("hand", "hand", m["palm_pos"][i], hand.get_AABB()[i]))
    boxes.append(_box("palm", "hand", m["palm_pos"][i], hand.get_link("palm").get_AABB()[i]))
    for j, (name, link) in enumerate(zip(TIP_NAMES, H.FINGERTIP_LINKS, strict=True)):
        boxes.append(_box(name, "hand", m["fingertip_pos"][i, j], hand.get_link(link).get_AABB()[i]))
    if env.built.arm is not None:
        aabb = env.built.arm.get_AABB()[i]
        boxes.append(_box("arm", "hand", aabb.mean(dim=0), aabb))
    boxes.append(table_box())
    return boxes


def table_box() -> BodyBox:
    """The table area the checks use (|x|, |y| <= WORKSPACE_XY), as a thin box under z = 0."""
    w = WORKSPACE_XY
    return BodyBox(
        name="table", kind="table", pos=(0.0, 0.0, 0.0), aabb_min=(-w, -w, -TABLE_THICKNESS), aabb_max=(w, w, 0.0)
    )


def settle_hand_still(env, seconds: float) -> None:
    """Simulate `seconds` with every robot joint holding its current target (as the settling check does)."""
    targets = env.targets.clone()
    for _ in range(max(1, round(seconds / env.dt))):
        env.step_targets(targets)


# metrics -----------------------------------------------------------------------------------------------
def random_actions(env, generator: torch.Generator, scale: float = RANDOM_ACTION) -> torch.Tensor:
    """(N, A) actions uniform in [-scale, scale], drawn from `generator`."""
    u = torch.rand(env.num_envs, env.num_actions, generator=generator)
    return ((u * 2 - 1) * scale).to(env.device)


def _cpu(metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in metrics.items()}


def stacked_metrics(env, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Run `steps` steps of small seeded random actions and stack every step's metrics along the batch
    dimension: each tensor gets `steps * num_envs` rows (a (N, 3) metric becomes (steps * N, 3))."""
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, torch.Tensor]] = []
    with torch.no_grad():
        for _ in range(steps):
            rows.append(_cpu(env.step(random_actions(env, gen)).metrics))
    return {k: torch.cat([r[k] for r in rows]) for k in rows[0]} if rows else _cpu(env.metrics)


def save_metrics(metrics: dict[str, torch.Tensor], path: Path) -> MetricsBatchResult:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(metrics, path)
    n = int(next(iter(metrics.values())).shape[0]) if metrics else 0
    return MetricsBatchResult(path=str(path), num_envs=n, keys=sorted(metrics))


def load_start_states(env, path: str | Path) -> None:
    """Have `env`'s resets start from the end states saved at `path` (an end_states.pt of a subtask)."""
    from dexforge.sim.env import EnvState

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no start states at {path}; pass the end_states.pt a previous subtask saved")
    state = EnvState.load(path)
    joints, objects = state.robot_q.shape[-1], set(state.objects_q)
    expected = {k for k, e in env.objects.items() if e.n_qs}
    if joints != len(env.joint_names) or objects != expected:
        raise ValueError(
            f"the start states in {path.name} were saved from another scene ({joints} robot joints, objects "
            f"{sorted(objects)}); this spec has {len(env.joint_names)} joints and objects {sorted(expected)}"
        )
    env.set_start_states(state)


# cameras -----------------------------------------------------------------------------------------------
def aim(camera, eye, target, fov: float) -> None:
    """Point a scene camera from `eye` at `target` with a vertical field of view of `fov` degrees."""
    eye_t, target_t = torch.tensor(eye, dtype=torch.float64), torch.tensor(target, dtype=torch.float64)
    view = target_t - eye_t
    if float(view.norm()) < 1e-6:
        raise ValueError(f"the camera's eye {list(eye)} and target {list(target)} coincide; move the eye away")
    vertical = abs(float(view[2])) / float(view.norm()) > 0.999
    up = (1.0, 0.0, 0.0) if vertical else (0.0, 0.0, 1.0)  # looking straight down: image up is +x
    camera._fov = float(fov)  # Genesis has no setter; the rasteriser reads `fov` when set_pose refreshes it
    camera.set_pose(pos=eye_t.numpy(), lookat=target_t.numpy(), up=torch.tensor(up, dtype=torch.float64).numpy())


def framing_view(env, fov: float = SETTLE_FOV) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(eye, target) of a 3/4 view from the front-right (as the scene's `oblique` camera) that frames every
    object of env 0."""
    from dexforge.sim.scene import CAMERA_VIEWS

    eye, target, _ = CAMERA_VIEWS["oblique"]
    if not env.objects:
        return eye, target
    boxes = torch.stack([e.get_AABB()[0].cpu().double() for e in env.objects.values()])  # (K, 2, 3)
    lo, hi = boxes[:, 0].min(dim=0).values, boxes[:, 1].max(dim=0).values
    centre = (lo + hi) / 2
    radius = max(float((hi - lo).norm()) / 2, 0.08)
    distance = max(1.3 * radius / math.sin(math.radians(fov) / 2), 0.35)
    direction = torch.tensor(eye, dtype=torch.float64) - torch.tensor(target, dtype=torch.float64)
    new_eye = centre + direction / direction.norm() * distance
    return tuple(float(v) for v in new_eye), tuple(float(v) for v in centre)


def _camera_env(spec: TaskSpec, width: int, height: int, backend: str):
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.scene import SceneConfig

    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise ValueError(f"image size {width}x{height} is out of range; use 16 to 4096 pixels a side")
    config = SceneConfig(n_envs=1, cameras=True, camera_res=(width, height), backend=backend)
    return HandEnv(spec, EnvConfig(randomize=False, auto_reset=False), config)


def _save_png(camera, path: Path) -> Path:
    from PIL import Image

    from dexforge.sim.render import _frame

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_frame(camera)).save(path)
    return path


# jobs ------------------------------------------------------------------------------------------------
def render_view_job(
    spec_yaml: str,
    out_path: str,
    eye: list[float],
    target: list[float],
    width: int = 640,
    height: int = 480,
    fov: float = 40.0,
    backend: str = "cpu",
) -> dict:
    """One PNG of the spec's initial layout (env 0, no randomisation) from a camera at `eye` looking at
    `target` (m), `fov` degrees vertically. Returns a RenderViewResult."""
    from dexforge.sim.render import _sync

    if len(eye) != 3 or len(target) != 3:
        raise ValueError(f"eye and target are 3 numbers (x, y, z in m); got {list(eye)} and {list(target)}")
    if not 1.0 <= fov <= 170.0:
        raise ValueError(f"fov {fov} is out of range; use 1 to 170 degrees")
    env = _camera_env(TaskSpec.from_yaml(spec_yaml), width, height, backend)
    camera = env.built.cameras["front"]
    aim(camera, eye, target, fov)
    _sync(env)
    path = _save_png(camera, Path(out_path))
    result = RenderViewResult(
        image=str(path), eye=tuple(eye), target=tuple(target), width=width, height=height, fov=fov
    )
    return result.model_dump(mode="json")


def settle_preview_job(
    spec_yaml: str,
    out_dir: str,
    seconds: float = 1.0,
    frames: int = 4,
    eye: list[float] | None = None,
    target: list[float] | None = None,
    width: int = 320,
    height: int = 240,
    backend: str = "cpu",
) -> dict:
    """The spec's initial layout settling for `seconds` with no actions (the hand holds its pose):
    `frames` PNGs evenly spaced in time from t = 0 in `out_dir`, and each object's displacement and tilt.
    Without `eye`/`target`, a 3/4 view that frames the objects. Returns a SettlePreviewResult."""
    from dexforge.sim.render import _sync
    from dexforge.sim.rotations import tilt_angle

    if not 0.0 < seconds <= 10.0:
        raise ValueError(f"seconds {seconds} is out of range; preview 0 to 10 s")
    if not 1 <= frames <= 30:
        raise ValueError(f"frames {frames} is out of range; ask for 1 to 30")
    env = _camera_env(TaskSpec.from_yaml(spec_yaml), width, height, backend)
    camera = env.built.cameras["front"]
    default_eye, default_target = framing_view(env)
    aim(camera, eye or default_eye, target or default_target, SETTLE_FOV)
    _sync(env)
    n_steps = max(1, round(seconds / env.dt))
    at = [0] if frames == 1 else [round(k * n_steps / (frames - 1)) for k in range(frames)]
    m = env.metrics
    start = {k: (m[f"{k}.pos"][0].clone(), m[f"{k}.quat"][0].clone()) for k in env.objects}
    out = Path(out_dir)
    paths = [_save_png(camera, out / "settle_00.png")] if 0 in at else []
    targets = env.targets.clone()
    with torch.no_grad():
        for t in range(1, n_steps + 1):
            env.step_targets(targets)
            for _ in range(at.count(t)):
                paths.append(_save_png(camera, out / f"settle_{len(paths):02d}.png"))
    m = env.metrics
    objects = []
    for name, (p0, q0) in start.items():
        p1, q1 = m[f"{name}.pos"][0], m[f"{name}.quat"][0]
        tilt = math.degrees(float(tilt_angle(q1[None], q0[None])[0]))
        drop = float(p0[2] - p1[2])
        objects.append(
            SettleObject(
                name=name,
                start_pos=_vec(p0),
                end_pos=_vec(p1),
                moved_m=float((p1 - p0).norm()),
                tilt_deg=tilt,
                fell=drop > MOVE_TOL or tilt > TILT_TOL,
            )
        )
    result = SettlePreviewResult(
        frames=[str(p) for p in paths], times_s=[round(t * env.dt, 6) for t in at], objects=objects
    )
    return result.model_dump(mode="json")


def metrics_batch_job(
    spec_yaml: str,
    out_path: str,
    start_states: str | None = None,
    n_envs: int = 16,
    steps: int = 8,
    backend: str = "cpu",
) -> dict:
    """A real batch of the env's metrics dict, saved with torch.save at `out_path` (CPU tensors, `n_envs`
    rows): after `steps` steps of small seeded random actions (uniform in [-0.2, 0.2]) from the spec's
    randomised layout (the spec's seed) or from `start_states` (an end_states.pt of a previous subtask).
    Returns a MetricsBatchResult."""
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.scene import SceneConfig

    if not 1 <= n_envs <= 4096:
        raise ValueError(f"n_envs {n_envs} is out of range; use 1 to 4096")
    if not 0 <= steps <= 10_000:
        raise ValueError(f"steps {steps} is out of range; use 0 to 10000")
    spec = TaskSpec.from_yaml(spec_yaml)
    env = HandEnv(spec, EnvConfig(auto_reset=False), SceneConfig(n_envs=n_envs, backend=backend))
    if start_states:
        load_start_states(env, start_states)
        env.reset()
    gen = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for _ in range(steps):
            env.step(random_actions(env, gen))
    return save_metrics(_cpu(env.metrics), Path(out_path)).model_dump(mode="json")


def scene_state_and_metrics(env, run_checks_here, out_dir: Path, metric_steps: int = 16):
    """For `check_scene`: run `run_checks_here(on_settled)` (the checks, on `env`; the settling check calls
    `on_settled(env)` on the settled scene), then write `scene_state.json` (the boxes as laid out and settled)
    and `metrics_batch.pt` (`metric_steps` rows of env 0) into `out_dir`.
    Returns (the checks' report, scene_state path, metrics_batch path)."""
    bodies = body_boxes(env)
    captured: list[list[BodyBox]] = []
    report = run_checks_here(lambda settled: captured.append(body_boxes(settled)))
    if not captured:  # no settling check ran (no free object to watch?): simulate it here
        state = env.get_state()
        settle_hand_still(env, SETTLE_TIME)
        captured.append(body_boxes(env))
        env.set_state(state)
    state = SceneState(bodies=bodies, settled=captured[-1], settle_s=SETTLE_TIME)
    scene_path = Path(out_dir) / "scene_state.json"
    scene_path.write_text(state.model_dump_json(indent=1))
    batch = save_metrics(stacked_metrics(env, metric_steps, seed=env.spec.seed), Path(out_dir) / "metrics_batch.pt")
    return report, scene_path, Path(batch.path)
