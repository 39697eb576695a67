"""A vocoder with no weights: mel → linear magnitude (non-negative least squares against the mel
filterbank) → Griffin-Lim phase recovery.

Used when no neural vocoder file is installed (the embedded model set) — documented as a
fallback: transients survive well, but the sound is phasier and duller than BigVGAN's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from .mel import MelSettings, mel_filterbank


@dataclass(frozen=True)
class GriffinLimConfig:
    num_mels: int
    upsample_rates: tuple[int, ...]  # one "rate" = the hop, so callers can check samples per frame
    n_iter: int = 32


class GriffinLimVocoder(nn.Module):
    """mel (B, n_mels, T) in the mode's log domain → wav (B, 1, T·hop) in [−1, 1]."""

    def __init__(self, settings: MelSettings, n_iter: int = 32):
        super().__init__()
        self.settings = settings
        self.cfg = GriffinLimConfig(settings.n_mels, (settings.hop,), n_iter)
        basis = mel_filterbank(settings)  # (n_mels, n_fft/2+1)
        self.register_buffer("pseudo_inverse", torch.linalg.pinv(basis), persistent=False)
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=settings.n_fft, hop_length=settings.hop, win_length=settings.win, power=1.0,
            n_iter=n_iter, momentum=0.99, rand_init=False)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        s = self.settings
        log_mel = mel.float()
        linear_mel = torch.pow(10.0, log_mel) if s.log == "log10" else torch.exp(log_mel)
        magnitude = (self.pseudo_inverse.to(mel.device) @ linear_mel).clamp_min(0.0)
        with torch.autocast(device_type=mel.device.type, enabled=False):
            wave = self.griffin_lim.to(mel.device)(magnitude)
        # The analysis frames were centred at k·hop + hop/2 (reflect pad (n_fft − hop)/2, no
        # centring), Griffin-Lim's at k·hop: delay by hop/2 and keep exactly T·hop samples.
        n_samples = mel.shape[-1] * s.hop
        wave = torch.nn.functional.pad(wave, (s.hop // 2, 0))[..., :n_samples]
        if wave.shape[-1] < n_samples:
            wave = torch.nn.functional.pad(wave, (0, n_samples - wave.shape[-1]))
        return wave.clamp(-1.0, 1.0).unsqueeze(1).to(mel.dtype)
