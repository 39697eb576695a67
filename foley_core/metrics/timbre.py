"""Timbre similarity between generated audio and reference sounds (material / reference control).

AC-Foley reports "timbre fidelity" only qualitatively (plus FD/KL/MCD), so we use a classic,
model-free descriptor: MFCC statistics over the non-silent frames of a clip.

Descriptor: 16 kHz mono, 64-band log-mel (n_fft 1024, hop 256, floor 80 dB below the peak) ->
20 MFCCs; frames whose RMS is more than 40 dB below the clip's loudest frame are dropped (silence
between hits says nothing about timbre); MFCC 0 is dropped (overall level); descriptor =
[mean, std] of MFCC 1-19 over the kept frames (38 values). Distance = Euclidean distance between descriptors.
"""

from __future__ import annotations

import numpy as np

from ..controls.envelope import as_numpy, mono_resampled

TIMBRE_SAMPLE_RATE = 16000
TIMBRE_N_FFT = 1024
TIMBRE_HOP = 256
TIMBRE_N_MELS = 64
TIMBRE_N_MFCC = 20
SILENCE_DB = 40.0  # frames this far below the loudest frame are ignored


def log_mel_frames(waveform, sample_rate: int, *, drop_silence: bool = True) -> np.ndarray:
    """[frames, 64] log-mel (dB) of the non-silent frames of one clip (all frames if none is loud)."""
    import librosa

    y = mono_resampled(waveform, sample_rate, TIMBRE_SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(y=y, sr=TIMBRE_SAMPLE_RATE, n_fft=TIMBRE_N_FFT,
                                         hop_length=TIMBRE_HOP, n_mels=TIMBRE_N_MELS)
    # A floor 80 dB under the clip peak (librosa default) keeps the descriptor level-independent
    # and stops near-empty bands of tonal sounds from dominating it.
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    if drop_silence:
        rms = librosa.feature.rms(y=y, frame_length=TIMBRE_N_FFT, hop_length=TIMBRE_HOP)[0]
        n = min(rms.shape[0], log_mel.shape[1])
        rms_db = 20 * np.log10(np.maximum(rms[:n], 1e-10))
        loud = rms_db >= rms_db.max() - SILENCE_DB
        if loud.any():
            log_mel = log_mel[:, :n][:, loud]
    return log_mel.T.astype(np.float64)


def timbre_descriptor(waveform, sample_rate: int) -> np.ndarray:
    """38-d timbre descriptor: mean and std of MFCC 1-19 over non-silent frames."""
    from scipy.fft import dct

    log_mel = log_mel_frames(waveform, sample_rate)  # [frames, mels]
    mfcc = dct(log_mel, type=2, norm="ortho", axis=1)[:, 1:TIMBRE_N_MFCC]
    return np.concatenate([mfcc.mean(axis=0), mfcc.std(axis=0)])


def _descriptor(item) -> np.ndarray:
    """A descriptor from a precomputed 1-D descriptor or a (waveform, sample_rate) pair."""
    if isinstance(item, tuple) and len(item) == 2:
        return timbre_descriptor(item[0], item[1])
    return as_numpy(item).astype(np.float64).reshape(-1)


def timbre_distance(a, b) -> float:
    """Euclidean distance between two timbre descriptors (or (waveform, sample_rate) pairs)."""
    return float(np.linalg.norm(_descriptor(a) - _descriptor(b)))


def own_reference_rate(outputs, references, own_index) -> float:
    """Fraction of outputs strictly closer to their own reference than to every other reference.

    outputs[i] was generated with references[own_index[i]]. Items are descriptors or
    (waveform, sample_rate) pairs. Chance level is 1 / len(references).
    """
    outs = [_descriptor(o) for o in outputs]
    refs = [_descriptor(r) for r in references]
    if len(refs) < 2:
        raise ValueError("need at least two references to compare against")
    wins = 0
    for out, own in zip(outs, own_index):
        d = np.array([np.linalg.norm(out - r) for r in refs])
        others = np.delete(d, int(own))
        wins += bool(d[int(own)] < others.min())
    return wins / len(outs)


def closer_to_own_than_other(outputs, own_refs, other_refs) -> float:
    """Fraction of i with distance(outputs[i], own_refs[i]) < distance(outputs[i], other_refs[i]).

    The pairwise version: other_refs[i] is a reference of another material. Chance level is 0.5.
    """
    if not (len(outputs) == len(own_refs) == len(other_refs)) or len(outputs) == 0:
        raise ValueError("outputs, own_refs and other_refs must be non-empty and equally long")
    wins = 0
    for o, a, b in zip(outputs, own_refs, other_refs):
        d = _descriptor(o)  # computed once, compared twice
        wins += bool(timbre_distance(d, a) < timbre_distance(d, b))
    return wins / len(outputs)
