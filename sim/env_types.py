"""The types at HandEnv's boundary: its configuration, a step's result and a saveable state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field

Metrics = dict[str, torch.Tensor]


class EnvConfig(BaseModel):
    """How actions map to joints and how episodes run (the task itself is the TaskSpec)."""

    model_config = ConfigDict(frozen=True)

    active: tuple[str, ...] = Field(default=("all",), description="Joint groups or joint names the actions drive.")
    action_mode: Literal["delta", "absolute"] = Field(
        default="delta",
        description="delta: an action of 1 moves a target by one step size; absolute: [-1, 1] spans the joint range.",
    )
    translation_step: float = Field(default=0.01, gt=0, description="Wrist target change per unit action, m.")
    rotation_step: float = Field(default=0.05, gt=0, description="Wrist/arm target change per unit action, rad.")
    finger_step: float = Field(default=0.1, gt=0, description="Hand joint target change per unit action, rad.")
    randomize: bool = Field(default=True, description="Apply the spec's pose randomisation at every reset.")
    auto_reset: bool = Field(default=True, description="Reset finished envs inside step().")
    terminate_on_success: bool = Field(default=False, description="End an episode as soon as it succeeds.")


class StepResult(NamedTuple):
    obs: torch.Tensor  # (N, O), after auto-reset
    metrics: Metrics  # of the step just taken (before any reset)
    success: torch.Tensor  # (N,) bool
    terminated: torch.Tensor  # (N,) bool
    truncated: torch.Tensor  # (N,) bool
    reset: torch.Tensor  # (N,) bool, envs reset inside this step (finished or non-finite)


@dataclass
class EnvState:
    """Everything that defines the envs' physical state and episode progress; saveable with torch.save."""

    robot_q: torch.Tensor  # (N, D)
    robot_v: torch.Tensor  # (N, D)
    targets: torch.Tensor  # (N, D)
    objects_q: dict[str, torch.Tensor]  # name -> (N, nq)
    objects_v: dict[str, torch.Tensor]  # name -> (N, nv)
    step: torch.Tensor  # (N,)

    @property
    def n(self) -> int:
        return self.robot_q.shape[0]

    def select(self, idx: torch.Tensor) -> EnvState:
        return EnvState(
            self.robot_q[idx],
            self.robot_v[idx],
            self.targets[idx],
            {k: v[idx] for k, v in self.objects_q.items()},
            {k: v[idx] for k, v in self.objects_v.items()},
            self.step[idx],
        )

    def save(self, path: Path) -> Path:
        torch.save(self.__dict__, path)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> EnvState:
        return cls(**torch.load(path, weights_only=True))
