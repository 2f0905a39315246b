"""Settings of a DexGen controller: sizes of the data, of both networks and of the sampler.

A config is frozen; it travels inside every checkpoint as a plain dict (`to_dict`/`from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

CONFIG_VERSION = 1
"""Newest config layout this code reads."""


@dataclass(frozen=True)
class DexGenConfig:
    """Sizes and settings of the keypoint diffusion model, the inverse dynamics model and the sampler."""

    n_keypoints: int = 10
    """K: finger keypoints in the wrist frame (5 fingertips and 5 middle joints)."""
    n_joints: int = 22
    """J: actuated finger joints (22 on the Shadow hand)."""
    history: int = 4
    """H: past steps of robot state stacked into the condition, the current step included."""
    horizon: int = 2
    """T: future steps of keypoint motion the diffusion model generates."""
    n_modes: int = 3
    """Mode labels (0 is the default label; the meaning of the others is the dataset's)."""
    hidden: int = 256
    """Width of the U-Net's first block; block i has hidden / 2**i units (a multiple of 8 * 2**(n_blocks-1))."""
    n_blocks: int = 3
    """U-Net blocks on the way down and again on the way up."""
    state_hidden: int = 256
    """Width of the state encoder MLP and of each condition embedding (a multiple of 8)."""
    state_layers: int = 3
    """Linear + GroupNorm + Mish layers in the state encoder."""
    diffusion_steps: int = 100
    """Noise levels used in training."""
    ddim_steps: int = 8
    """DDIM steps at inference unless `act` is told otherwise."""
    beta_schedule: Literal["cosine", "linear"] = "cosine"
    """Noise schedule: cosine (Nichol and Dhariwal 2021) or linear (scaled to `diffusion_steps`)."""
    clip_sample: float | None = 5.0
    """Clamp each predicted clean sample to +-this many standard deviations while sampling; None: no clamp."""
    id_hidden: int = 256
    """Width of the inverse dynamics residual MLP."""
    id_blocks: int = 3
    """Residual blocks in the inverse dynamics MLP."""
    guidance: float = 1.0
    """Default guidance strength when a command is given (see diffusion.guide_x0)."""
    command_clip: float | None = 2.0
    """Clamp a command to +-this many of the data's standard deviations (normalised) before it guides: a
    command far outside the data (a noisy policy's) pulls only as far as the data's range; None: no clamp."""
    version: int = CONFIG_VERSION
    """Layout version of this config."""

    def __post_init__(self) -> None:
        for name in ("n_keypoints", "n_joints", "history", "horizon", "n_modes", "n_blocks", "state_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"DexGenConfig.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("id_hidden", "id_blocks", "ddim_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"DexGenConfig.{name} must be at least 1, got {getattr(self, name)}")
        step = 8 * 2 ** (self.n_blocks - 1)
        if self.hidden % step:
            raise ValueError(
                f"DexGenConfig.hidden={self.hidden} must be a multiple of {step} so that every one of the "
                f"{self.n_blocks} U-Net blocks has groups of 8 units; try {max(step, self.hidden // step * step)}"
            )
        if self.state_hidden % 8:
            raise ValueError(f"DexGenConfig.state_hidden={self.state_hidden} must be a multiple of 8 (GroupNorm)")
        if self.diffusion_steps < 2 or self.ddim_steps > self.diffusion_steps:
            raise ValueError(
                f"need 2 <= diffusion_steps and ddim_steps <= diffusion_steps, got {self.diffusion_steps} "
                f"and {self.ddim_steps}"
            )
        if self.beta_schedule not in ("cosine", "linear"):
            raise ValueError(f"beta_schedule must be 'cosine' or 'linear', got {self.beta_schedule!r}")
        if self.command_clip is not None and self.command_clip <= 0:
            raise ValueError(f"command_clip must be positive or None, got {self.command_clip}")
        if self.clip_sample is not None and self.clip_sample <= 0:
            raise ValueError(f"clip_sample must be positive or None, got {self.clip_sample}")
        if self.guidance < 0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")

    @property
    def state_dim(self) -> int:
        """One step of state: keypoints (K*3), joint positions (J), the joint targets applied before it (J)."""
        return self.n_keypoints * 3 + 2 * self.n_joints

    @property
    def motion_dim(self) -> int:
        """Flattened (T, K, 3) keypoint offsets from the current keypoints."""
        return self.horizon * self.n_keypoints * 3

    @property
    def cond_dim(self) -> int:
        """Flattened (H, state_dim) state history, oldest step first."""
        return self.history * self.state_dim

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DexGenConfig:
        """Inverse of `to_dict`; refuses unknown fields and layouts newer than this code."""
        version = int(data.get("version", CONFIG_VERSION))
        if version > CONFIG_VERSION:
            raise ValueError(
                f"DexGen config version {version} is newer than this dexforge reads ({CONFIG_VERSION}); "
                "upgrade dexforge to load it"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DexGen config fields {unknown}; known fields are {sorted(known)}")
        return cls(**data)
