"""DexGen controller core (DexterityGen, Yin et al. 2025): a diffusion model over future finger keypoint
motions conditioned on the state history and a mode label, guided toward commanded motions, and an inverse
dynamics model that turns the sampled motion into joint targets. Pure torch; config, networks, sampling,
data processing, checkpoints and training live in separate modules."""

from dexforge.policies.dexgen.checkpoint import FORMAT, FORMAT_VERSION, DexGen
from dexforge.policies.dexgen.config import DexGenConfig
from dexforge.policies.dexgen.diffusion import NoiseSchedule, ddim_sample, diffusion_loss, guide_x0, motion_mask
from dexforge.policies.dexgen.model import (
    InverseDynamics,
    KeypointDiffusion,
    SinusoidalEmbedding,
    inverse_dynamics_loss,
)
from dexforge.policies.dexgen.processing import Normalizer, make_state, make_windows
from dexforge.policies.dexgen.train import fit

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DexGen",
    "DexGenConfig",
    "InverseDynamics",
    "KeypointDiffusion",
    "NoiseSchedule",
    "Normalizer",
    "SinusoidalEmbedding",
    "ddim_sample",
    "diffusion_loss",
    "fit",
    "guide_x0",
    "inverse_dynamics_loss",
    "make_state",
    "make_windows",
    "motion_mask",
]
