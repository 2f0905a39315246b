"""DexGen (DexterityGen, Yin et al. 2025): a diffusion model over future finger keypoint motions conditioned on
the state history and a mode label, guided toward commanded motions, and an inverse dynamics model that turns
the sampled motion into joint targets. Config, networks, sampling, data processing, checkpoints, training,
data collection, experts, assist and the CLI live in separate modules; the names below load on first use,
so importing the package (e.g. for the CLI) does not import torch."""

from importlib import import_module

_EXPORTS = {
    "FORMAT": "checkpoint",
    "FORMAT_VERSION": "checkpoint",
    "DexGen": "checkpoint",
    "DexGenConfig": "config",
    "NoiseSchedule": "diffusion",
    "ddim_sample": "diffusion",
    "diffusion_loss": "diffusion",
    "guide_x0": "diffusion",
    "motion_mask": "diffusion",
    "ForwardKinematics": "model",
    "InverseDynamics": "model",
    "KeypointDiffusion": "model",
    "SinusoidalEmbedding": "model",
    "inverse_dynamics_loss": "model",
    "Normalizer": "processing",
    "make_state": "processing",
    "make_windows": "processing",
    "fit": "train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
