"""Audio tensors: validation, resampling, channel/length fitting, and reading a file's soundtrack.

Waveforms follow the host's AUDIO convention: float32 in [-1, 1], shape [B, C, T] (batch,
channels, samples), with the sample rate carried next to the tensor, never assumed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import MediaError

# Rates outside this range are almost certainly a bug (e.g. a frame rate or a hop length passed
# as a sample rate), not a real recording.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000

# How far before the wanted start a seek lands, so the decoder output is settled by then.
_SEEK_PREROLL_S = 0.5

# Scale factors that map integer PCM to [-1, 1).
_INT_SCALES = {
    torch.int16: 32768.0,
    torch.int32: 2147483648.0,
    torch.int8: 128.0,
}


def check_sample_rate(sample_rate, what: str = "audio") -> int:
    """Return `sample_rate` as an int, or raise MediaError if it cannot be a real audio rate."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise MediaError(
            f"{what}: sample rate must be a number, got {type(sample_rate).__name__}. "
            "Pass the rate that came with the waveform (AUDIO['sample_rate'])."
        )
    if not math.isfinite(float(sample_rate)) or float(sample_rate) != int(sample_rate):
        raise MediaError(
            f"{what}: sample rate must be a whole number of Hz, got {sample_rate}. "
            "Pass the rate that came with the waveform (AUDIO['sample_rate'])."
        )
    rate = int(sample_rate)
    if rate <= 0 or rate < MIN_SAMPLE_RATE or rate > MAX_SAMPLE_RATE:
        raise MediaError(
            f"{what}: sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz. "
            "This usually means a frame rate or hop length was passed instead of the audio "
            "sample rate; pass AUDIO['sample_rate']."
        )
    return rate


def _to_float32(waveform: torch.Tensor, what: str) -> torch.Tensor:
    """Convert to float32; integer PCM is scaled to [-1, 1) so it sounds the same."""
    if waveform.dtype == torch.bool or waveform.is_complex():
        raise MediaError(
            f"{what}: waveform has dtype {waveform.dtype}; audio must be real float samples "
            "in [-1, 1] (or integer PCM). Convert it before this node."
        )
    if waveform.dtype in _INT_SCALES:
        return waveform.to(torch.float32) / _INT_SCALES[waveform.dtype]
    if waveform.dtype == torch.uint8:  # unsigned 8-bit PCM is centred on 128
        return (waveform.to(torch.float32) - 128.0) / 128.0
    if not waveform.is_floating_point():
        raise MediaError(
            f"{what}: waveform has unsupported dtype {waveform.dtype}; use float32 in [-1, 1]."
        )
    return waveform.to(torch.float32)


def validate_waveform(waveform, sample_rate, what: str = "audio") -> torch.Tensor:
    """Check an audio tensor and return it as float32 [B, C, T].

    Accepts [B, C, T], [C, T] or [T] (float, or integer PCM which is scaled to [-1, 1)).
    Raises MediaError for NaN/Inf, empty audio, odd shapes and impossible sample rates.
    """
    check_sample_rate(sample_rate, what)
    if isinstance(waveform, np.ndarray):
        waveform = torch.from_numpy(np.ascontiguousarray(waveform))
    if not isinstance(waveform, torch.Tensor):
        raise MediaError(
            f"{what}: expected a waveform tensor, got {type(waveform).__name__}. "
            "Connect an AUDIO output (its 'waveform' entry)."
        )
    if waveform.dim() == 1:
        waveform = waveform[None, None]
    elif waveform.dim() == 2:
        waveform = waveform[None]
    elif waveform.dim() != 3:
        raise MediaError(
            f"{what}: waveform has shape {tuple(waveform.shape)}; expected [batch, channels, "
            "samples], [channels, samples] or [samples]."
        )
    batch, channels, samples = waveform.shape
    if batch == 0 or channels == 0 or samples == 0:
        raise MediaError(
            f"{what}: waveform is empty (shape {tuple(waveform.shape)}). The upstream node "
            "produced no audio; check its duration setting and input."
        )
    # A [B, T, C] tensor (channels last) would otherwise be read as thousands of channels.
    if channels > 64 and samples <= 64:
        raise MediaError(
            f"{what}: waveform shape {tuple(waveform.shape)} looks like [batch, samples, "
            "channels]; transpose it to [batch, channels, samples]."
        )
    waveform = _to_float32(waveform, what)
    finite = torch.isfinite(waveform)
    if not bool(finite.all()):
        n_nan = int(torch.isnan(waveform).sum())
        n_inf = int(waveform.numel() - int(finite.sum()) - n_nan)
        raise MediaError(
            f"{what}: waveform contains {n_nan} NaN and {n_inf} infinite samples out of "
            f"{waveform.numel()}. The model or decoder diverged; try float32 instead of float16, "
            "a lower CFG strength, or more sampling steps."
        )
    return waveform.contiguous()


def resample(waveform: torch.Tensor, from_sr: int, to_sr: int) -> torch.Tensor:
    """Resample along the last axis (band-limited sinc, torchaudio). No-op when rates match."""
    from_sr = check_sample_rate(from_sr, "resample source")
    to_sr = check_sample_rate(to_sr, "resample target")
    if from_sr == to_sr:
        return waveform
    import torchaudio.functional as AF  # imported here so plain tensor helpers stay light

    return AF.resample(waveform.to(torch.float32), from_sr, to_sr)


def to_mono(waveform: torch.Tensor) -> torch.Tensor:
    """Average the channel axis (second to last) into one channel, keeping the axis."""
    return waveform.mean(dim=-2, keepdim=True)


def to_channels(waveform: torch.Tensor, n: int) -> torch.Tensor:
    """Return `waveform` ([..., C, T]) with exactly `n` channels.

    Mono is duplicated; n == 1 averages; more channels than n keeps the first n (standard
    layouts put front left/right first); fewer channels than n (but more than one) repeat
    cyclically.
    """
    if n < 1:
        raise MediaError(f"Channel count must be at least 1, got {n}.")
    channels = waveform.shape[-2]
    if channels == n:
        return waveform
    if n == 1:
        return to_mono(waveform)
    if channels == 1:
        return waveform.expand(*waveform.shape[:-2], n, waveform.shape[-1]).contiguous()
    if channels > n:
        return waveform[..., :n, :].contiguous()
    index = torch.arange(n, device=waveform.device) % channels
    return waveform.index_select(-2, index)


def fit_to_length(waveform: torch.Tensor, n_samples: int, offset_samples: int = 0) -> torch.Tensor:
    """Shift along time, then trim or zero-pad the end so the last axis is exactly `n_samples`.

    A positive offset delays the audio (silence is inserted at the front); a negative offset
    advances it (the first -offset samples are dropped).
    """
    if n_samples < 0:
        raise MediaError(f"Target length must be non-negative, got {n_samples} samples.")
    offset_samples = int(offset_samples)
    if offset_samples > 0:
        pad = waveform.new_zeros(*waveform.shape[:-1], offset_samples)
        waveform = torch.cat([pad, waveform], dim=-1)
    elif offset_samples < 0:
        waveform = waveform[..., -offset_samples:]
    length = waveform.shape[-1]
    if length >= n_samples:
        return waveform[..., :n_samples].contiguous()
    tail = waveform.new_zeros(*waveform.shape[:-1], n_samples - length)
    return torch.cat([waveform, tail], dim=-1)


def decode_audio_stream(path, start_s: float = 0.0, duration_s: float | None = None):
    """Decode the first audio stream of a media file to float32 [C, T] at its own rate.

    The result is aligned to `start_s` on the file's timeline: sample 0 is the sound at
    `start_s` (silence is inserted if the stream starts later). Returns (waveform, sample_rate),
    or None when the file has no audio stream. Raises MediaError if the file cannot be read.
    """
    import av  # PyAV; imported lazily so tensor-only users do not pay for it

    if start_s < 0 or not math.isfinite(start_s):
        raise MediaError(f"Audio start must be a finite time >= 0 s, got {start_s}.")
    if duration_s is not None and (not math.isfinite(duration_s) or duration_s < 0):
        raise MediaError(f"Audio duration must be a finite time >= 0 s, got {duration_s}.")
    try:
        container = av.open(str(path))
    except FileNotFoundError as exc:
        raise MediaError(f"Media file not found: {path}. Check the path.") from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(
            f"Cannot open {path} as a media file ({exc}). Re-export it as mp4/wav/flac."
        ) from exc
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        n_channels = stream.codec_context.channels or 1
        if not rate:
            raise MediaError(f"{path}: audio stream reports no sample rate; re-export the file.")
        # Planar float at the stream's own rate and layout: no resampling here.
        converter = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        first = int(round(start_s * rate))
        want = None if duration_s is None else int(round(duration_s * rate))
        pieces: list[np.ndarray] = []
        cursor = first  # absolute sample index of the next sample we still need
        try:
            if start_s > _SEEK_PREROLL_S:
                # Lossy decoders (AAC, Opus) need a few frames to warm up after a seek, so seek
                # earlier; samples before `first` are dropped by _place.
                target = (start_s - _SEEK_PREROLL_S) / stream.time_base
                container.seek(int(target), stream=stream, backward=True)
            for frame in container.decode(stream):
                data = _frames_to_array(converter.resample(frame))
                start = int(round(frame.time * rate)) if frame.pts is not None else cursor
                cursor = _place(data, start, cursor, pieces)
                if want is not None and cursor - first >= want:
                    break
            else:
                cursor = _place(_frames_to_array(converter.resample(None)), cursor, cursor, pieces)
        except av.error.FFmpegError as exc:
            raise MediaError(
                f"Cannot decode the audio of {path} ({exc}). The file may be corrupt; re-export it."
            ) from exc
    audio = (
        np.concatenate(pieces, axis=1) if pieces else np.zeros((n_channels, 0), np.float32)
    )
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if want is not None:
        waveform = fit_to_length(waveform, want)
    return waveform, rate


def _frames_to_array(frames) -> np.ndarray | None:
    """Join converted planar frames into one [C, T] float32 array (None if nothing came out)."""
    arrays = [f.to_ndarray() for f in frames]
    if not arrays:
        return None
    return np.concatenate([a if a.ndim == 2 else a[None] for a in arrays], axis=1)


def _place(data, start: int, cursor: int, pieces: list) -> int:
    """Append the part of `data` (which begins at sample `start`) at or after sample `cursor`.

    Gaps before `start` become silence so later samples stay at their true time.
    """
    if data is None:
        return cursor
    if start > cursor:
        pieces.append(np.zeros((data.shape[0], start - cursor), np.float32))
        cursor = start
    skip = cursor - start  # samples of this frame before the wanted position
    if skip < data.shape[1]:
        pieces.append(data[:, skip:])
        cursor += data.shape[1] - skip
    return cursor
