"""Anti-aliased Snake activations of BigVGAN (spec §8).

Activation1d = 2x upsample -> Snake(Beta) -> low-pass + 2x downsample, so the periodic
nonlinearity does not alias. Key names follow the checkpoints: `act.alpha`, `act.beta`,
`upsample.filter`, `downsample.lowpass.filter` (the filters are persistent buffers).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

FILTER_TAPS = 12
RATIO = 2
CUTOFF = 0.5 / RATIO  # 0.25 of the (upsampled) sample rate
HALF_WIDTH = 0.6 / RATIO  # 0.3: transition half-width


def kaiser_sinc_filter(cutoff: float = CUTOFF, half_width: float = HALF_WIDTH,
                       taps: int = FILTER_TAPS) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass, unit DC gain, shape (1, 1, taps).

    beta follows Kaiser's empirical formula for the attenuation A implied by the transition
    width; for even `taps` the sample grid is offset by half a sample (symmetric filter).
    """
    half = taps // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21.0) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    # Always on CPU, also inside a `torch.device("meta")` build: the filter is a real constant.
    window = torch.kaiser_window(taps, periodic=False, beta=beta, device="cpu")
    t = torch.arange(-half, half, device="cpu") + 0.5 if taps % 2 == 0 else (
        torch.arange(taps, device="cpu") - half)
    h = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (h / h.sum()).view(1, 1, taps)


@functools.lru_cache(maxsize=None)
def _default_filter() -> torch.Tensor:
    return kaiser_sinc_filter()


class Snake(nn.Module):
    """x + sin^2(a x) / b with per-channel a (and b for SnakeBeta); log-scale params optional."""

    def __init__(self, channels: int, with_beta: bool, logscale: bool):
        super().__init__()
        self.logscale = logscale
        init = torch.zeros(channels) if logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone()) if with_beta else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha.view(1, -1, 1)
        b = (self.beta if self.beta is not None else self.alpha).view(1, -1, 1)
        if self.logscale:
            a, b = a.exp(), b.exp()
        return x + torch.sin(x * a).pow(2) / (b + 1e-9)


class UpSample2x(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("filter", _default_filter().clone())
        # Replicate-pad so the edges are not pulled to zero, then crop the transient.
        self.pad = FILTER_TAPS // RATIO - 1  # 5
        self.crop = self.pad * RATIO + (FILTER_TAPS - RATIO) // 2  # 15

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        w = self.filter.to(x.dtype).expand(c, -1, -1)
        x = RATIO * F.conv_transpose1d(x, w, stride=RATIO, groups=c)
        return x[..., self.crop:-self.crop]


class LowPass(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("filter", _default_filter().clone())
        self.pad_left = FILTER_TAPS // 2 - 1  # 5 (even tap count: asymmetric pad)
        self.pad_right = FILTER_TAPS // 2  # 6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.to(x.dtype).expand(c, -1, -1), stride=RATIO, groups=c)


class DownSample2x(nn.Module):
    def __init__(self):
        super().__init__()
        self.lowpass = LowPass()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Activation1d(nn.Module):
    def __init__(self, channels: int, activation: str = "snakebeta", logscale: bool = True):
        super().__init__()
        if activation not in ("snake", "snakebeta"):
            raise ValueError(f"unsupported BigVGAN activation {activation!r}")
        self.act = Snake(channels, with_beta=activation == "snakebeta", logscale=logscale)
        self.upsample = UpSample2x()
        self.downsample = DownSample2x()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))
