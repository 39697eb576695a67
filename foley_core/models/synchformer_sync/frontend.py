"""Audio front end of the Synchformer (spec §2): 16-kHz mono, 0.64-s segments every 0.32 s, and a
per-segment log-mel (128 × 66) normalised with AST's AudioSet statistics."""

from __future__ import annotations

import torch

from ...errors import MediaError

SAMPLE_RATE = 16000
SEGMENT_SAMPLES = 10240  # 16 video frames at 25 fps
SEGMENT_STRIDE = 5120
N_FFT, WIN_LENGTH, HOP, N_MELS = 1024, 400, 160, 128
SPEC_FRAMES = 66  # 65 STFT frames + one zero column appended after the log
LOG_EPS = 1e-6
NORM_MEAN, NORM_STD = -4.2677393, 4.5689974

_MEL = {}


def to_16k(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """torchaudio's default resampler (Hann sinc, 6 zero crossings, roll-off 0.99), as av-benchmark."""
    if int(sample_rate) == SAMPLE_RATE:
        return wave.float()
    import torchaudio.functional as AF

    return AF.resample(wave.float(), int(sample_rate), SAMPLE_RATE)


def audio_segments(wave: torch.Tensor) -> torch.Tensor:
    """(B, N) → (B, S, 10240) overlapping segments; trailing samples that do not fill one are dropped."""
    if wave.shape[-1] < SEGMENT_SAMPLES:
        raise MediaError(f"Synchformer needs at least {SEGMENT_SAMPLES} samples at 16 kHz (0.64 s); "
                         f"got {wave.shape[-1]}.")
    return wave.unfold(-1, SEGMENT_SAMPLES, SEGMENT_STRIDE)


def _mel_transform(device: torch.device):
    # torchaudio MelSpectrogram at its defaults otherwise: centred reflect pad, periodic Hann of 400
    # inside a 1024 FFT, power 2, HTK mel scale without area normalisation (spec §2.3).
    key = str(device)
    if key not in _MEL:
        import torchaudio

        _MEL[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP,
            n_mels=N_MELS).to(device)
    return _MEL[key]


def mel_power(segments: torch.Tensor) -> torch.Tensor:
    """(..., 10240) → (..., 128, 65) mel power, each segment padded on its own."""
    return _mel_transform(segments.device)(segments.float())


def log_mel_segments(wave_16k: torch.Tensor) -> torch.Tensor:
    """(B, N) 16-kHz mono → (B, S, 128, 66) normalised log-mel (mel, time), what the AST receives."""
    mel = torch.log(mel_power(audio_segments(wave_16k)) + LOG_EPS)
    pad = SPEC_FRAMES - mel.shape[-1]
    mel = torch.nn.functional.pad(mel, (0, pad)) if pad > 0 else mel[..., :SPEC_FRAMES]
    return (mel - NORM_MEAN) / (2.0 * NORM_STD)
