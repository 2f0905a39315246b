"""Data processing for DexGen: per-feature normalisation and training windows cut from episodes.

Window alignment (one sample per step t of an episode of length L):

    state[s] = [keypoints[s] (K*3), joint_pos[s] (J), targets[s-1] (J)]   the targets applied *before* step s
    cond     = state[t-H+1], ..., state[t]                                  oldest first, (H*state_dim,)
    mode     = mode[t]
    motion   = keypoints[t+1 .. t+T] - keypoints[t]                         flattened (T, K, 3), (T*K*3,)
    target   = targets[t]                                                    applied at t, produced keypoints[t+1]

state[0] has no previous target, so nothing is padded: the oldest state of a window is at s >= 1, i.e.
t runs over H .. L-1-T and an episode yields L - H - T samples; episodes with L <= H + T yield none and are
skipped. At run time the controller builds its condition with the same `make_state`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from dexforge.policies.dexgen.config import DexGenConfig

EPISODE_KEYS = ("keypoints", "joint_pos", "targets", "mode")


class Normalizer:
    """Per-feature affine normalisation x -> (x - mean) / std, with std floored at `min_std`."""

    def __init__(self, min_std: float = 1e-4) -> None:
        self.min_std = float(min_std)
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> Normalizer:
        """Statistics of `x` (N, F) over its first axis; returns self."""
        if x.ndim != 2 or x.shape[0] < 1:
            raise ValueError(f"Normalizer.fit wants a (N, F) tensor with N >= 1, got shape {tuple(x.shape)}")
        x = x.detach().to(torch.float64)
        self.mean = x.mean(0).float()
        self.std = x.std(0, correction=0).clamp_min(self.min_std).float()
        return self

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None or self.std is None:
            raise RuntimeError("Normalizer has no statistics; call fit() or load_state_dict() first")
        return self.mean.to(like.device, like.dtype), self.std.to(like.device, like.dtype)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(..., F) raw -> (..., F) normalised."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        """(..., F) normalised -> (..., F) raw."""
        mean, std = self._stats(x)
        return x * std + mean

    def state_dict(self) -> dict[str, torch.Tensor]:
        """{"mean": (F,), "std": (F,), "min_std": ()} as plain tensors."""
        mean, std = self._stats(torch.zeros(()))
        return {"mean": mean.clone(), "std": std.clone(), "min_std": torch.tensor(self.min_std)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> Normalizer:
        """Inverse of `state_dict`; returns self."""
        mean, std = torch.as_tensor(state["mean"]).float(), torch.as_tensor(state["std"]).float()
        if mean.shape != std.shape or mean.ndim != 1:
            raise ValueError(f"normalizer mean {tuple(mean.shape)} and std {tuple(std.shape)} must be equal 1-D")
        if "min_std" in state:
            self.min_std = float(state["min_std"])
        self.mean, self.std = mean.clone(), std.clamp_min(self.min_std)
        return self


def make_state(keypoints: torch.Tensor, joint_pos: torch.Tensor, prev_targets: torch.Tensor) -> torch.Tensor:
    """One step of state: keypoints (..., K, 3), joint_pos (..., J), prev_targets (..., J) -> (..., K*3 + 2J)."""
    flat = keypoints.reshape(*keypoints.shape[:-2], -1)
    return torch.cat([flat, joint_pos, prev_targets], dim=-1)


def _check_episode(i: int, ep: Mapping[str, torch.Tensor], cfg: DexGenConfig) -> int:
    missing = [k for k in EPISODE_KEYS if k not in ep]
    if missing:
        raise ValueError(f"episode {i} lacks {missing}; every episode needs {list(EPISODE_KEYS)}")
    length = ep["keypoints"].shape[0]
    want = {
        "keypoints": (length, cfg.n_keypoints, 3),
        "joint_pos": (length, cfg.n_joints),
        "targets": (length, cfg.n_joints),
        "mode": (length,),
    }
    for key, shape in want.items():
        if tuple(ep[key].shape) != shape:
            raise ValueError(f"episode {i}: {key} has shape {tuple(ep[key].shape)}, expected {shape} (L, ...)")
    mode = ep["mode"]
    if length and (mode.min() < 0 or mode.max() >= cfg.n_modes):
        raise ValueError(f"episode {i}: mode labels must lie in [0, {cfg.n_modes}), got {mode.min()}..{mode.max()}")
    return length


def make_windows(episodes: Sequence[Mapping[str, torch.Tensor]], cfg: DexGenConfig) -> dict[str, torch.Tensor]:
    """Training samples from every step with enough history and future (alignment in the module docstring).

    Each episode is a dict of keypoints (L, K, 3), joint_pos (L, J), targets (L, J) and mode (L,) int.
    Returns cond (N, H*state_dim), mode (N,) int64, motion (N, T*K*3) and target (N, J), float32.
    """
    h, horizon = cfg.history, cfg.horizon
    parts: dict[str, list[torch.Tensor]] = {"cond": [], "mode": [], "motion": [], "target": []}
    for i, ep in enumerate(episodes):
        length = _check_episode(i, ep, cfg)
        if length <= h + horizon:
            continue
        kp = ep["keypoints"].float()
        # states[s - 1] is state[s] for s = 1 .. L-1
        states = make_state(kp[1:], ep["joint_pos"][1:].float(), ep["targets"][:-1].float())
        t = torch.arange(h, length - horizon)
        window = t[:, None] + torch.arange(-h + 1, 1)[None, :]  # (N, H) step indices, oldest first
        parts["cond"].append(states[window - 1].reshape(len(t), -1))
        parts["mode"].append(ep["mode"][t].long())
        future = t[:, None] + torch.arange(1, horizon + 1)[None, :]  # (N, T)
        parts["motion"].append((kp[future] - kp[t][:, None]).reshape(len(t), -1))
        parts["target"].append(ep["targets"][t].float())
    if not parts["cond"]:
        raise ValueError(
            f"no episode is longer than history + horizon = {h + horizon} steps; record longer episodes "
            "or lower DexGenConfig.history / horizon"
        )
    return {key: torch.cat(value) for key, value in parts.items()}
