"""Rotary position embedding of the flow network (spec §3.7).

All head dims are rotated, in *adjacent* pairs (2i, 2i+1). Tables and the rotation itself are
fp32 regardless of the working dtype.
"""

from __future__ import annotations

import torch

ROPE_THETA = 10_000.0


def rope_frequencies(head_dim: int, theta: float = ROPE_THETA) -> torch.Tensor:
    """Angular frequencies w_i = theta^(-2i/head_dim), i < head_dim/2 (fp32, CPU)."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu") / head_dim
    return 1.0 / (theta ** exponents)


def rope_phases(length: int, head_dim: int, freq_scale: float = 1.0) -> torch.Tensor:
    """Unwrapped phases (length, head_dim/2): position * (freq_scale * w_i), fp32."""
    freqs = rope_frequencies(head_dim) * freq_scale
    positions = torch.arange(length, dtype=torch.float32, device="cpu")
    return positions[:, None] * freqs[None, :]


def rope_rotations(length: int, head_dim: int, freq_scale: float = 1.0) -> torch.Tensor:
    """Rotation matrices [[cos, -sin], [sin, cos]] per (position, pair): (1, L, head_dim/2, 2, 2)."""
    phases = rope_phases(length, head_dim, freq_scale)
    cos, sin = phases.cos(), phases.sin()
    rows = torch.stack([torch.stack([cos, -sin], dim=-1), torch.stack([sin, cos], dim=-1)], dim=-2)
    return rows.unsqueeze(0)


def apply_rope(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., L, head_dim) by tables (1, L, head_dim/2, 2, 2); computed in fp32."""
    pairs = x.float().unflatten(-1, (-1, 1, 2))  # (..., L, P, 1, 2): a row vector per pair
    rotated = (rotations * pairs).sum(dim=-1)  # matrix @ pair -> (..., L, P, 2)
    return rotated.flatten(-2).to(x.dtype)
