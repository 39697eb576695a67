"""E-L1: mean absolute difference between RMS envelopes (T-Foley's metric as used by Stable-V2A).

E-L1 = (1/k) sum_i |r_i - r̂_i| over the k envelope frames (Stable-V2A Eq. 11), with both
envelopes from `controls.envelope.rms_envelope` (16 kHz, W 512, h 128, smoothing 15, audio
peak-normalised), so the value lies in [0, 1]. Clips of different lengths are compared over
their common duration (the shorter envelope's frames).
"""

from __future__ import annotations

import numpy as np

from ..controls.envelope import Envelope, envelope_values, resample_envelope, rms_envelope


def e_l1(env_a, env_b) -> float:
    """E-L1 between two envelopes (Envelope or arrays at the same frame rate)."""
    if isinstance(env_a, Envelope) and isinstance(env_b, Envelope) \
            and not np.isclose(env_a.frame_rate, env_b.frame_rate):
        env_b = resample_envelope(env_b, frame_rate=env_a.frame_rate)
    a, b = envelope_values(env_a), envelope_values(env_b)
    k = min(a.shape[0], b.shape[0])
    if k == 0:
        raise ValueError("E-L1 of an empty envelope")
    return float(np.mean(np.abs(a[:k] - b[:k])))


def envelope_l1_audio(audio_a, sample_rate_a: int, audio_b, sample_rate_b: int, **envelope_kwargs) -> float:
    """E-L1 between the RMS envelopes of two audios (same envelope settings for both)."""
    return e_l1(rms_envelope(audio_a, sample_rate_a, **envelope_kwargs),
                rms_envelope(audio_b, sample_rate_b, **envelope_kwargs))


def envelope_l1_to_target(audio, sample_rate: int, target, **envelope_kwargs) -> float:
    """E-L1 between an audio's RMS envelope and a target envelope (e.g. the control it was given).

    A plain-array target is taken to be at the envelope's frame rate (125 Hz by default); an
    Envelope at another rate is interpolated to it first.
    """
    return e_l1(rms_envelope(audio, sample_rate, **envelope_kwargs), target)
