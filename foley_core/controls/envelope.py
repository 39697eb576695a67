"""RMS envelope control of Stable-V2A (Gramaccioni et al.), the one implementation the project uses.

Paper recipe (§III-B/C): audio at 16 kHz, peak-normalised to [-1, 1]; RMS with
`librosa.feature.rms`, window W = 512, hop h = 128 (125 frames/s, "1250 time samples" per 10 s);
a smoothing filter with kernel size 15; μ-law (Eq. 8) quantised into 64 classes; Gaussian label
smoothing (Eq. 9, σ = 1) for the classification targets; μ-law decoding + interpolation at inference.

Frame-count convention: `librosa.feature.rms(center=True)` pads W/2 on both sides and returns
1 + L // h frames (1251 for 10 s). Frame i is centred at i·h samples; we keep the frames whose
centre lies inside the clip (i·h < L), i.e. ceil(L / h) frames = 1250 for 10 s, matching the
paper. The dropped frame is centred exactly on the end of the clip (half of it is padding).

Not given by the paper, chosen here: the smoothing filter is a centred moving average
(edge-replicating), and μ-law is applied to the non-negative envelope with μ = n_classes - 1 and
equidistant bins over [0, 1] (librosa.mu_compress on the signed range would leave half of the 64
classes unused, since r >= 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import uniform_filter1d

ENVELOPE_SAMPLE_RATE = 16000
ENVELOPE_FRAME = 512
ENVELOPE_HOP = 128
ENVELOPE_SMOOTHING = 15
ENVELOPE_CLASSES = 64


@dataclass(frozen=True)
class Envelope:
    """A frame-level amplitude envelope; frame i is centred at time i / frame_rate seconds."""

    values: np.ndarray  # float32 [frames], in [0, 1] when computed from peak-normalised audio
    frame_rate: float  # frames per second (125 Hz for the paper's settings)

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / self.frame_rate

    def times(self) -> np.ndarray:
        return np.arange(self.n_frames, dtype=np.float64) / self.frame_rate


def as_numpy(x) -> np.ndarray:
    """A numpy view of a numpy array, torch tensor or sequence."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def mono_resampled(waveform, sample_rate: int, target_rate: int) -> np.ndarray:
    """One clip as float32 mono numpy at `target_rate`.

    Accepts [T], [C, T] or [1, C, T] (the host's AUDIO layout with batch 1), numpy or torch.
    Channels are averaged, as the paper's 16 kHz mono pipeline implies.
    """
    y = as_numpy(waveform).astype(np.float32, copy=False)
    if y.ndim == 3:
        if y.shape[0] != 1:
            raise ValueError(f"expected one clip, got a batch of {y.shape[0]}; pass clips one by one")
        y = y[0]
    if y.ndim == 2:
        y = y.mean(axis=0)
    if y.ndim != 1:
        raise ValueError(f"waveform must be [T], [C, T] or [1, C, T], got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("waveform contains NaN or Inf")
    sample_rate = int(sample_rate)
    if sample_rate != target_rate:
        import librosa  # deferred: librosa import is slow and only needed when resampling

        y = librosa.resample(y, orig_sr=sample_rate, target_sr=target_rate)
    return np.ascontiguousarray(y, dtype=np.float32)


def rms_envelope(
    waveform,
    sample_rate: int,
    *,
    frame: int = ENVELOPE_FRAME,
    hop: int = ENVELOPE_HOP,
    smoothing: int = ENVELOPE_SMOOTHING,
    normalize: bool = True,
) -> Envelope:
    """Stable-V2A's RMS envelope: 16 kHz mono -> (peak-normalise) -> librosa RMS -> moving average.

    `normalize` peak-normalises the audio to [-1, 1] first (the paper's step), so the envelope of
    any non-silent clip lies in [0, 1]; turn it off to compare absolute levels. `smoothing` <= 1
    disables the filter.
    """
    import librosa

    y = mono_resampled(waveform, sample_rate, ENVELOPE_SAMPLE_RATE)
    if normalize:
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if peak > 0:
            y = y / peak
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=True)[0]
    rms = rms[: math.ceil(y.shape[0] / hop)]  # frames centred inside the clip (see module doc)
    if smoothing and smoothing > 1:
        rms = uniform_filter1d(rms.astype(np.float64), size=int(smoothing), mode="nearest")
    return Envelope(values=np.asarray(rms, dtype=np.float32), frame_rate=ENVELOPE_SAMPLE_RATE / hop)


def envelope_values(env) -> np.ndarray:
    """The float64 values of an Envelope or of a plain array/tensor."""
    if isinstance(env, Envelope):
        return env.values.astype(np.float64)
    return as_numpy(env).astype(np.float64).reshape(-1)


def mu_law_encode(values, n_classes: int = ENVELOPE_CLASSES) -> np.ndarray:
    """Eq. 8 with μ = n_classes - 1 on values in [0, 1], rounded to n_classes equidistant bins.

    Class 0 is silence. Values outside [0, 1] are clipped (a peak-normalised envelope is inside).
    """
    mu = n_classes - 1
    r = np.clip(envelope_values(values) if isinstance(values, Envelope) else as_numpy(values), 0.0, 1.0)
    compressed = np.log1p(mu * r) / np.log1p(mu)
    return np.rint(compressed * mu).astype(np.int64)


def mu_law_decode(classes, n_classes: int = ENVELOPE_CLASSES) -> np.ndarray:
    """Inverse of `mu_law_encode` (bin centre -> linear amplitude), float32.

    Round-trip error: the compressed value is off by at most 1 / (2μ), so the linear value is off by
    at most (r + 1/μ)·((1+μ)^(1/(2μ)) - 1), about 3.4 % of (r + 1/63) for 64 classes.
    """
    mu = n_classes - 1
    c = np.clip(as_numpy(classes).astype(np.float64), 0, mu)
    return (np.expm1(c / mu * np.log1p(mu)) / mu).astype(np.float32)


def smoothed_targets(classes, n_classes: int = ENVELOPE_CLASSES, sigma: float = 1.0,
                     window: int | None = None, normalize: bool = False) -> np.ndarray:
    """Gaussian label smoothing of Eq. 9: float32 [..., n_classes] targets for class indices.

    target[i] = exp(-(i - c)^2 / (2σ^2)) for |i - c| <= window, else 0. Following the paper's
    "(c_i, c_gt != 0)" condition, silence stays one-hot: a silent frame targets class 0 only and
    class 0 gets no mass from a non-silent frame. `window` defaults to ceil(3σ) (the paper leaves W
    open). The peak is 1 as in Eq. 9; `normalize=True` rescales each row to sum to 1.
    """
    c = as_numpy(classes).astype(np.int64)
    if window is None:
        window = int(math.ceil(3 * sigma))
    idx = np.arange(n_classes)
    dist = idx - c[..., None]
    t = np.exp(-(dist.astype(np.float64) ** 2) / (2.0 * sigma**2))
    t[np.abs(dist) > window] = 0.0
    silent = c == 0
    t[..., 0] = 0.0
    t[silent] = 0.0
    t[silent, 0] = 1.0
    if normalize:
        t /= t.sum(axis=-1, keepdims=True)
    return t.astype(np.float32)


def resample_envelope(env, length: int | None = None, *, frame_rate: float | None = None,
                      source_rate: float | None = None):
    """Linearly interpolate an envelope to `length` frames or to a new `frame_rate`.

    Frames are treated as samples at times i / rate (as in `Envelope`). For a plain array,
    `source_rate` is needed with `frame_rate`; with `length` the array spans the same duration.
    Returns an Envelope for an Envelope input, else a float32 array.
    """
    if (length is None) == (frame_rate is None):
        raise ValueError("give exactly one of length or frame_rate")
    values = envelope_values(env)
    n = values.shape[0]
    src_rate = env.frame_rate if isinstance(env, Envelope) else source_rate
    if frame_rate is not None:
        if src_rate is None:
            raise ValueError("a plain array needs source_rate to change frame rate")
        length = max(1, int(math.ceil(n / src_rate * frame_rate - 1e-9)))
        new_rate = float(frame_rate)
    else:
        length = int(length)
        new_rate = src_rate * length / n if src_rate else None
    if length < 1 or n == 0:
        raise ValueError("cannot resample an empty envelope or to zero length")
    # Positions of the new frames on the old frame axis (same start time, same duration).
    pos = np.arange(length, dtype=np.float64) * (n / length)
    out = np.interp(pos, np.arange(n, dtype=np.float64), values).astype(np.float32)
    if isinstance(env, Envelope):
        return replace(env, values=out, frame_rate=new_rate)
    return out
