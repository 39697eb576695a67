"""Small building blocks of the flow network: token-axis convs, SwiGLU MLPs, timestep embedding."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation x * (1 + scale) + shift."""
    return x * (1 + scale) + shift


class ChannelLastConv1d(nn.Conv1d):
    """Conv1d over the token axis of a (B, N, C) tensor, zero "same" padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class SwiGLU(nn.Module):
    """Bias-free gated MLP w2(silu(w1 x) * w3 x); w1/w2/w3 are Linear or token-axis convs."""

    def __init__(self, dim: int, hidden: int, kernel_size: int | None = None):
        super().__init__()

        def layer(cin: int, cout: int) -> nn.Module:
            if kernel_size is None:
                return nn.Linear(cin, cout, bias=False)
            return ChannelLastConv1d(cin, cout, kernel_size, bias=False)

        self.w1 = layer(dim, hidden)
        self.w2 = layer(hidden, dim)
        self.w3 = layer(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def timestep_frequencies(freq_dim: int, max_period: float) -> torch.Tensor:
    """f_i = (10000 / max_period) * 10000^(-2i/freq_dim), i < freq_dim/2, fp32 on CPU."""
    exponents = torch.arange(0, freq_dim, 2, dtype=torch.float32, device="cpu") / freq_dim
    return (10000.0 / max_period) * (1.0 / (10000.0 ** exponents))


class TimestepEmbedder(nn.Module):
    """Flow time t in [0, 1] -> [cos(t f), sin(t f)] (fp32) -> Linear -> SiLU -> Linear."""

    def __init__(self, dim: int, freq_dim: int, max_period: float):
        super().__init__()
        self.freq_dim = freq_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.register_buffer("freqs", timestep_frequencies(freq_dim, max_period), persistent=False)

    def reset_frequencies(self) -> None:
        """Recompute the fp32 table on the module's device (after loading or casting)."""
        device = self.mlp[0].weight.device
        table = timestep_frequencies(self.freq_dim, self.max_period)
        self.freqs = torch.empty_like(table, device=device) if device.type == "meta" else table.to(device)

    def frequency_features(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) times -> (B, freq_dim) sinusoidal features, cos half first, fp32."""
        args = t.float()[:, None] * self.freqs.float()[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = self.frequency_features(t)
        return self.mlp(features.to(self.mlp[0].weight.dtype))
