"""The DexGen bundle: config, both networks, the normalisers and the schedule; one-file save and load; `act`.

File layout (torch.save of plain containers, loaded with weights_only=True):
    {"format": "dexforge.dexgen", "version": 1, "config": DexGenConfig.to_dict(),
     "diffusion": state_dict, "inverse_dynamics": state_dict,
     "normalizers": {"cond"|"motion"|"target": {"mean", "std", "min_std"}}, "provenance": JSON-able dict}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from dexforge.policies.dexgen.config import DexGenConfig
from dexforge.policies.dexgen.diffusion import NoiseSchedule, ddim_sample
from dexforge.policies.dexgen.model import ForwardKinematics, InverseDynamics, KeypointDiffusion
from dexforge.policies.dexgen.processing import Normalizer

FORMAT = "dexforge.dexgen"
FORMAT_VERSION = 1
NORMALIZERS = ("cond", "motion", "target")


class DexGen:
    """A DexGen controller: keypoint diffusion + inverse dynamics, in raw units at its boundary."""

    def __init__(
        self,
        cfg: DexGenConfig,
        *,
        diffusion: KeypointDiffusion | None = None,
        inverse_dynamics: InverseDynamics | None = None,
        normalizers: dict[str, Normalizer] | None = None,
    ) -> None:
        self.cfg = cfg
        self.diffusion = diffusion or KeypointDiffusion(cfg)
        self.inverse_dynamics = inverse_dynamics or InverseDynamics(cfg)
        self.forward_kinematics = ForwardKinematics(cfg)
        """Joint positions -> palm-frame keypoints, for commands implied by joint targets (`implied_motion`)."""
        self.normalizers = normalizers or {name: Normalizer() for name in NORMALIZERS}
        missing = set(NORMALIZERS) - set(self.normalizers)
        if missing:
            raise ValueError(f"DexGen needs normalizers {list(NORMALIZERS)}; missing {sorted(missing)}")
        self.schedule = NoiseSchedule(cfg)
        self.provenance: dict[str, Any] = {}
        """What `load` found in the file (empty for a bundle built here)."""

    @property
    def device(self) -> torch.device:
        return next(self.diffusion.parameters()).device

    def to(self, device: str | torch.device) -> DexGen:
        """Move the networks to `device` (the normalisers follow their inputs); returns self."""
        for net in (self.diffusion, self.inverse_dynamics, self.forward_kinematics):
            net.to(device)
        return self

    def fit_normalizers(self, data: dict[str, torch.Tensor]) -> DexGen:
        """Statistics from make_windows output (cond, motion, target); returns self."""
        for name in NORMALIZERS:
            self.normalizers[name].fit(data[name])
        return self

    @torch.inference_mode()
    def act(
        self,
        cond: torch.Tensor,
        mode: torch.Tensor | int = 0,
        command: torch.Tensor | None = None,
        command_mask: torch.Tensor | None = None,
        strength: float | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint targets for the current state history.

        cond (B, cond_dim) raw state history (processing.make_state per step, oldest first); mode (B,) or an
        int; command (B or 1, motion_dim) keypoint offsets in metres from the current keypoints, with
        command_mask like diffusion.ddim_sample; strength None: cfg.guidance; steps None: cfg.ddim_steps.
        Returns targets (B, J) and the sampled motion (B, motion_dim) in metres.
        """
        if cond.ndim != 2 or cond.shape[1] != self.cfg.cond_dim:
            raise ValueError(f"cond must be (B, {self.cfg.cond_dim}) = (B, history*state_dim), got {tuple(cond.shape)}")
        self.diffusion.eval()
        self.inverse_dynamics.eval()
        b = cond.shape[0]
        mode_t = torch.as_tensor(mode, device=cond.device).long().expand(b)
        cond_n = self.normalizers["cond"].normalize(cond.float())
        command_n = None
        if command is not None:
            command_n = self.normalizers["motion"].normalize(command.float())
            if self.cfg.command_clip is not None:
                command_n = command_n.clamp(-self.cfg.command_clip, self.cfg.command_clip)
        motion_n = ddim_sample(
            self.diffusion,
            self.schedule,
            cond_n,
            mode_t,
            steps=steps or self.cfg.ddim_steps,
            command=command_n,
            command_mask=command_mask,
            strength=self.cfg.guidance if strength is None else strength,
            generator=generator,
        )
        target_n, _ = self.inverse_dynamics(cond_n, motion_n)
        return self.normalizers["target"].unnormalize(target_n), self.normalizers["motion"].unnormalize(motion_n)

    @torch.inference_mode()
    def implied_motion(self, targets_from: torch.Tensor, targets_to: torch.Tensor) -> torch.Tensor:
        """(B, motion_dim) the keypoint motion (m) a change of finger targets implies, as a command: every
        future step of the horizon gets FK(to) - FK(from) (the targets are reached within a step or two)."""
        delta = self.forward_kinematics(targets_to.float()) - self.forward_kinematics(targets_from.float())
        return delta.repeat(1, self.cfg.horizon)

    def save(self, path: str | Path, provenance: dict[str, Any]) -> Path:
        """Write one torch file; provenance (data, seeds, code version...) must be JSON-able."""
        try:
            json.dumps(provenance)
        except TypeError as err:
            raise ValueError(f"provenance must be JSON-able (str, numbers, lists, dicts): {err}") from err
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": self.cfg.to_dict(),
            "diffusion": self.diffusion.state_dict(),
            "inverse_dynamics": self.inverse_dynamics.state_dict(),
            "forward_kinematics": self.forward_kinematics.state_dict(),
            "normalizers": {name: n.state_dict() for name, n in self.normalizers.items()},
            "provenance": provenance,
        }
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> DexGen:
        """Inverse of `save`; refuses other formats and newer versions with a ValueError."""
        payload = torch.load(Path(path), map_location=map_location, weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise ValueError(f"{path} is not a DexGen checkpoint (format {found!r}, expected {FORMAT!r})")
        version = int(payload.get("version", -1))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{path} is DexGen checkpoint version {version}, newer than this dexforge reads "
                f"({FORMAT_VERSION}); upgrade dexforge to load it"
            )
        if version < 1:
            raise ValueError(f"{path} has no valid DexGen checkpoint version (got {payload.get('version')!r})")
        cfg = DexGenConfig.from_dict(payload["config"])
        bundle = cls(cfg, normalizers={k: Normalizer().load_state_dict(v) for k, v in payload["normalizers"].items()})
        bundle.diffusion.load_state_dict(payload["diffusion"])
        bundle.inverse_dynamics.load_state_dict(payload["inverse_dynamics"])
        if "forward_kinematics" in payload:
            bundle.forward_kinematics.load_state_dict(payload["forward_kinematics"])
        bundle.provenance = payload.get("provenance", {})
        return bundle
