"""DexGen training data: roll out a policy on a HandEnv while the wrist wanders, record DexGen's state per step,
cut every env's rollout at its first drop, and store episodes in one HDF5 file.

Per step t of a run (t = 0 .. steps-1), for every env, before the step is taken:
    keypoints[t] (10, 3) palm frame, joint_pos[t] (22,)  state t (policies.dexgen.keypoints)
    held[t]                                              the object is held in state t (`object_held`)
and after it: targets[t] (22,), the finger targets the step applied (they produced state t+1), so an
episode is what `processing.make_windows` reads. Following DexterityGen (appendix A), a rollout that
drops the object loses its last `drop_margin_s` seconds before the drop, and everything after it.

HDF5 layout (`save_dataset`):
    /            attrs: format "dexforge.dexgen.data", version 1, provenance (JSON), created, dexforge_version
    /episodes/ep_<i>/keypoints (L, 10, 3) f32, joint_pos (L, 22) f32, targets (L, 22) f32, mode (L,) i64,
                     held (L,) bool; attrs hold_s (s until the drop, or the run's length), dropped, env
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dexforge.policies.dexgen.keypoints import FINGER_JOINT_NAMES, MIDDLE_LINKS, HandReader
from dexforge.sim import hand as H
from dexforge.sim.env import HandEnv, Metrics

FORMAT = "dexforge.dexgen.data"
FORMAT_VERSION = 1
STEP_KEYS = ("keypoints", "joint_pos", "targets", "mode", "held")
Episode = dict[str, torch.Tensor]


@dataclass(frozen=True)
class WristMotionConfig:
    """Random smooth wrist paths: per env and wrist joint, a sum of sinusoids faded in from the start pose."""

    translation: float = 0.04
    """Largest offset of wrist_x/y/z from the start targets, m."""
    rotation: float = math.pi / 4
    """Largest offset of wrist_roll/pitch/yaw from the start targets, rad."""
    components: int = 3
    """Sinusoids summed per joint."""
    frequency: tuple[float, float] = (0.05, 0.4)
    """Range of their frequencies, Hz."""
    ramp_s: float = 1.0
    """The offsets fade in over this long (smoothstep), so the wrist starts at rest."""

    def __post_init__(self) -> None:
        lo, hi = self.frequency
        if self.translation < 0 or self.rotation < 0 or self.components < 1 or not 0 < lo <= hi or self.ramp_s < 0:
            raise ValueError(
                f"invalid WristMotionConfig {self}: need amplitudes >= 0, components >= 1, 0 < f_lo <= f_hi"
            )


class WristMotion:
    """Pre-step hook: sets the six floating-wrist targets to start + offset(t) before each `env.step`.

    Amplitudes, frequencies and phases are drawn per env from a seeded generator at `begin`, and again for an
    env whose episode restarted (its step count went down); |offset| stays below the config's amplitudes and
    the targets within the joint limits. Finger targets are left alone. The wrist joints must not be active
    (the policy would fight the hook)."""

    def __init__(self, cfg: WristMotionConfig | None = None, *, seed: int = 0) -> None:
        self.cfg = cfg or WristMotionConfig()
        self.seed = seed
        self.gen = torch.Generator().manual_seed(seed)
        self._env: HandEnv | None = None

    def begin(self, env: HandEnv) -> None:
        """Draw new paths for every env, starting at its current wrist targets."""
        missing = [j for j in H.WRIST_JOINTS if j not in env.joint_names]
        if missing:
            raise ValueError(f"wrist motion needs the floating wrist joints {missing}; this env has an arm mount")
        active = [j for j in H.WRIST_JOINTS if j in env.active_joints]
        if active:
            raise ValueError(f"wrist motion needs the wrist frozen, but {active} are active; use active=('fingers',)")
        self._env = env
        self.cols = torch.tensor([env.joint_names.index(j) for j in H.WRIST_JOINTS], device=env.device)
        n, k = env.num_envs, self.cfg.components
        self.base = torch.zeros(n, 6, device=env.device)
        self.amp, self.omega, self.phase = (torch.zeros(n, 6, k, device=env.device) for _ in range(3))
        self.t = torch.zeros(n, dtype=torch.long, device=env.device)
        self._last_step = env.episode_step.clone()
        self._draw(env, torch.arange(n, device=env.device))

    def _draw(self, env: HandEnv, idx: torch.Tensor) -> None:
        n, k, c = idx.numel(), self.cfg.components, self.cfg
        peak = torch.tensor([c.translation] * 3 + [c.rotation] * 3)
        weights = torch.rand(n, 6, k, generator=self.gen)
        scale = 0.3 + 0.7 * torch.rand(n, 6, 1, generator=self.gen)
        lo, hi = c.frequency
        freq = lo + (hi - lo) * torch.rand(n, 6, k, generator=self.gen)
        phase = 2 * math.pi * torch.rand(n, 6, k, generator=self.gen)
        dev = env.device
        self.amp[idx] = (peak[None, :, None] * scale * weights / weights.sum(-1, keepdim=True)).to(dev)
        self.omega[idx] = (2 * math.pi * freq).to(dev)
        self.phase[idx] = phase.to(dev)
        self.base[idx] = env.targets[idx][:, self.cols]
        self.t[idx] = 0

    def offset(self, t_s: torch.Tensor) -> torch.Tensor:
        """(N, 6) wrist offsets at times `t_s` (N,) seconds after each env's start."""
        waves = (self.amp * torch.sin(self.omega * t_s[:, None, None] + self.phase)).sum(-1)
        x = (t_s / self.cfg.ramp_s).clamp(0.0, 1.0) if self.cfg.ramp_s > 0 else torch.ones_like(t_s)
        return (x * x * (3 - 2 * x))[:, None] * waves

    def __call__(self, env: HandEnv) -> None:
        if self._env is not env:
            self.begin(env)
        restarted = (env.episode_step < self._last_step).nonzero().flatten()  # reset since the last call
        self._last_step = env.episode_step.clone()
        if restarted.numel():
            self._draw(env, restarted)
        target = self.base + self.offset(self.t.float() * env.dt)
        lo, hi = env.lower[self.cols], env.upper[self.cols]
        env.targets[:, self.cols] = torch.maximum(torch.minimum(target, hi), lo)
        self.t += 1


def object_held(m: Metrics, obj: str, max_palm_dist: float = 0.15) -> torch.Tensor:
    """(N,) bool: `obj` touches the palm or thumb and another finger, is off the ground and near the palm."""
    return m[f"{obj}.grasped"] & ~m[f"{obj}.on_ground"] & (m[f"{obj}.palm_dist"] < max_palm_dist)


def first_drop(held: torch.Tensor, grace: int = 0) -> torch.Tensor:
    """(N,) first step at which `held` (T, N) turns False and stays False for `grace` more steps (a run cut by
    the end of the recording counts); T where that never happens."""
    steps, n = held.shape
    lost = torch.cat([~held, torch.ones(grace, n, dtype=torch.bool, device=held.device)])
    lasting = lost.unfold(0, grace + 1, 1).all(-1)  # (T, N)
    return torch.where(lasting.any(0), lasting.float().argmax(0), torch.full((n,), steps, device=held.device))


def kept_length(drop: torch.Tensor, steps: int, margin: int) -> torch.Tensor:
    """(N,) steps kept per env: all `steps` where nothing dropped, else the steps up to `margin` before the drop."""
    return torch.where(drop < steps, (drop - margin).clamp(min=0), torch.full_like(drop, steps))


@torch.no_grad()
def collect(
    env: HandEnv,
    act: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int,
    obj: str,
    mode: int = 0,
    wrist_motion: WristMotion | None = None,
    drop_margin_s: float = 2.0,
    grace_s: float = 0.1,
    held: Callable[[Metrics], torch.Tensor] | None = None,
) -> list[Episode]:
    """Run `act(obs (N, O)) -> actions (N, A)` for `steps` steps from the envs' current states; one episode per env.

    The env does not reset itself meanwhile (auto-reset is off for the run, then restored), so set the start
    states first (`env.reset()` after `env.set_start_states(...)`). `held(m) -> (N,) bool` says whether the
    object is held (default `object_held(m, obj)`); a drop is the first step where it is not, for longer than
    `grace_s` (contact flicker), or a non-finite state. Episodes keep the steps up to `drop_margin_s` before
    the drop (all steps when there is none), hence may be empty; `hold_s` is the time to the drop.
    """
    if steps < 1 or drop_margin_s < 0 or grace_s < 0:
        raise ValueError(f"need steps >= 1, drop_margin_s >= 0, grace_s >= 0; got {steps}, {drop_margin_s}, {grace_s}")
    if obj not in env.objects:
        raise ValueError(f"unknown object '{obj}'; this scene has {env.object_names}")
    reader = HandReader(env)
    held_fn = held or (lambda m: object_held(m, obj))
    alive = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
    rec: dict[str, list[torch.Tensor]] = {"keypoints": [], "joint_pos": [], "targets": [], "held": []}
    auto_reset = env.auto_reset
    env.configure(auto_reset=False, reset=False)
    try:
        if wrist_motion is not None:
            wrist_motion.begin(env)
        obs = env.observations()
        for _ in range(steps):
            m = env.metrics
            rec["keypoints"].append(reader.keypoints(m))
            rec["joint_pos"].append(reader.joint_pos(m))
            rec["held"].append(held_fn(m).bool() & alive)
            actions = act(obs)
            if wrist_motion is not None:
                wrist_motion(env)
            result = env.step(actions)
            alive &= ~result.reset  # with auto-reset off, `reset` flags non-finite envs
            rec["targets"].append(reader.targets())
            obs = result.obs
    finally:
        env.configure(auto_reset=auto_reset, reset=False)
    data = {k: torch.stack(v, dim=1).cpu() for k, v in rec.items()}  # (N, T, ...)
    drop = first_drop(data["held"].T, round(grace_s / env.dt)).cpu()
    keep = kept_length(drop, steps, round(drop_margin_s / env.dt))
    episodes = []
    for i in range(env.num_envs):
        n = int(keep[i])
        ep = {k: v[i, :n].clone() for k, v in data.items()}
        ep["mode"] = torch.full((n,), mode, dtype=torch.long)
        ep["hold_s"] = torch.tensor(float(min(int(drop[i]), steps)) * env.dt)
        ep["dropped"] = torch.tensor(bool(drop[i] < steps))
        ep["env"] = torch.tensor(i)
        episodes.append(ep)
    return episodes


def run_provenance(
    env: HandEnv, *, obj: str, policy: str, steps: int, mode: int, seed: int, **extra: Any
) -> dict[str, Any]:
    """What a `save_dataset` provenance should hold about one run; add randomisation records etc. as `extra`."""
    return {
        "task": env.spec.name,
        "object": obj,
        "objects": list(env.object_names),
        "policy": policy,
        "steps": steps,
        "mode": mode,
        "seed": seed,
        "n_envs": env.num_envs,
        "dt": env.dt,
        "n_keypoints": len(H.FINGERTIP_LINKS) + len(MIDDLE_LINKS),
        "n_joints": len(FINGER_JOINT_NAMES),
        "keypoint_links": [*H.FINGERTIP_LINKS, *MIDDLE_LINKS],
        "joints": list(FINGER_JOINT_NAMES),
        **extra,
    }


def wrist_provenance(motion: WristMotion) -> dict[str, Any]:
    return {"config": asdict(motion.cfg), "seed": motion.seed}


def save_dataset(path: Path | str, episodes: Sequence[Episode], provenance: dict[str, Any]) -> Path:
    """Write `episodes` (collect's dicts: per-step tensors and 0-d scalars) and JSON-able `provenance` to HDF5."""
    import h5py

    from dexforge import __version__

    try:
        prov = json.dumps(provenance)
    except TypeError as exc:
        raise ValueError(f"provenance must be JSON-able (plain numbers, strings, lists, dicts): {exc}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with h5py.File(tmp, "w") as f:
        f.attrs.update(format=FORMAT, version=FORMAT_VERSION, provenance=prov, dexforge_version=__version__)
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        group = f.create_group("episodes")
        for i, ep in enumerate(episodes):
            g = group.create_group(f"ep_{i}")
            for key, value in ep.items():
                arr = torch.as_tensor(value).detach().cpu().numpy()
                if arr.ndim == 0:
                    g.attrs[key] = arr
                else:
                    g.create_dataset(key, data=arr, compression="gzip" if arr.size else None)
    os.replace(tmp, path)
    return path


def load_dataset(path: Path | str) -> tuple[list[Episode], dict[str, Any]]:
    """(episodes, provenance) from a `save_dataset` file; episodes come back in their saved order."""
    import h5py

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a DexGen dataset (format {f.attrs.get('format')!r}, want {FORMAT!r})")
        if int(f.attrs["version"]) > FORMAT_VERSION:
            raise ValueError(f"{path} has dataset version {f.attrs['version']}; this dexforge reads {FORMAT_VERSION}")
        group = f["episodes"]
        names = sorted(group, key=lambda name: int(name.split("_")[-1]))
        episodes = []
        for name in names:
            g = group[name]
            ep = {key: torch.from_numpy(np.asarray(g[key])) for key in g}
            ep.update({key: torch.tensor(np.asarray(value).item()) for key, value in g.attrs.items()})
            episodes.append(ep)
        return episodes, json.loads(f.attrs["provenance"])
