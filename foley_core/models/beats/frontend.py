"""BEATs front end: 16-kHz waveform -> normalised Kaldi log-mel, and the padding-mask mappings.

Spec: shared/spec/beats.md §3 and §5. BEATs was trained on torchaudio's Kaldi-compatible fbank of
16-bit-scaled audio, so the same call (same defaults) is used here rather than a librosa-style mel.
"""

from __future__ import annotations

import torch
from torchaudio.compliance import kaldi

SAMPLE_RATE = 16000
INPUT_SCALE = 32768.0  # the fbank expects int16-range samples
NUM_MEL_BINS = 128
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
WINDOW_SAMPLES = 400
HOP_SAMPLES = 160


def num_frames(num_samples: int) -> int:
    """Kaldi snip_edges framing: whole 400-sample windows every 160 samples."""
    if num_samples < WINDOW_SAMPLES:
        return 0
    return 1 + (num_samples - WINDOW_SAMPLES) // HOP_SAMPLES


def log_mel_fbank(wav_16k: torch.Tensor) -> torch.Tensor:
    """(B, N) waveform in [-1, 1] -> raw Kaldi log-mel (B, T, 128), float32."""
    wav = wav_16k.to(torch.float32) * INPUT_SCALE
    frames = [
        kaldi.fbank(item.unsqueeze(0), num_mel_bins=NUM_MEL_BINS, sample_frequency=SAMPLE_RATE,
                    frame_length=FRAME_LENGTH_MS, frame_shift=FRAME_SHIFT_MS)
        for item in wav
    ]
    return torch.stack(frames, dim=0)


def normalise_fbank(fbank: torch.Tensor) -> torch.Tensor:
    """The official dataset statistics; note the factor 2 on the standard deviation."""
    return (fbank - FBANK_MEAN) / (2.0 * FBANK_STD)


def preprocess(wav_16k: torch.Tensor) -> torch.Tensor:
    """(B, N) waveform -> normalised log-mel (B, T, 128)."""
    return normalise_fbank(log_mel_fbank(wav_16k))


def chunk_mask(mask: torch.Tensor, n_out: int) -> torch.Tensor:
    """Map a (B, n_in) padding mask (True = padded) onto n_out positions.

    The official rule: drop the trailing n_in mod n_out entries, cut the rest into n_out equal
    contiguous chunks, and call a position padded only when its whole chunk is padded.
    """
    batch, n_in = mask.shape
    if n_out <= 0:
        return mask.new_zeros((batch, 0))
    usable = n_in - n_in % n_out
    return mask[:, :usable].reshape(batch, n_out, usable // n_out).all(dim=-1)
