"""The robot state DexGen reads from a HandEnv: K=10 finger keypoints in the palm frame and the finger joints.

Keypoints, in this order (DexterityGen uses the fingertips and the PIP joint of each finger):
    0-4  fingertips of thumb, index, middle, ring, little (the env's `fingertip_pos`: the tip of each distal pad)
    5-9  origins of the middle phalanx links thumb_middle, index/middle/ring/little_finger_middle, i.e. the
         PIP joints of the four fingers and the thumb's joint4 (between its hub and its middle phalanx)
They are expressed in the palm frame: origin at the centre of the palm's surface (`palm_pos`), axes of the
Shadow hand's palm link (`palm_quat`), so moving the floating wrist, or the Shadow's own two wrist joints,
leaves them unchanged while the fingers hold still.

Joints: the 22 finger joints (thumb 5, index 4, middle 4, ring 4, little 5) in `env.joint_names` order. The
six floating-wrist joints and the Shadow's `forearm_joint` / `wrist_joint` are left out: they move the palm
frame itself, not the fingers within it (a floating-mount env has 30 joints in all).
"""

from __future__ import annotations

import torch

from dexforge.sim import hand as H
from dexforge.sim.env import HandEnv, Metrics
from dexforge.sim.rotations import quat_apply, quat_conj

MIDDLE_LINKS = tuple(H.FINGER_LINKS[f][1] for f in H.FINGERS)
"""Middle phalanx link of each finger, thumb first; their origins are keypoints 5-9."""
N_KEYPOINTS = len(H.FINGERTIP_LINKS) + len(MIDDLE_LINKS)
FINGER_JOINT_NAMES = tuple(j for f in H.FINGERS for j in H.FINGER_JOINTS[f])
"""The J=22 finger joints DexGen drives, in the hand's own order."""


class HandReader:
    """Reads DexGen's robot state from one HandEnv: `keypoints(m)` (N, 10, 3), `joint_pos(m)` (N, 22),
    `targets()` (N, 22). Built once per env: it looks up link and joint indices on the built hand."""

    def __init__(self, env: HandEnv) -> None:
        missing = [j for j in FINGER_JOINT_NAMES if j not in env.joint_names]
        if missing:
            raise ValueError(f"env lacks the Shadow finger joints {missing}; DexGen needs a Shadow hand scene")
        self.env = env
        hand = env.built.hand
        self._middle = [hand.get_link(name).idx_local for name in MIDDLE_LINKS]
        self.finger_cols = torch.tensor([env.joint_names.index(j) for j in FINGER_JOINT_NAMES], device=env.device)
        """Columns of the finger joints in the env's joint vectors (joint_pos, targets), (22,)."""

    @property
    def n_joints(self) -> int:
        return len(FINGER_JOINT_NAMES)

    def keypoints(self, m: Metrics | None = None) -> torch.Tensor:
        """(N, 10, 3) keypoints in the palm frame, from metrics `m` (default: the env's current metrics).

        `m` must describe the simulator's current state: the middle links are read from the simulator."""
        m = self.env.metrics if m is None else m
        middle = self.env.built.hand.get_links_pos(links_idx_local=self._middle)
        middle = torch.as_tensor(middle, dtype=torch.float32).to(self.env.device).reshape(-1, len(MIDDLE_LINKS), 3)
        return to_palm_frame(torch.cat([m["fingertip_pos"], middle], dim=1), m["palm_pos"], m["palm_quat"])

    def joint_pos(self, m: Metrics | None = None) -> torch.Tensor:
        """(N, 22) finger joint positions from metrics `m` (default: the env's current metrics)."""
        m = self.env.metrics if m is None else m
        return m["joint_pos"][:, self.finger_cols]

    def targets(self) -> torch.Tensor:
        """(N, 22) the finger joint targets the env holds now (after a step: the targets that step applied)."""
        return self.env.targets[:, self.finger_cols].clone()


def to_palm_frame(points: torch.Tensor, palm_pos: torch.Tensor, palm_quat: torch.Tensor) -> torch.Tensor:
    """World points (N, P, 3) -> the frame at `palm_pos` (N, 3) with orientation `palm_quat` (N, 4, w first)."""
    q = quat_conj(palm_quat)[:, None].expand(-1, points.shape[1], 4)
    return quat_apply(q, points - palm_pos[:, None])
