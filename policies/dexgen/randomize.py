"""Domain randomisation for DexGen data collection: object mass, hand-object friction, finger PD gains.

What Genesis 1.4.5 lets vary per env on a built scene (read from its rigid solver):
    friction  always per env: `RigidEntity.set_friction_ratio(ratio (n_envs, n_links), links_idx_local, envs_idx)`
              scales each geom's friction in each env. A contact uses the larger friction of its two geoms, so
              the same ratio goes on the object's and on the hand's links.
    mass      per env only when the scene was built with `RigidOptions(batch_links_info=True)`
              (`RigidEntity.set_mass(mass (n_envs,), envs_idx=...)`); otherwise one draw per run for all envs.
    PD gains  per env only with `RigidOptions(batch_dofs_info=True)` (`set_dofs_kp/kv(..., envs_idx=...)`);
              otherwise one draw per run. (Without it Genesis silently writes every env, so this is checked.)
`sim.scene.SceneConfig` sets neither option today, so mass and gains vary per run there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from dexforge.policies.dexgen.keypoints import FINGER_JOINT_NAMES
from dexforge.sim.env import HandEnv


@dataclass(frozen=True)
class RandomizationConfig:
    """Ranges of the multiplicative factors drawn uniformly for each collection run (or env, where allowed)."""

    mass_scale: tuple[float, float] = (0.7, 1.3)
    """Factor on each free object's mass (inertia scales with it)."""
    friction_scale: tuple[float, float] = (0.7, 1.3)
    """Factor on the friction of the hand's and the objects' geoms (per env)."""
    kp_scale: tuple[float, float] = (0.8, 1.2)
    """Factor on the finger joints' PD stiffness."""
    kv_scale: tuple[float, float] = (0.8, 1.2)
    """Factor on the finger joints' PD damping."""

    def __post_init__(self) -> None:
        for name, (lo, hi) in asdict(self).items():
            if not 0 < lo <= hi:
                raise ValueError(f"RandomizationConfig.{name} must be a range 0 < low <= high, got ({lo}, {hi})")


class Randomizer:
    """Draws and applies one set of physical parameters to every env; `restore()` puts the nominal ones back."""

    def __init__(self, env: HandEnv, cfg: RandomizationConfig | None = None, *, seed: int = 0) -> None:
        self.env, self.cfg = env, cfg or RandomizationConfig()
        self.gen = torch.Generator().manual_seed(seed)
        solver = env.built.scene.sim.rigid_solver
        self.per_env = {
            "friction": True,
            "mass": bool(solver.is_links_info_batched),
            "gains": bool(getattr(solver._options, "batch_dofs_info", False)),
        }
        hand = env.built.hand
        self._finger_dofs = [hand.get_joint(j).dofs_idx_local[0] for j in FINGER_JOINT_NAMES]
        self._kp0 = self._per_dof(hand.get_dofs_kp(dofs_idx_local=self._finger_dofs))
        self._kv0 = self._per_dof(hand.get_dofs_kv(dofs_idx_local=self._finger_dofs))
        self._free = {k: e for k, e in env.objects.items() if env.free[k]}
        self._mass0 = {k: float(torch.as_tensor(e.get_mass()).reshape(-1)[0]) for k, e in self._free.items()}
        self._envs = torch.arange(env.num_envs)

    @staticmethod
    def _per_dof(values) -> torch.Tensor:
        values = torch.as_tensor(values, dtype=torch.float32)
        return values if values.ndim == 1 else values[0]

    def _draw(self, rng: tuple[float, float], per_env: bool) -> torch.Tensor:
        lo, hi = rng
        u = torch.rand(self.env.num_envs if per_env else 1, generator=self.gen)
        return lo + (hi - lo) * u

    def apply(self) -> dict[str, Any]:
        """Draw and apply; returns a JSON-able record of the factors (one per env, or one for the run)."""
        env = self.env
        friction = self._draw(self.cfg.friction_scale, True)
        self._set_friction(friction)
        mass = self._draw(self.cfg.mass_scale, self.per_env["mass"])
        for name, entity in self._free.items():
            if self.per_env["mass"]:
                entity.set_mass(self._mass0[name] * mass, envs_idx=self._envs)
            else:
                entity.set_mass(self._mass0[name] * float(mass))
        kp = self._draw(self.cfg.kp_scale, self.per_env["gains"])
        kv = self._draw(self.cfg.kv_scale, self.per_env["gains"])
        hand = env.built.hand
        if self.per_env["gains"]:
            hand.set_dofs_kp(kp[:, None] * self._kp0, dofs_idx_local=self._finger_dofs, envs_idx=self._envs)
            hand.set_dofs_kv(kv[:, None] * self._kv0, dofs_idx_local=self._finger_dofs, envs_idx=self._envs)
        else:
            hand.set_dofs_kp(float(kp) * self._kp0, dofs_idx_local=self._finger_dofs)
            hand.set_dofs_kv(float(kv) * self._kv0, dofs_idx_local=self._finger_dofs)
        return {
            "ranges": asdict(self.cfg),
            "per_env": dict(self.per_env),
            "friction_scale": friction.tolist(),
            "mass_scale": mass.tolist(),
            "kp_scale": kp.tolist(),
            "kv_scale": kv.tolist(),
        }

    def restore(self) -> None:
        """Nominal mass, friction and gains in every env."""
        self._set_friction(torch.ones(self.env.num_envs))
        for name, entity in self._free.items():
            entity.set_mass(self._mass0[name])
        hand = self.env.built.hand
        hand.set_dofs_kp(self._kp0, dofs_idx_local=self._finger_dofs)
        hand.set_dofs_kv(self._kv0, dofs_idx_local=self._finger_dofs)

    def _set_friction(self, ratio: torch.Tensor) -> None:
        for entity in (self.env.built.hand, *self.env.objects.values()):
            links = list(range(entity.n_links))
            entity.set_friction_ratio(ratio[:, None].expand(-1, len(links)).contiguous(), links_idx_local=links)
