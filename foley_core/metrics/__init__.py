"""Evaluation metrics for generated Foley: timing (onsets, envelopes, curves) and timbre/quality.

Host-independent; used by the synthetic benchmark and the control evaluations.
"""

from .classifier import mean_kl
from .curves import audio_curve, curve_distances, dtw_distance, wasserstein_curve_distance
from .envelope_distance import e_l1, envelope_l1_audio, envelope_l1_to_target
from .frechet import frechet_distance, frechet_distance_audio, frechet_distance_from_stats
from .onsets import (
    Onsets,
    average_precision,
    detect_onsets,
    match_onsets,
    onset_accuracy,
    onset_ap,
    onset_scores,
    onset_strength_curve,
)
from .timbre import closer_to_own_than_other, own_reference_rate, timbre_descriptor, timbre_distance

__all__ = [
    "Onsets",
    "audio_curve",
    "average_precision",
    "closer_to_own_than_other",
    "curve_distances",
    "detect_onsets",
    "dtw_distance",
    "e_l1",
    "envelope_l1_audio",
    "envelope_l1_to_target",
    "frechet_distance",
    "frechet_distance_audio",
    "frechet_distance_from_stats",
    "match_onsets",
    "mean_kl",
    "onset_accuracy",
    "onset_ap",
    "onset_scores",
    "onset_strength_curve",
    "own_reference_rate",
    "timbre_descriptor",
    "timbre_distance",
    "wasserstein_curve_distance",
]
