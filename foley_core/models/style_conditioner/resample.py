"""Windowed-sinc fractional resampler with the behaviour of julius `resample_frac` (§2.3).

MusicGen-Style feeds MERT audio converted 32 kHz -> 24 kHz this way; julius is not a dependency,
so the same filter (24 zero crossings, roll-off 0.945, replicate padding) is built here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ZEROS = 24
ROLLOFF = 0.945


def _kernels(old: int, new: int, zeros: int, rolloff: float):
    """(new, 1, taps) polyphase kernels and the half width W, all float32."""
    cutoff = min(old, new) * rolloff
    width = math.ceil(zeros * old / cutoff)
    taps = torch.arange(-width, width + old, dtype=torch.float32)
    rows = []
    for phase in range(new):
        t = (-phase / new + taps / old) * cutoff
        t = t.clamp(-zeros, zeros) * math.pi
        window = torch.cos(t / zeros / 2) ** 2
        sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
        kernel = sinc * window
        rows.append(kernel / kernel.sum())  # unit DC gain per phase
    return torch.stack(rows).unsqueeze(1), width


def resample_frac(x: torch.Tensor, old_sr: int, new_sr: int, zeros: int = ZEROS,
                  rolloff: float = ROLLOFF) -> torch.Tensor:
    """Resample along the last axis from old_sr to new_sr; output length floor(new·N/old)."""
    g = math.gcd(int(old_sr), int(new_sr))
    old, new = int(old_sr) // g, int(new_sr) // g
    if old == new:
        return x
    shape, length = x.shape[:-1], x.shape[-1]
    kernels, width = _kernels(old, new, zeros, rolloff)
    flat = x.reshape(-1, 1, length).to(torch.float32)
    padded = F.pad(flat, (width, width + old), mode="replicate")
    # (rows, new, S): output phase i of step s lands at sample new·s + i
    y = F.conv1d(padded, kernels.to(flat.device), stride=old)
    y = y.transpose(1, 2).reshape(flat.shape[0], -1)
    return y[:, : new * length // old].reshape(*shape, -1)
