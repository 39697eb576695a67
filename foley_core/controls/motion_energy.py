"""A training-free envelope estimate from a video: onset-emphasised motion energy.

Used by RMS Predict when no RMS-Mapper weights exist. It is a heuristic, not Stable-V2A's mapper:
sounds in Foley footage tend to start where something moves suddenly (an impact, a step), and last
while things move. Recipe (all at the video stream's own rate, 25 fps Synchformer frames):
1. grey frames g_k (mean of RGB, 0..1); motion m_k = mean |g_k − g_(k−1)| for k >= 1, m_0 = 0
   (the change that becomes visible at frame k is placed at time k / fps);
2. onset emphasis: e_k = m_k + ONSET_GAIN · max(0, m_k − m_(k−1)) (sudden increases count extra);
3. map to [0, 1]: divide by the 99th percentile (robust to one flash), clip; a still video gives
   zeros;
4. resample linearly to the envelope rate (125 frames/s, frame i at i / 125 s) and apply the
   envelope's own 15-frame moving average, so it looks like an RMS envelope (controls/envelope.py).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import uniform_filter1d

from ..errors import FoleyError
from .envelope import ENVELOPE_HOP, ENVELOPE_SAMPLE_RATE, ENVELOPE_SMOOTHING, Envelope, as_numpy

ONSET_GAIN = 2.0
ROBUST_PERCENTILE = 99.0


def motion_curve(frames, fps: float) -> np.ndarray:
    """Onset-emphasised motion energy per frame (steps 1-2), float64 [T].

    frames: [T, 3, H, W] (uint8 0..255 or float 0..1) or [T, H, W, 3] float (ComfyUI IMAGE).
    """
    x = as_numpy(frames)
    if x.ndim != 4:
        raise FoleyError(f"Motion energy needs a frame stack [T, 3, H, W] or [T, H, W, 3], got {x.shape}.")
    x = x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
    grey = x.mean(axis=1) if x.shape[1] == 3 else x.mean(axis=-1)
    motion = np.zeros(grey.shape[0], dtype=np.float64)
    if grey.shape[0] > 1:
        motion[1:] = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))
    rise = np.maximum(0.0, np.diff(motion, prepend=0.0))
    return motion + ONSET_GAIN * rise


def motion_energy_envelope(frames, fps: float, duration_s: float) -> Envelope:
    """The envelope estimate of a video segment (steps 1-4), 125 frames/s over duration_s."""
    if not fps > 0 or not duration_s > 0:
        raise FoleyError(f"Motion energy needs a positive frame rate and duration (got {fps}, {duration_s}).")
    curve = motion_curve(frames, fps)
    scale = float(np.percentile(curve, ROBUST_PERCENTILE)) if curve.size else 0.0
    curve = np.clip(curve / scale, 0.0, 1.0) if scale > 1e-9 else np.zeros_like(curve)
    rate = ENVELOPE_SAMPLE_RATE / ENVELOPE_HOP
    n = max(1, int(math.ceil(duration_s * rate - 1e-9)))
    values = np.interp(np.arange(n) / rate, np.arange(curve.shape[0]) / float(fps), curve)
    values = uniform_filter1d(values, size=ENVELOPE_SMOOTHING, mode="nearest")
    return Envelope(values=np.clip(values, 0.0, 1.0).astype(np.float32), frame_rate=rate)
