"""Put a generated soundtrack onto a video without touching the picture.

The video stream is copied packet by packet (no decode, no re-encode), so the output's picture is
bit-identical to the source. The new audio is placed on the video's timeline, trimmed or padded
to cover the video exactly, optionally mixed with the source's own soundtrack, and encoded into a
single audio stream.

Containers: aac, flac and opus go into .mp4; pcm (16-bit little-endian) goes into .mov, because
QuickTime files with PCM play everywhere while PCM-in-mp4 (ISO 23003-5) is rarely supported by
players even though FFmpeg can write it.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..errors import MediaError
from .audio import decode_audio_stream, fit_to_length, resample, to_channels, validate_waveform

# Rates the MPEG-4 AAC sampling-frequency table allows.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@dataclass(frozen=True)
class _CodecSpec:
    encoders: tuple[str, ...]  # FFmpeg encoder names, best first
    container: str  # FFmpeg muxer name
    extension: str
    rates: tuple[int, ...] | None  # allowed sample rates; None = any
    fallback_rate: int  # used when the input rate is not allowed
    takes_bitrate: bool


CODECS = {
    "aac": _CodecSpec(("aac",), "mp4", "mp4", _AAC_RATES, 48000, True),
    "flac": _CodecSpec(("flac",), "mp4", "mp4", None, 48000, False),
    "opus": _CodecSpec(("libopus", "opus"), "mp4", "mp4", (48000,), 48000, True),
    "pcm": _CodecSpec(("pcm_s16le",), "mov", "mov", None, 48000, False),
}
MODES = ("replace", "mix")
# Soft limiter: samples below the knee pass unchanged, louder ones bend smoothly towards 1.0.
LIMITER_KNEE = 0.9


@dataclass(frozen=True)
class MuxResult:
    path: Path
    video_duration_s: float  # end of the last frame minus start of the first
    audio_duration_s: float  # samples written / sample_rate
    n_video_packets: int
    audio_codec: str
    sample_rate: int
    channels: int = 2
    mode: str = "replace"  # the mode actually used ("mix" falls back to "replace" without audio)
    notes: tuple[str, ...] = ()  # things the user should know (clipping, fallbacks, ...)


@dataclass(frozen=True)
class VideoTiming:
    start_s: Fraction  # presentation time of the first frame
    duration_s: Fraction  # end of the last frame minus start_s
    n_packets: int


def container_extension(audio_codec: str) -> str:
    """File extension (no dot) of the container mux_audio writes for `audio_codec`."""
    return _codec_spec(audio_codec).extension


def output_sample_rate(audio_codec: str, sample_rate: int) -> int:
    """The rate the audio is encoded at: the input rate when the codec allows it."""
    spec = _codec_spec(audio_codec)
    if spec.rates is None or sample_rate in spec.rates:
        return int(sample_rate)
    return spec.fallback_rate


def _codec_spec(audio_codec: str) -> _CodecSpec:
    if audio_codec not in CODECS:
        raise MediaError(
            f"Unknown audio codec {audio_codec!r}; choose one of {', '.join(CODECS)}."
        )
    return CODECS[audio_codec]


def _open_video(video_path):
    """Open `video_path` and return (container, video stream); MediaError when unusable."""
    import av

    path = Path(video_path)
    if not path.is_file():
        raise MediaError(f"Video file not found: {path}. Check the path or re-run Load Video.")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(
            f"Cannot open {path} as a video ({exc}). The file is corrupt or not a video; "
            "re-export it as mp4 (H.264)."
        ) from exc
    streams = [s for s in container.streams.video if not _is_cover_art(s)]
    if not streams:
        container.close()
        raise MediaError(
            f"{path} has no video stream (audio-only or image file). Mux needs the source video."
        )
    return container, streams[0]


def _is_cover_art(stream) -> bool:
    import av

    flag = getattr(getattr(av.stream, "Disposition", None), "attached_pic", None)
    return bool(flag is not None and stream.disposition & flag)


def probe_video_timing(video_path) -> VideoTiming:
    """Read the video stream's packets (no decoding) and return its start and exact duration."""
    import av

    container, stream = _open_video(video_path)
    with container:
        time_base = stream.time_base
        frame_ticks = None
        if stream.average_rate:  # fallback length of a packet that does not state its duration
            frame_ticks = Fraction(1) / Fraction(stream.average_rate) / time_base
        first = last_end = None
        n_packets = 0
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                n_packets += 1
                ticks = packet.duration or (frame_ticks or 0)
                first = packet.pts if first is None else min(first, packet.pts)
                end = packet.pts + ticks
                last_end = end if last_end is None else max(last_end, end)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{video_path} is corrupt ({exc}); re-export the video.") from exc
    if n_packets == 0 or last_end <= first:
        raise MediaError(f"{video_path} has a video stream without frames; re-export the video.")
    return VideoTiming(Fraction(first) * time_base, Fraction(last_end - first) * time_base, n_packets)


def soft_limit(waveform: torch.Tensor, knee: float = LIMITER_KNEE) -> torch.Tensor:
    """Bend samples above `knee` smoothly (tanh) so |output| < 1; quieter samples are unchanged."""
    magnitude = waveform.abs()
    headroom = 1.0 - knee
    bent = knee + headroom * torch.tanh((magnitude - knee) / headroom)
    return torch.where(magnitude > knee, torch.sign(waveform) * bent, waveform)


def _prepare_audio(audio, sample_rate, rate, n_samples, offset_samples, notes) -> torch.Tensor:
    """Turn validated [B, C, T] audio into float32 [C, n_samples] at `rate`, clipped to ±1."""
    if audio.shape[0] != 1:
        raise MediaError(
            f"Audio to mux holds a batch of {audio.shape[0]} waveforms; mux one at a time "
            "(split the batch, or pick one item, before this node)."
        )
    audio = audio[0].cpu()
    if audio.shape[0] > 2:
        notes.append(f"audio had {audio.shape[0]} channels; kept the first two (stereo)")
        audio = to_channels(audio, 2)
    if rate != sample_rate:
        notes.append(f"resampled audio from {sample_rate} Hz to {rate} Hz for the codec")
        audio = resample(audio, sample_rate, rate)
    audio = fit_to_length(audio, n_samples, offset_samples)
    n_loud = int((audio.abs() > 1.0).sum())
    if n_loud:
        notes.append(f"clipped {n_loud} samples of the new audio that exceeded [-1, 1]")
        audio = audio.clamp(-1.0, 1.0)
    return audio


def _mix_original(video_path, timing, new_audio, rate, original_gain, new_gain, notes):
    """Return (mixed audio, used_mix); used_mix is False when the source has no soundtrack."""
    start = float(timing.start_s)
    decoded = decode_audio_stream(video_path, max(start, 0.0), float(timing.duration_s))
    if decoded is None:
        notes.append("mix requested but the source video has no soundtrack; wrote the new audio only")
        return new_audio * new_gain, False
    original, original_rate = decoded
    original = resample(original, original_rate, rate)
    channels = min(2, max(new_audio.shape[0], original.shape[0]))
    original = fit_to_length(to_channels(original, channels), new_audio.shape[-1],
                             int(round(max(-start, 0.0) * rate)))
    return original_gain * original + new_gain * to_channels(new_audio, channels), True


def _pick_encoder(spec: _CodecSpec) -> str:
    import av

    for name in spec.encoders:
        if name in av.codecs_available:
            return name
    raise MediaError(
        f"This FFmpeg build has no encoder for {spec.encoders[0]}; choose another audio codec."
    )


def _sample_format(stream) -> str:
    """Pick a sample format the encoder accepts, preferring float (no quantisation)."""
    offered = [f.name for f in (stream.codec_context.codec.audio_formats or ())]
    for name in ("fltp", "flt", "s16", "s16p"):
        if name in offered:
            return name
    name = stream.codec_context.codec.name
    raise MediaError(f"Encoder {name} only takes sample formats {offered}; choose another codec.")


def _audio_frames(audio: np.ndarray, fmt: str, layout: str, rate: int, first_pts: int, frame_size: int):
    """Yield av.AudioFrame chunks of `audio` ([C, T] float32) in the encoder's sample format."""
    import av

    for pos in range(0, audio.shape[1], frame_size):
        chunk = audio[:, pos:pos + frame_size]
        if fmt in ("s16", "s16p"):
            chunk = np.clip(np.round(chunk * 32767.0), -32768, 32767).astype(np.int16)
        if fmt in ("flt", "s16"):  # packed formats: one row of interleaved samples
            chunk = chunk.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = first_pts + pos
        frame.time_base = Fraction(1, rate)
        yield frame


def _finite(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number):
        raise MediaError(f"{name} must be a finite number, got {value!r}.")
    return number


def _parse_bitrate(bitrate) -> int:
    text = str(bitrate).strip().lower()
    scale = 1000 if text.endswith("k") else 1
    try:
        value = int(float(text.rstrip("k")) * scale)
    except ValueError:
        value = 0
    if value < 6000 or value > 1_536_000:
        raise MediaError(f"Audio bitrate {bitrate!r} is not usable; give bits/s such as 192000 or '192k'.")
    return value


def _check_out_path(out_path: Path, spec: _CodecSpec, audio_codec: str) -> None:
    if out_path.suffix.lower() != "." + spec.extension:
        raise MediaError(
            f"Output {out_path.name} must end in .{spec.extension} for {audio_codec} audio "
            f"(the {spec.container} container); use container_extension('{audio_codec}')."
        )
    if not out_path.parent.is_dir():
        raise MediaError(f"Output folder {out_path.parent} does not exist; create it first.")
    if out_path.exists() and out_path.stat().st_size > 0:
        raise MediaError(f"Output file {out_path} already exists; choose a new name (never overwritten).")


def _publish(tmp_path: Path, out_path: Path) -> None:
    """Move the finished temp file to out_path atomically without clobbering real content."""
    if out_path.exists():
        # Only an empty placeholder (reserved by safe_output_file) may be replaced.
        if out_path.stat().st_size > 0:
            raise MediaError(f"Output file {out_path} appeared while muxing; not overwriting it.")
        os.replace(tmp_path, out_path)
        return
    try:
        os.link(tmp_path, out_path)  # fails if out_path was created meanwhile: no overwrite
    except FileExistsError as exc:
        raise MediaError(f"Output file {out_path} appeared while muxing; not overwriting it.") from exc
    except OSError:  # file systems without hard links
        if out_path.exists():
            raise MediaError(f"Output file {out_path} appeared while muxing; not overwriting it.")
        os.replace(tmp_path, out_path)
        return
    tmp_path.unlink()


def mux_audio(video_path, waveform, sample_rate, out_path, *, audio_codec="aac", offset_ms=0.0,
              mode="replace", original_gain=1.0, new_gain=1.0, audio_start_s=0.0,
              bitrate=None) -> MuxResult:
    """Write `out_path`: the source's video stream copied unchanged plus one new audio stream.

    The audio's sample 0 is placed at `audio_start_s + offset_ms / 1000` seconds after the first
    video frame (positive = later), then trimmed or zero-padded to the video's exact duration.
    mode="mix" adds the source's own soundtrack (original_gain * original + new_gain * new,
    then a soft limiter if the sum exceeds ±1). out_path must not hold content (an empty file
    reserved by safe_output_file is replaced); the file appears atomically when complete.
    """
    import av

    spec = _codec_spec(audio_codec)
    if mode not in MODES:
        raise MediaError(f"Unknown mux mode {mode!r}; choose 'replace' or 'mix'.")
    offset_ms, audio_start_s, original_gain, new_gain = (
        _finite(name, value) for name, value in (
            ("offset_ms", offset_ms), ("audio_start_s", audio_start_s),
            ("original_gain", original_gain), ("new_gain", new_gain)))
    if original_gain < 0 or new_gain < 0:
        raise MediaError("Gains must be >= 0 (0 mutes a track).")
    out_path = Path(out_path)
    _check_out_path(out_path, spec, audio_codec)
    notes: list[str] = []
    bit_rate = None
    if bitrate is not None and spec.takes_bitrate:
        bit_rate = _parse_bitrate(bitrate)
    elif bitrate is not None:
        notes.append(f"{audio_codec} is lossless; bitrate {bitrate!r} ignored")

    audio = validate_waveform(waveform, sample_rate, "audio to mux")  # before any decoding
    timing = probe_video_timing(video_path)
    rate = output_sample_rate(audio_codec, int(sample_rate))
    n_samples = int(round(timing.duration_s * rate))
    offset_samples = int(round((audio_start_s + offset_ms / 1000.0) * rate))
    source_length = int(math.ceil(audio.shape[-1] * rate / int(sample_rate)))
    audio = _prepare_audio(audio, int(sample_rate), rate, n_samples, offset_samples, notes)
    if offset_samples >= n_samples or offset_samples + source_length <= 0:
        notes.append("the new audio lies entirely outside the video after the offset; it is silent")

    used_mode = mode
    if mode == "mix":
        audio, mixed = _mix_original(video_path, timing, audio, rate, original_gain, new_gain, notes)
        used_mode = "mix" if mixed else "replace"
        if float(audio.abs().max()) > 1.0:
            notes.append("the mix exceeded [-1, 1]; applied a soft limiter above 0.9")
            audio = soft_limit(audio)
    elif new_gain != 1.0:
        audio = audio * new_gain
        if float(audio.abs().max()) > 1.0:
            notes.append("new_gain pushed the audio past [-1, 1]; applied a soft limiter above 0.9")
            audio = soft_limit(audio)
    # Guard: whatever happened above, never hand NaN or out-of-range samples to the encoder.
    audio = torch.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0).clamp(-1.0, 1.0)
    channels = audio.shape[0]

    tmp_path = out_path.with_name(f".{out_path.stem}.{uuid.uuid4().hex[:8]}.partial.{spec.extension}")
    try:
        n_packets = _write(video_path, tmp_path, spec, audio.numpy(), rate, timing, bit_rate)
        if n_packets != timing.n_packets:
            raise MediaError(f"{video_path} changed while muxing; run the node again.")
        _publish(tmp_path, out_path)
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"Cannot write {out_path.name} ({exc}). The source video codec may not fit the "
            f"{spec.container} container; convert the video to H.264 mp4 first."
        ) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return MuxResult(out_path, float(timing.duration_s), n_samples / rate, timing.n_packets,
                     audio_codec, rate, channels, used_mode, tuple(notes))


def _write(video_path, tmp_path: Path, spec: _CodecSpec, audio: np.ndarray, rate: int,
           timing: VideoTiming, bit_rate: int | None) -> int:
    """Encode `audio` and copy the video packets into `tmp_path`; return the packets copied."""
    import av

    source, in_video = _open_video(video_path)
    # Explicit muxer: the temp file's name is not what decides the container.
    with source, av.open(str(tmp_path), mode="w", format=spec.container) as target:
        out_video = target.add_stream_from_template(in_video)
        out_video.time_base = in_video.time_base  # same ticks, so pts/dts stay identical
        layout = "mono" if audio.shape[0] == 1 else "stereo"
        out_audio = target.add_stream(_pick_encoder(spec), rate=rate, layout=layout)
        if bit_rate is not None:
            out_audio.bit_rate = bit_rate
        fmt = _sample_format(out_audio)
        out_audio.format = fmt
        out_audio.codec_context.open()  # opening fixes the encoder's frame size
        frame_size = out_audio.codec_context.frame_size or 1024  # 0 = any size (pcm)
        first_pts = int(round(timing.start_s * rate))
        # Encode all audio first (compressed audio is small), then interleave it by time with
        # the video packets so the file plays progressively.
        audio_packets = []
        for frame in _audio_frames(audio, fmt, layout, rate, first_pts, frame_size):
            audio_packets.extend(out_audio.encode(frame))
        audio_packets.extend(out_audio.encode(None))
        queue = iter(audio_packets)
        pending = next(queue, None)
        n_copied = 0
        for packet in source.demux(in_video):
            if packet.dts is None:  # demuxer flush marker, not data
                continue
            video_time = packet.dts * packet.time_base
            while pending is not None and pending.dts * pending.time_base <= video_time:
                target.mux(pending)
                pending = next(queue, None)
            packet.stream = out_video
            target.mux(packet)
            n_copied += 1
        while pending is not None:
            target.mux(pending)
            pending = next(queue, None)
    return n_copied
