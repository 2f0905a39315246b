"""Noise schedule, epsilon-prediction training loss and guided DDIM sampling for KeypointDiffusion.

Guidance (paper section III-D): the sample should stay in the learned distribution and keep close to a
commanded motion, x ~ p(x|o) exp(-Dist(x, x_cmd)) with Dist the squared distance over the commanded
entries. At every DDIM step the predicted clean sample x0_hat is moved against the gradient of Dist,
the noise is recomputed from the moved x0_hat and the DDIM update uses both (`guide_x0`). Everything
here is in normalised space; the command is normalised by the caller (checkpoint.DexGen.act does it).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from dexforge.policies.dexgen.config import DexGenConfig
from dexforge.policies.dexgen.model import KeypointDiffusion


class NoiseSchedule:
    """betas (N,), alphas (N,) and alphas_cumprod (N,) for N = cfg.diffusion_steps, float32, on the CPU."""

    def __init__(self, cfg: DexGenConfig) -> None:
        n = cfg.diffusion_steps
        if cfg.beta_schedule == "cosine":
            # Nichol and Dhariwal 2021: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/N + s) / (1 + s) * pi/2)
            s = 0.008
            steps = torch.arange(n + 1, dtype=torch.float64) / n
            f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        else:
            # the classic 1e-4 .. 0.02 over 1000 steps, rescaled so that fewer steps reach the same noise
            scale = 1000 / n
            betas = torch.linspace(1e-4 * scale, 0.02 * scale, n, dtype=torch.float64).clamp(max=0.999)
        self.betas = betas.float()
        self.alphas = (1 - betas).float()
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0).float()

    @property
    def num_steps(self) -> int:
        return int(self.betas.shape[0])

    def ddim_timesteps(self, steps: int) -> list[int]:
        """`steps` training steps from the noisiest to 0, evenly spaced."""
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f"DDIM steps must be in [1, {self.num_steps}], got {steps}")
        ts = torch.linspace(self.num_steps - 1, 0, steps).round().long().tolist()
        return list(dict.fromkeys(ts))


def diffusion_loss(
    model: KeypointDiffusion,
    x0: torch.Tensor,
    cond: torch.Tensor,
    mode: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    schedule: NoiseSchedule | None = None,
) -> torch.Tensor:
    """Epsilon-prediction MSE at a step drawn uniformly per sample. x0 (B, motion_dim) normalised."""
    schedule = schedule or NoiseSchedule(model.cfg)
    b = x0.shape[0]
    t = torch.randint(0, schedule.num_steps, (b,), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    a = schedule.alphas_cumprod.to(x0.device)[t][:, None]
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return F.mse_loss(model(x_t, t, cond, mode), noise)


def guide_x0(x0_hat: torch.Tensor, command: torch.Tensor, weight: torch.Tensor, strength: float) -> torch.Tensor:
    """Move x0_hat toward the command: the step x <- x0_hat - strength * grad Dist(x) with
    Dist(x) = sum(weight * (x - command)^2), taken implicitly (gradient at the moved point), which has the
    closed form x = (x0_hat + 2*strength*weight*command) / (1 + 2*strength*weight).

    To first order in strength this is the paper's step x0_hat - strength * 2*weight*(x0_hat - command); the
    explicit step overshoots once 2*strength*weight > 1 (strength 2 lands three times as far on the other
    side), the implicit one moves the fraction 2s/(1+2s) of the way and never past the command, so a larger
    strength always means closer. Entries with weight 0 are untouched.
    """
    k = 2.0 * strength * weight
    return (x0_hat + k * command) / (1.0 + k)


@torch.no_grad()
def ddim_sample(
    model: KeypointDiffusion,
    schedule: NoiseSchedule,
    cond: torch.Tensor,
    mode: torch.Tensor,
    *,
    steps: int,
    command: torch.Tensor | None = None,
    command_mask: torch.Tensor | None = None,
    strength: float = 0.0,
    generator: torch.Generator | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """Guided DDIM sampling -> x0 (B, motion_dim), normalised.

    cond (B, cond_dim) and command (B or 1, motion_dim) are normalised; command_mask (same shape as command,
    bool or float weights; None: every entry) selects the commanded entries, e.g. fingertips only or the
    last future step (see `motion_mask`). Unmasked command entries are ignored and may be NaN. The guidance
    gradient is analytic (squared distance), so no autograd is needed. eta=0 is deterministic DDIM.
    """
    b, d = cond.shape[0], model.cfg.motion_dim
    device = cond.device
    x = torch.randn((b, d), generator=generator, device=device)
    guided = command is not None and strength > 0
    if guided:
        weight = torch.ones_like(command) if command_mask is None else command_mask.to(x.dtype)
        weight = weight.expand(b, d)
        target = torch.where(weight > 0, command, torch.zeros_like(command)).expand(b, d)
    encoded = model.encode(cond, mode)
    ac = schedule.alphas_cumprod.to(device)
    ts = schedule.ddim_timesteps(steps)
    clip = model.cfg.clip_sample
    for i, t in enumerate(ts):
        a_t = ac[t]
        a_prev = ac[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), device=device)
        eps = model.denoise(x, torch.full((b,), t, device=device, dtype=torch.long), encoded)
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        if guided:
            x0 = guide_x0(x0, target, weight, strength)
        # the noise consistent with x_t and the (clamped, guided) x0
        eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).clamp_min(0).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp_min(0).sqrt() * eps
        if eta > 0 and i + 1 < len(ts):
            x = x + sigma * torch.randn((b, d), generator=generator, device=device)
    return x


def motion_mask(
    cfg: DexGenConfig, *, keypoints: list[int] | None = None, steps: list[int] | None = None
) -> torch.Tensor:
    """(motion_dim,) float mask over the flattened (T, K, 3) motion: 1 on the listed keypoints at the listed
    future steps (None: all), e.g. keypoints=[0..4] for fingertips only, steps=[T-1] for the last step."""
    m = torch.zeros(cfg.horizon, cfg.n_keypoints, 3)
    rows = list(range(cfg.horizon)) if steps is None else steps
    cols = list(range(cfg.n_keypoints)) if keypoints is None else keypoints
    m[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = 1.0
    return m.reshape(-1)
