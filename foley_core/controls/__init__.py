"""Time-varying controls derived from audio (host-independent)."""

from .envelope import (
    ENVELOPE_CLASSES,
    ENVELOPE_FRAME,
    ENVELOPE_HOP,
    ENVELOPE_SAMPLE_RATE,
    ENVELOPE_SMOOTHING,
    Envelope,
    mono_resampled,
    mu_law_decode,
    mu_law_encode,
    resample_envelope,
    rms_envelope,
    smoothed_targets,
)

__all__ = [
    "ENVELOPE_CLASSES",
    "ENVELOPE_FRAME",
    "ENVELOPE_HOP",
    "ENVELOPE_SAMPLE_RATE",
    "ENVELOPE_SMOOTHING",
    "Envelope",
    "mono_resampled",
    "mu_law_decode",
    "mu_law_encode",
    "resample_envelope",
    "rms_envelope",
    "smoothed_targets",
]
