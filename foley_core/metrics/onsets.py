"""Onset accuracy and onset AP against ground-truth event times (CondFoleyGen / MMAudio protocol).

Source of the definitions: CondFoleyGen's `predict_onset.py` (Du et al., CVPR 2023), whose onset
evaluation MMAudio follows on Greatest Hits (its copy of the script defaults to a 0.3 s tolerance;
CondFoleyGen's own default is 0.1 s). AvSyncDiff (citing Xie et al. 2024) and SyncFusion (per
TiVA) report metrics of the same names. The papers only name them; the script defines them:

- onset accuracy = (# ground-truth onsets matched by a detection within the tolerance) / (# GT
  onsets), i.e. recall; extra detections are not penalised here (AP penalises them).
- onset AP = average precision over all detections ranked by confidence, where matched
  detections are positives, unmatched detections negatives, and each missed GT onset is an extra
  positive with score 0. AP is the step-wise area under the precision-recall curve,
  sum_k (R_k - R_{k-1}) P_k (sklearn's `average_precision_score`). Caveat of that convention:
  the score-0 misses are "recalled" at the last threshold, so a clip where nothing matches still
  gets AP = #GT / (#GT + #detections) (0.5 when the counts agree). `convention="detection"`
  gives the standard detection AP instead (misses are never recalled; nothing matched -> 0).
  With no detection at all AP is 0 in both conventions (the script would give 1.0).
- a match requires |t_pred - t_gt| < tolerance (strict, as in the script); each GT onset and each
  detection is used at most once.

Deliberate differences from the script (documented, small): detections are matched greedily in
order of decreasing confidence (the standard detection-AP rule) instead of walking GT onsets in
time order; the confidence is the normalised onset strength at the detected frame instead of the
peak waveform amplitude near it; librosa's peak-picking `delta` is fixed at 0.3 (CondFoleyGen's
value; the MMAudio-side copy passes its tolerance as `delta`). The same detector runs on generated and reference audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..controls.envelope import as_numpy, mono_resampled

ONSET_SAMPLE_RATE = 22050  # CondFoleyGen's analysis rate
ONSET_HOP = 512  # librosa default: 23 ms frames
ONSET_PEAK_DELTA = 0.3  # onset_detect threshold on the [0, 1]-normalised strength (CondFoleyGen)
ONSET_MIN_SEPARATION_S = 0.05  # non-maximum suppression window (CondFoleyGen's onset_nms)
DEFAULT_TOLERANCES = (0.1, 0.3)


@dataclass(frozen=True)
class Onsets:
    """Detected onset times (seconds, ascending) with a confidence in [0, 1] for each."""

    times: np.ndarray
    confidence: np.ndarray


def onset_strength_curve(waveform, sample_rate: int) -> tuple[np.ndarray, float]:
    """librosa spectral-flux onset strength at 22.05 kHz, hop 512; returns (curve, frame_rate)."""
    import librosa

    y = mono_resampled(waveform, sample_rate, ONSET_SAMPLE_RATE)
    env = librosa.onset.onset_strength(y=y, sr=ONSET_SAMPLE_RATE, hop_length=ONSET_HOP)
    return env.astype(np.float64), ONSET_SAMPLE_RATE / ONSET_HOP


def _suppress_close(times: np.ndarray, conf: np.ndarray, window: float) -> np.ndarray:
    """Indices kept by greedy NMS: the most confident onset wins within `window` seconds."""
    keep: list[int] = []
    for i in np.argsort(-conf, kind="stable"):
        if all(abs(times[i] - times[j]) >= window for j in keep):
            keep.append(int(i))
    return np.array(sorted(keep, key=lambda k: times[k]), dtype=np.int64)


def detect_onsets(waveform, sample_rate: int) -> Onsets:
    """Onsets of one clip: librosa onset_strength + onset_detect(delta=0.3) + 50 ms NMS."""
    import librosa

    env, rate = onset_strength_curve(waveform, sample_rate)
    peak = float(env.max()) if env.size else 0.0
    if peak <= 0:
        return Onsets(np.zeros(0), np.zeros(0))
    frames = librosa.onset.onset_detect(
        onset_envelope=env, sr=ONSET_SAMPLE_RATE, hop_length=ONSET_HOP,
        delta=ONSET_PEAK_DELTA, normalize=True, units="frames",
    )
    times = frames.astype(np.float64) / rate
    conf = env[frames] / peak
    keep = _suppress_close(times, conf, ONSET_MIN_SEPARATION_S)
    return Onsets(times[keep], conf[keep])


def _as_onsets(pred, sample_rate: int | None) -> Onsets:
    """Onsets from an Onsets object, an array of times (confidence 1) or audio (needs sample_rate)."""
    if isinstance(pred, Onsets):
        return pred
    if sample_rate is not None:
        return detect_onsets(pred, sample_rate)
    times = as_numpy(pred).astype(np.float64).reshape(-1)
    return Onsets(np.sort(times), np.ones_like(times))


def match_onsets(pred: Onsets, gt_times, tolerance: float) -> np.ndarray:
    """Boolean per detection: matched to a not-yet-matched GT onset with |dt| < tolerance.

    Detections are visited by decreasing confidence; each takes the nearest free GT onset.
    """
    gt = np.sort(as_numpy(gt_times).astype(np.float64).reshape(-1))
    gt_free = np.ones(gt.shape[0], dtype=bool)
    hit = np.zeros(pred.times.shape[0], dtype=bool)
    for i in np.argsort(-pred.confidence, kind="stable"):
        if not gt_free.any():
            break
        dt = np.where(gt_free, np.abs(gt - pred.times[i]), np.inf)
        j = int(np.argmin(dt))
        if dt[j] < tolerance:
            gt_free[j] = False
            hit[i] = True
    return hit


def average_precision(labels, scores, n_positives: int | None = None) -> float:
    """Step-wise AP, sum_k (R_k - R_{k-1}) P_k over distinct score thresholds (ties grouped).

    Recall is TP / n_positives (default: the number of positive labels).
    """
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.size == 0:
        return 0.0 if n_positives else float("nan")
    n_pos = labels.sum() if n_positives is None else float(n_positives)
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    labels, scores = labels[order], scores[order]
    tp = np.cumsum(labels)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]  # evaluate only at threshold changes
    tp, n = tp[last_of_tie], np.flatnonzero(last_of_tie) + 1
    precision, recall = tp / n, tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def onset_accuracy(pred, gt_onsets, tolerance: float = 0.1, *, sample_rate: int | None = None) -> float:
    """Fraction of GT onsets matched within `tolerance` s (CondFoleyGen's detection accuracy).

    `pred` is audio (give `sample_rate`), an array of onset times, or `Onsets`. NaN without GT.
    """
    gt = as_numpy(gt_onsets).reshape(-1)
    if gt.size == 0:
        return float("nan")
    hit = match_onsets(_as_onsets(pred, sample_rate), gt, tolerance)
    return float(hit.sum() / gt.size)


def onset_ap(pred, gt_onsets, tolerance: float = 0.1, *, sample_rate: int | None = None,
             convention: str = "condfoleygen") -> float:
    """Onset average precision. "condfoleygen": missed GT = positive at score 0 (comparable with
    CondFoleyGen / MMAudio numbers); "detection": standard detection AP (misses never recalled).
    NaN without GT onsets.
    """
    gt = as_numpy(gt_onsets).reshape(-1)
    if gt.size == 0:
        return float("nan")
    onsets = _as_onsets(pred, sample_rate)
    if onsets.times.size == 0:
        return 0.0  # the script's convention would score a silent clip 1.0 (all positives)
    hit = match_onsets(onsets, gt, tolerance)
    if convention == "detection":
        return average_precision(hit, onsets.confidence, n_positives=gt.size)
    if convention != "condfoleygen":
        raise ValueError(f"convention must be 'condfoleygen' or 'detection', got {convention!r}")
    n_missed = gt.size - int(hit.sum())
    labels = np.r_[hit.astype(np.float64), np.ones(n_missed)]
    scores = np.r_[onsets.confidence, np.zeros(n_missed)]
    return average_precision(labels, scores)


def onset_scores(pred_audio, sample_rate: int, gt_onset_times,
                 tolerances=DEFAULT_TOLERANCES) -> dict[str, float]:
    """Accuracy and AP at each tolerance for one clip, detecting onsets once.

    Keys: "onset_acc@0.1s", "onset_ap@0.1s" (CondFoleyGen convention), "onset_ap_det@0.1s"
    (detection convention), ... plus "n_pred" and "n_gt".
    """
    onsets = detect_onsets(pred_audio, sample_rate)
    out: dict[str, float] = {"n_pred": float(onsets.times.size),
                             "n_gt": float(as_numpy(gt_onset_times).size)}
    for tol in tolerances:
        out[f"onset_acc@{tol:g}s"] = onset_accuracy(onsets, gt_onset_times, tol)
        out[f"onset_ap@{tol:g}s"] = onset_ap(onsets, gt_onset_times, tol)
        out[f"onset_ap_det@{tol:g}s"] = onset_ap(onsets, gt_onset_times, tol, convention="detection")
    return out
