"""Magnitude-preserving (EDM2-style) building blocks of the MMAudio mel VAE (spec §6).

The convolutions here are plain bias-free Conv1d layers: the checkpoint's raw weights are
MP-normalised once at load time (see `checkpoint.normalize_mp_weight`), so the forward pass is
an ordinary convolution and costs nothing extra.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Activations are bounded after every level ResBlock and after the mid section.
ACTIVATION_CLAMP = 256.0
_PIXEL_NORM_EPS = 1e-4
_SILU_SCALE = 0.596  # 1 / E[silu(x)^2]^0.5 for unit-variance x: keeps magnitudes at ~1


def pixel_norm(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """x / (eps + ||x|| / sqrt(C)) over `dim`; the norm is taken in fp32 for fp16/bf16 safety."""
    x32 = x.float()
    norm = torch.linalg.vector_norm(x32, dim=dim, keepdim=True)
    norm = _PIXEL_NORM_EPS + norm / math.sqrt(x.shape[dim])
    return (x32 / norm).to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) / _SILU_SCALE


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.3) -> torch.Tensor:
    """Blend that keeps unit magnitude for independent unit-magnitude inputs."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


def mp_conv(c_in: int, c_out: int, kernel: int) -> nn.Conv1d:
    """Bias-free conv with zero 'same' padding; weights are expected pre-normalised."""
    return nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = mp_conv(c_in, c_out, 3)
        self.conv2 = mp_conv(c_out, c_out, 3)
        # Official key name; only present when the channel count changes.
        self.nin_shortcut = mp_conv(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(x)
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        # The skip branch starts from the pixel-normalised input, not the raw one.
        skip = self.nin_shortcut(x) if self.nin_shortcut is not None else x
        return mp_sum(skip, h, 0.3)


class AttnBlock(nn.Module):
    """Single-head self-attention over time with an interleaved qkv channel layout."""

    def __init__(self, channels: int):
        super().__init__()
        self.qkv = mp_conv(channels, 3 * channels, 1)
        self.proj_out = mp_conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        # Output channel c*3 + j holds component j (q, k, v) of feature c.
        qkv = self.qkv(x).reshape(b, c, 3, n)
        q, k, v = (pixel_norm(qkv[:, :, j], dim=1) for j in range(3))
        # (B, C, N) -> (B, 1, N, C): one head, attention over time; SDPA scales by 1/sqrt(C).
        q, k, v = (t.transpose(1, 2).unsqueeze(1) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.proj_out(y.squeeze(1).transpose(1, 2))
        return mp_sum(x, y, 0.3)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = mp_conv(channels, channels, 1)
        self.conv2 = mp_conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.avg_pool1d(self.conv1(x), kernel_size=2, stride=2))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = mp_conv(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))

