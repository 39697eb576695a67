"""TiVA's audio layout (Xu et al.): a low-resolution, normalised mel spectrogram.

Paper (§3.1, Eq. 1): t_a = Resize(Norm(mel_a); M, C); audio at 16 kHz with AudioLDM2's mel
preprocessing ([1024 frames, 64 bands] for 10.24 s), layout [M, C] = [102, 5] for a 10 s clip.
AudioLDM2's mel, as we understand its preprocessing: 16 kHz, n_fft = win = 1024, hop 160
(100 frames/s), 64 Slaney mel bands over 0-8 kHz, STFT magnitude, natural log of max(x, 1e-5).

Not given by the paper, chosen here (documented so a trained predictor can match them):
- Norm: per-clip min-max of the log-mel to [0, 1] (a constant clip gives zeros);
- Resize: area averaging (adaptive average pooling) over both axes, which is what "down-scaling"
  does to an image without aliasing;
- frame count M = max(1, round(duration · frame_rate)) with frame_rate = 10.2 frames/s (102 for
  10 s, the issue's convention; 102 frames over AudioLDM2's 10.24 s would be 9.96 frames/s);
- frame i of the layout covers [i / rate, (i + 1) / rate) of the clip (a pooled span, not a
  centred sample), band 0 is the lowest frequency band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import FoleyError
from .envelope import as_numpy, mono_resampled

LAYOUT_SAMPLE_RATE = 16000
LAYOUT_N_FFT = 1024
LAYOUT_HOP = 160
LAYOUT_MELS = 64
LAYOUT_FMAX = 8000.0
LAYOUT_BANDS = 5
LAYOUT_FRAME_RATE = 10.2
LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class Layout:
    """An audio layout: values[i, c] for layout frame i (covering [i/rate, (i+1)/rate)) and band c."""

    values: np.ndarray  # float32 [frames, bands], in [0, 1]
    frame_rate: float  # layout frames per second (10.2 by default)

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_bands(self) -> int:
        return int(self.values.shape[1])

    @property
    def duration(self) -> float:
        return self.n_frames / self.frame_rate


def layout_frames(duration_s: float, frame_rate: float = LAYOUT_FRAME_RATE) -> int:
    """M for a clip: round(duration · rate), at least 1 (102 for 10 s)."""
    return max(1, int(round(float(duration_s) * float(frame_rate))))


def _layout_mel_converter():
    from ..models.mel import MelConverter, MelSettings

    # AudioLDM2's 16 kHz mel (module doc); MelConverter reflect-pads (n_fft - hop) / 2 per side.
    return MelConverter(MelSettings(LAYOUT_SAMPLE_RATE, LAYOUT_N_FFT, LAYOUT_HOP, LAYOUT_N_FFT, LAYOUT_MELS,
                                    0.0, LAYOUT_FMAX, "ln", clamp_min=LOG_FLOOR))


def normalize_and_resize(log_mel: torch.Tensor, frames: int, bands: int) -> torch.Tensor:
    """Eq. 1 on a batch: log-mel (B, n_mels, T) → layout (B, frames, bands) in [0, 1].

    Differentiable (guidance uses it on decoded mels): min-max per clip, then area resize.
    """
    if log_mel.ndim != 3:
        raise ValueError(f"expected a log-mel batch (B, n_mels, T), got shape {tuple(log_mel.shape)}")
    mel = log_mel.float()
    low = mel.amin(dim=(1, 2), keepdim=True)
    high = mel.amax(dim=(1, 2), keepdim=True)
    norm = (mel - low) / (high - low).clamp(min=1e-6)
    # (B, 1, T, n_mels) image → (B, 1, frames, bands) by area averaging.
    pooled = torch.nn.functional.adaptive_avg_pool2d(norm.transpose(1, 2)[:, None], (int(frames), int(bands)))
    return pooled[:, 0]


def audio_layout(waveform, sample_rate: int, *, bands: int = LAYOUT_BANDS,
                 frame_rate: float = LAYOUT_FRAME_RATE) -> Layout:
    """TiVA's ground-truth layout of one clip (any duration, channel count and sample rate)."""
    if bands < 1 or bands > LAYOUT_MELS:
        raise FoleyError(f"A layout needs 1 to {LAYOUT_MELS} bands (the mel has {LAYOUT_MELS}); got {bands}.")
    if not frame_rate > 0:
        raise FoleyError(f"The layout frame rate must be positive, got {frame_rate}.")
    y = mono_resampled(waveform, sample_rate, LAYOUT_SAMPLE_RATE)
    if y.shape[0] < LAYOUT_N_FFT:
        raise FoleyError(f"The audio is {y.shape[0] / LAYOUT_SAMPLE_RATE:.3f} s long; a layout needs at least "
                         f"{LAYOUT_N_FFT / LAYOUT_SAMPLE_RATE:.3f} s.")
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:  # the mel front end clamps to [-1, 1]; keep the shape instead of clipping
        y = y / peak
    mel = _layout_mel_converter()(torch.from_numpy(y))[None]
    frames = layout_frames(y.shape[0] / LAYOUT_SAMPLE_RATE, frame_rate)
    values = normalize_and_resize(mel, frames, bands)[0].numpy().astype(np.float32)
    return Layout(values=values, frame_rate=float(frame_rate))


def mel_band_limit(mel_settings) -> int:
    """How many of a mel's bands lie below TiVA's 8 kHz top (all of them for 16 kHz audio)."""
    import librosa

    centres = librosa.mel_frequencies(mel_settings.n_mels + 2, fmin=mel_settings.fmin,
                                      fmax=mel_settings.fmax)[1:-1]
    return max(1, int(np.sum(centres <= LAYOUT_FMAX)))


def layout_span(layout: Layout, start_s: float, duration_s: float, frames: int) -> np.ndarray:
    """The layout over [start_s, start_s + duration_s) resampled to `frames` rows (linear in time,
    edge values held), float32 [frames, bands]."""
    centres_src = (np.arange(layout.n_frames) + 0.5) / layout.frame_rate
    centres = start_s + (np.arange(frames) + 0.5) * (duration_s / frames)
    values = as_numpy(layout.values).astype(np.float64)
    return np.stack([np.interp(centres, centres_src, values[:, c]) for c in range(layout.n_bands)],
                    axis=1).astype(np.float32)
