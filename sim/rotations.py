"""Batched quaternion helpers in torch; quaternions are (w, x, y, z) like Genesis."""

from __future__ import annotations

import math

import torch


def quat_conj(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., :1], -q[..., 1:]], dim=-1)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_apply(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors `v` (..., 3) by unit quaternions `q` (..., 4)."""
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * torch.linalg.cross(xyz, v, dim=-1)
    return v + w * t + torch.linalg.cross(xyz, t, dim=-1)


def quat_from_euler(euler_deg, device=None) -> torch.Tensor:
    """Extrinsic x-y-z Euler angles in degrees (as in TaskSpec) -> (w, x, y, z)."""
    e = torch.as_tensor(euler_deg, dtype=torch.float32, device=device) * (math.pi / 180.0)
    half = e / 2
    qx = torch.stack([torch.cos(half[..., 0]), torch.sin(half[..., 0]), *(torch.zeros_like(half[..., 0]),) * 2], -1)
    qy = torch.stack(
        [
            torch.cos(half[..., 1]),
            torch.zeros_like(half[..., 1]),
            torch.sin(half[..., 1]),
            torch.zeros_like(half[..., 1]),
        ],
        -1,
    )
    qz = torch.stack([torch.cos(half[..., 2]), *(torch.zeros_like(half[..., 2]),) * 2, torch.sin(half[..., 2])], -1)
    return quat_mul(qz, quat_mul(qy, qx))


def quat_from_yaw(yaw: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(yaw)
    return torch.stack([torch.cos(yaw / 2), z, z, torch.sin(yaw / 2)], dim=-1)


def twist_angle(q_rel: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Angle (rad, in (-pi, pi]) of the twist of rotation `q_rel` about the unit `axis` (swing-twist split)."""
    proj = (q_rel[..., 1:] * axis).sum(-1)
    angle = 2.0 * torch.atan2(proj, q_rel[..., 0])
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def tilt_angle(q: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
    """Angle (rad) between the body z axes of `q` and `q0`: how far an object has tipped."""
    z = torch.tensor([0.0, 0.0, 1.0], dtype=q.dtype, device=q.device).expand((*q.shape[:-1], 3))
    a, b = quat_apply(q, z), quat_apply(q0, z)
    return torch.arccos((a * b).sum(-1).clamp(-1.0, 1.0))
