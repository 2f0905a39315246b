"""DexGen networks: a keypoint-motion diffusion model (MLP U-Net with FiLM) and an inverse dynamics model.

Both work in normalised space: the condition (B, H*state_dim), the motion (B, T*K*3) and the joint
targets (B, J) are normalised per feature by processing.Normalizer before they reach a network.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F

from dexforge.policies.dexgen.config import DexGenConfig


def _groups(width: int) -> int:
    """GroupNorm with groups of 8 units."""
    return max(1, width // 8)


class SinusoidalEmbedding(nn.Module):
    """Diffusion step t (B,) -> (B, dim) sines and cosines of geometrically spaced frequencies."""

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"SinusoidalEmbedding needs an even dim, got {dim}")
        freqs = torch.exp(-math.log(max_period) * torch.arange(dim // 2, dtype=torch.float32) / (dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class FiLMBlock(nn.Module):
    """Fully connected stand-in for a U-Net conv block: two Linear+GroupNorm+Mish layers, FiLM between them,
    and a residual connection. x (B, d_in), c (B, d_cond) -> (B, d_out)."""

    def __init__(self, d_in: int, d_out: int, d_cond: int) -> None:
        super().__init__()
        self.fc1, self.norm1 = nn.Linear(d_in, d_out), nn.GroupNorm(_groups(d_out), d_out)
        self.fc2, self.norm2 = nn.Linear(d_out, d_out), nn.GroupNorm(_groups(d_out), d_out)
        self.film = nn.Linear(d_cond, 2 * d_out)
        self.skip = nn.Linear(d_in, d_out) if d_in != d_out else nn.Identity()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.mish(self.norm1(self.fc1(x)))
        scale, shift = self.film(F.mish(c)).chunk(2, dim=-1)
        h = h * (1 + scale) + shift
        h = F.mish(self.norm2(self.fc2(h)))
        return h + self.skip(x)


class KeypointDiffusion(nn.Module):
    """Predicts the noise in a noised keypoint motion x_t (B, motion_dim) given the step t (B,), the state
    history cond (B, cond_dim) and the mode label (B,).

    The condition embedding is [state encoder(cond), mode embedding, step embedding], each `state_hidden`
    wide; every U-Net block reads it through FiLM. The U-Net narrows on the way down (hidden, hidden/2, ...),
    has a middle block, and widens on the way up with the matching down block's output concatenated.
    """

    def __init__(self, cfg: DexGenConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.state_hidden
        layers: list[nn.Module] = []
        width = cfg.cond_dim
        for _ in range(cfg.state_layers):
            layers += [nn.Linear(width, e), nn.GroupNorm(_groups(e), e), nn.Mish()]
            width = e
        self.state_encoder = nn.Sequential(*layers)
        self.mode_embedding = nn.Embedding(cfg.n_modes, e)
        self.step_embedding = nn.Sequential(SinusoidalEmbedding(e), nn.Linear(e, e), nn.Mish(), nn.Linear(e, e))
        d_cond = 3 * e
        widths = [cfg.hidden // 2**i for i in range(cfg.n_blocks)]
        ins = [cfg.motion_dim, *widths[:-1]]
        self.down = nn.ModuleList(FiLMBlock(i, o, d_cond) for i, o in zip(ins, widths, strict=True))
        self.middle = FiLMBlock(widths[-1], widths[-1], d_cond)
        outs = [widths[0], *widths[:-1]]  # up block i maps (width_i + skip_i) to width_{i-1}
        self.up = nn.ModuleList(FiLMBlock(2 * w, o, d_cond) for w, o in zip(widths, outs, strict=True))
        self.head = nn.Linear(widths[0], cfg.motion_dim)

    def encode(self, cond: torch.Tensor, mode: torch.Tensor) -> torch.Tensor:
        """State and mode part of the condition, (B, 2*state_hidden); constant over the sampling steps."""
        return torch.cat([self.state_encoder(cond), self.mode_embedding(mode.long())], dim=-1)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
        """Noise prediction (B, motion_dim) from an `encode` output."""
        c = torch.cat([encoded, self.step_embedding(t)], dim=-1)
        h, skips = x_t, []
        for block in self.down:
            h = block(h, c)
            skips.append(h)
        h = self.middle(h, c)
        for block, skip in zip(reversed(self.up), reversed(skips), strict=True):
            h = block(torch.cat([h, skip], dim=-1), c)
        return self.head(h)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, mode: torch.Tensor) -> torch.Tensor:
        return self.denoise(x_t, t, self.encode(cond, mode))


class InverseDynamics(nn.Module):
    """Residual MLP from [cond (B, cond_dim), motion (B, motion_dim)] to a normal distribution over the joint
    targets: mean (B, J) and log_std (B, J), clamped to [-5, 2]. See `inverse_dynamics_loss` for training."""

    LOG_STD_RANGE = (-5.0, 2.0)

    def __init__(self, cfg: DexGenConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.id_hidden
        self.stem = nn.Linear(cfg.cond_dim + cfg.motion_dim, w)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(w), nn.Linear(w, w), nn.Mish(), nn.Linear(w, w)) for _ in range(cfg.id_blocks)
        )
        self.out_norm = nn.LayerNorm(w)
        self.mean = nn.Linear(w, cfg.n_joints)
        self.log_std = nn.Linear(w, cfg.n_joints)

    def forward(self, cond: torch.Tensor, motion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stem(torch.cat([cond, motion], dim=-1))
        for block in self.blocks:
            h = h + block(h)
        h = F.mish(self.out_norm(h))
        # the std head reads detached features: only the MSE on the mean shapes the trunk (see the loss)
        return self.mean(h), self.log_std(h.detach()).clamp(*self.LOG_STD_RANGE)


def inverse_dynamics_loss(
    model: InverseDynamics, cond: torch.Tensor, motion: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE on the mean (the paper's regression loss) plus the Gaussian NLL of the target under
    N(mean.detach(), exp(log_std)^2). The NLL reaches only the std head (its input features are detached in
    `forward`), so the std learns the residual spread while the mean and the trunk are fit by MSE alone; an
    NLL through the trunk blows up as the std shrinks. Returns (loss, {"mse", "nll"})."""
    mean, log_std = model(cond, motion)
    mse = F.mse_loss(mean, target)
    z = (target - mean.detach()) * torch.exp(-log_std)
    nll = (0.5 * z.square() + log_std).mean() + 0.5 * math.log(2 * math.pi)
    return mse + nll, {"mse": float(mse.detach()), "nll": float(nll.detach())}


class ForwardKinematics(nn.Module):
    """MLP from finger joint positions (B, J) to the keypoints in the palm frame (B, K*3), with its own input
    and output statistics as buffers. It turns a policy's joint-target change into the keypoint motion it
    implies (the command DexGen is guided by): FK(new targets) - FK(old targets)."""

    def __init__(self, cfg: DexGenConfig, hidden: int = 128, layers: int = 3) -> None:
        super().__init__()
        dims = [cfg.n_joints] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            mods += [nn.Linear(a, b), nn.Mish()]
        self.net = nn.Sequential(*mods, nn.Linear(hidden, cfg.n_keypoints * 3))
        for name, size in (("q_mean", cfg.n_joints), ("q_std", cfg.n_joints), ("k_mean", cfg.n_keypoints * 3)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))
        self.register_buffer("k_std", torch.ones(cfg.n_keypoints * 3))

    def fit_stats(self, q: torch.Tensor, keypoints: torch.Tensor) -> None:
        self.q_mean.copy_(q.mean(0))
        self.q_std.copy_(q.std(0).clamp_min(1e-3))
        self.k_mean.copy_(keypoints.mean(0))
        self.k_std.copy_(keypoints.std(0).clamp_min(1e-4))

    def normalized(self, q: torch.Tensor) -> torch.Tensor:
        return self.net((q - self.q_mean) / self.q_std)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.normalized(q) * self.k_std + self.k_mean
