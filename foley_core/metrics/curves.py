"""TiVA's synchronisation distances between onset-detection-function (ODF) curves.

TiVA (Wang et al., ACM MM 2024, §4.1.3) compares the ODF curves of generated and reference audio
with DTW-dis and W-dis. What the paper states: DTW aligns the two time series (one-to-many
allowed), then sums the point-by-point Euclidean distance along the alignment; W-dis treats the
ODFs "as one-dimensional distributions" (earth mover's distance). It does not state the ODF
parameters, any normalisation, or whether W-dis uses time as the support. Our choices:

- curve: librosa onset strength (the same detector as `onsets.py`: 22.05 kHz, hop 512), or the
  project's RMS envelope (`curve="energy"`).
- normalisation: each curve is divided by its own maximum (a silent curve stays 0), so the
  distances measure timing/shape, not loudness.
- DTW-dis: total cost sum |a_i - b_j| over the optimal warping path (steps (1,0), (0,1), (1,1),
  unweighted); `per_step=True` divides by the path length.
- W-dis: the curves are mass distributions over time (support = frame times in seconds, weights =
  curve values); the result is in seconds. Each curve is rescaled to unit mass, so
  per-curve peak normalisation does not change it.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

from ..controls.envelope import as_numpy, rms_envelope
from .onsets import onset_strength_curve


def _peak_normalised(curve) -> np.ndarray:
    x = as_numpy(curve).astype(np.float64).reshape(-1)
    peak = np.max(np.abs(x)) if x.size else 0.0
    return x / peak if peak > 0 else x


def dtw_distance(a, b, *, normalize: bool = True, per_step: bool = False) -> float:
    """DTW cost between two 1-D curves with |a_i - b_j| as the local distance.

    The dynamic programme runs over anti-diagonals so that each step is one vectorised numpy
    operation (O(N + M) Python iterations, O(N·M) memory).
    """
    x = _peak_normalised(a) if normalize else as_numpy(a).astype(np.float64).reshape(-1)
    y = _peak_normalised(b) if normalize else as_numpy(b).astype(np.float64).reshape(-1)
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        raise ValueError("DTW of an empty curve")
    cost = np.abs(x[:, None] - y[None, :])
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for k in range(2, n + m + 1):  # k = i + j in 1-based accumulated indices
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        best = np.minimum(np.minimum(acc[i - 1, j], acc[i, j - 1]), acc[i - 1, j - 1])
        acc[i, j] = cost[i - 1, j - 1] + best
    total = float(acc[n, m])
    if not per_step:
        return total
    return total / _path_length(acc)


def _path_length(acc: np.ndarray) -> int:
    """Number of cells on the optimal path, traced back through the accumulated-cost matrix."""
    i, j = acc.shape[0] - 1, acc.shape[1] - 1
    steps = 1
    while (i, j) != (1, 1):
        moves = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min((mv for mv in moves if mv[0] >= 1 and mv[1] >= 1), key=lambda mv: acc[mv])
        steps += 1
    return steps


def wasserstein_curve_distance(a, b, frame_rate: float) -> float:
    """Earth mover's distance (seconds) between two curves seen as mass distributions over time.

    Both curves must be sampled at `frame_rate`; negative values are clipped to 0. Returns NaN if
    either curve has no mass (silence has no timing to compare).
    """
    x = np.clip(as_numpy(a).astype(np.float64).reshape(-1), 0, None)
    y = np.clip(as_numpy(b).astype(np.float64).reshape(-1), 0, None)
    if x.sum() <= 0 or y.sum() <= 0:
        return float("nan")
    tx = np.arange(x.shape[0]) / frame_rate
    ty = np.arange(y.shape[0]) / frame_rate
    return float(wasserstein_distance(tx, ty, u_weights=x, v_weights=y))


def audio_curve(waveform, sample_rate: int, curve: str = "onset") -> tuple[np.ndarray, float]:
    """(curve, frame_rate) of one clip: "onset" strength or "energy" (RMS envelope)."""
    if curve == "onset":
        return onset_strength_curve(waveform, sample_rate)
    if curve == "energy":
        env = rms_envelope(waveform, sample_rate)
        return env.values.astype(np.float64), env.frame_rate
    raise ValueError(f"curve must be 'onset' or 'energy', got {curve!r}")


def curve_distances(pred_audio, pred_sr: int, ref_audio, ref_sr: int, curve: str = "onset") -> dict[str, float]:
    """TiVA-style {"dtw": ..., "wasserstein_s": ...} between the curves of two audios."""
    a, rate = audio_curve(pred_audio, pred_sr, curve)
    b, _ = audio_curve(ref_audio, ref_sr, curve)
    return {"dtw": dtw_distance(a, b), "wasserstein_s": wasserstein_curve_distance(a, b, rate)}
