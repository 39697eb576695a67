"""Log-mel front end of MMAudio (spec §7): waveform -> the mel domain the VAE encodes.

16k and 44k differ in more than the sizes: 16k mels are log10, 44k mels natural log.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import torch
from torch import nn


@dataclass(frozen=True)
class MelSettings:
    sample_rate: int
    n_fft: int
    hop: int
    win: int
    n_mels: int
    fmin: float
    fmax: float
    log: str  # "log10" or "ln"
    clamp_min: float = 1e-5
    magnitude_eps: float = 1e-9

    @property
    def pad_each_side(self) -> int:
        return (self.n_fft - self.hop) // 2


MEL_16K = MelSettings(16_000, 1024, 256, 1024, 80, 0.0, 8_000.0, "log10")
MEL_44K = MelSettings(44_100, 2048, 512, 2048, 128, 0.0, 22_050.0, "ln")
MEL_SETTINGS = {"16k": MEL_16K, "44k": MEL_44K}


def mel_filterbank(s: MelSettings) -> torch.Tensor:
    """librosa's Slaney-scale, Slaney-normalised filterbank, (n_mels, n_fft//2 + 1) fp32."""
    basis = librosa.filters.mel(sr=s.sample_rate, n_fft=s.n_fft, n_mels=s.n_mels, fmin=s.fmin,
                                fmax=s.fmax)
    return torch.from_numpy(basis).float()


class MelConverter(nn.Module):
    """wav (B, L) or (L,) in [-1, 1] -> log-mel (B, n_mels, frames); always computed in fp32.

    frames = (L + n_fft - hop - n_fft) // hop + 1, i.e. L // hop for hop-multiple L.
    """

    def __init__(self, settings: MelSettings | str):
        super().__init__()
        if isinstance(settings, str):
            settings = MEL_SETTINGS[settings]
        self.settings = settings
        # Derived constants: not part of any checkpoint.
        self.register_buffer("mel_basis", mel_filterbank(settings), persistent=False)
        self.register_buffer("window", torch.hann_window(settings.win, periodic=True),
                             persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        s = self.settings
        squeeze = wav.ndim == 1
        x = wav.float().reshape(-1, wav.shape[-1]).clamp(-1.0, 1.0)
        pad = s.pad_each_side
        x = torch.nn.functional.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(x, s.n_fft, hop_length=s.hop, win_length=s.win, window=self.window,
                          center=False, normalized=False, onesided=True, return_complex=True)
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + s.magnitude_eps)
        mel = torch.matmul(self.mel_basis, mag).clamp(min=s.clamp_min)
        mel = torch.log10(mel) if s.log == "log10" else torch.log(mel)
        return mel[0] if squeeze else mel

    @property
    def frames_per_second(self) -> float:
        return self.settings.sample_rate / self.settings.hop


def num_mel_frames(num_samples: int, settings: MelSettings) -> int:
    return (num_samples + 2 * settings.pad_each_side - settings.n_fft) // settings.hop + 1


__all__ = ["MEL_16K", "MEL_44K", "MEL_SETTINGS", "MelConverter", "MelSettings", "mel_filterbank",
           "num_mel_frames"]
