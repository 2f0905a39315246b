"""Training of a DexGen bundle from make_windows samples: both networks with AdamW, one shuffled pass per epoch.

The diffusion model learns the epsilon-prediction loss on the normalised motion; the inverse dynamics model
learns the dataset's (noise-free) motion -> targets map with model.inverse_dynamics_loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dexforge.policies.dexgen.checkpoint import DexGen
from dexforge.policies.dexgen.config import DexGenConfig
from dexforge.policies.dexgen.diffusion import diffusion_loss
from dexforge.policies.dexgen.model import inverse_dynamics_loss

DATA_KEYS = ("cond", "mode", "motion", "target")


def fit(
    data: dict[str, torch.Tensor],
    cfg: DexGenConfig,
    *,
    epochs: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    init: DexGen | None = None,
    log: Callable[[dict[str, float]], None] | None = None,
) -> tuple[DexGen, list[dict[str, float]]]:
    """Train a new bundle (or continue `init`, keeping its normalisers) on make_windows output.

    Returns the bundle and one dict per epoch: {"epoch", "diffusion", "inverse_mse", "inverse_nll", "fk_mse"} (mean
    losses over the epoch's batches, normalised units); `log` is called with each dict as it completes.
    """
    missing = [k for k in DATA_KEYS if k not in data]
    if missing:
        raise ValueError(f"training data lacks {missing}; pass the output of processing.make_windows")
    n = data["cond"].shape[0]
    if any(data[k].shape[0] != n for k in DATA_KEYS) or n == 0:
        raise ValueError(f"training tensors must share a non-zero first axis, got {[data[k].shape for k in DATA_KEYS]}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    torch.manual_seed(seed)  # network initialisation
    gen = torch.Generator().manual_seed(seed)  # batches and diffusion noise
    if init is None:
        bundle = DexGen(cfg).fit_normalizers(data)
    elif init.cfg != cfg:
        raise ValueError("init was built with a different DexGenConfig; pass init.cfg")
    else:
        bundle = init
    cond = bundle.normalizers["cond"].normalize(data["cond"].float())
    motion = bundle.normalizers["motion"].normalize(data["motion"].float())
    target = bundle.normalizers["target"].normalize(data["target"].float())
    mode = data["mode"].long()

    # forward kinematics from the newest state of each window: its keypoints and joint positions
    k3, j = cfg.n_keypoints * 3, cfg.n_joints
    last = data["cond"][:, -cfg.state_dim :].float()
    fk_q, fk_k = last[:, k3 : k3 + j], last[:, :k3]
    fk = bundle.forward_kinematics
    if init is None:
        fk.fit_stats(fk_q, fk_k)
    fk_target = (fk_k - fk.k_mean) / fk.k_std

    diff, inv = bundle.diffusion, bundle.inverse_dynamics
    opt_d = torch.optim.AdamW(diff.parameters(), lr=lr, weight_decay=weight_decay)
    opt_i = torch.optim.AdamW(inv.parameters(), lr=lr, weight_decay=weight_decay)
    opt_f = torch.optim.AdamW(fk.parameters(), lr=lr, weight_decay=weight_decay)
    diff.train()
    inv.train()
    fk.train()
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        sums = {"diffusion": 0.0, "inverse_mse": 0.0, "inverse_nll": 0.0, "fk_mse": 0.0}
        batches = 0
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            loss_d = diffusion_loss(diff, motion[idx], cond[idx], mode[idx], gen, schedule=bundle.schedule)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_i, parts = inverse_dynamics_loss(inv, cond[idx], motion[idx], target[idx])
            opt_i.zero_grad(set_to_none=True)
            loss_i.backward()
            opt_i.step()
            loss_f = torch.nn.functional.mse_loss(fk.normalized(fk_q[idx]), fk_target[idx])
            opt_f.zero_grad(set_to_none=True)
            loss_f.backward()
            opt_f.step()
            sums["fk_mse"] += float(loss_f.detach())
            sums["diffusion"] += float(loss_d.detach())
            sums["inverse_mse"] += parts["mse"]
            sums["inverse_nll"] += parts["nll"]
            batches += 1
        row = {"epoch": float(epoch), **{k: v / batches for k, v in sums.items()}}
        history.append(row)
        if log is not None:
            log(row)
    diff.eval()
    inv.eval()
    fk.eval()
    return bundle, history
