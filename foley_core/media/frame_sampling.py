"""Resample a video to the fixed frame rates the encoders expect (spec/mmaudio.md §5.1).

Rule: for each target stream of rate f, the frame emitted for target time start + k/f is the
FIRST source frame whose timestamp is >= that time (a slow source repeats frames, a fast one
skips them). Timestamps are the real per-frame presentation times, so variable-frame-rate video
works. Targets past the last frame's start (but before the video's end) repeat the last frame,
which is the one still on screen.

Memory: frames are decoded one at a time and resized as soon as a stream needs them; only the
small output stacks (uint8) are kept, never a full-resolution frame batch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import av
import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from ..errors import MediaError
from .video_probe import MAX_FRAME_SIDE, VideoInfo, open_media, probe_video

# Longest stretch of video one call will resample. At 600 s the CLIP and sync stacks already
# take about 4.4 GB of uint8; longer videos must be cut with max_duration_s.
MAX_DURATION_S = 600.0
# The IMAGE preview: at most this rate and this many frames, longest side at most this size.
PREVIEW_MAX_FPS = 8
PREVIEW_MAX_FRAMES = 240
PREVIEW_MAX_SIDE = 256

Picture = torch.Tensor  # uint8 [3, H, W], display orientation
FrameSource = Union[str, os.PathLike, torch.Tensor, np.ndarray]


@dataclass(frozen=True)
class FrameStream:
    """One resampled output: its name, frame rate and how each frame is resized.

    fit: "squash" (to size×size, aspect ignored), "short_side_crop" (short side to size, then
    centre crop size×size) or "fit_within" (longest side at most size, aspect kept, no upscale).
    """

    name: str
    fps: Fraction
    size: int
    fit: str

    def resize(self, picture: Picture) -> Picture:
        bicubic = TF.InterpolationMode.BICUBIC
        if self.fit == "squash":
            return TF.resize(picture, [self.size, self.size], bicubic, antialias=True)
        if self.fit == "short_side_crop":
            # torchvision v2 Resize(int) rounding: long side = int(size * long / short)
            shorter = TF.resize(picture, [self.size], bicubic, antialias=True)
            return TF.center_crop(shorter, [self.size, self.size])
        if self.fit == "fit_within":
            height, width = picture.shape[-2:]
            scale = self.size / max(height, width)
            if scale >= 1:
                return picture
            new_size = [max(1, round(height * scale)), max(1, round(width * scale))]
            return TF.resize(picture, new_size, TF.InterpolationMode.BILINEAR, antialias=True)
        raise ValueError(f"unknown fit mode {self.fit!r}")


# The two streams MMAudio conditions on (spec/mmaudio.md §5.2, §5.3).
CLIP_STREAM = FrameStream("clip", Fraction(8), 384, "squash")
SYNC_STREAM = FrameStream("sync", Fraction(25), 224, "short_side_crop")
STANDARD_STREAMS = (CLIP_STREAM, SYNC_STREAM)


@dataclass
class SampledVideo:
    """A video segment resampled to fixed-rate uint8 stacks plus a float IMAGE preview."""

    source_path: Optional[str]  # None for an in-memory frame batch
    frame_rate: Fraction  # the source's (average) frame rate
    start_s: float  # where the segment starts in the source, seconds
    duration: Fraction  # exact segment length in seconds
    width: int  # source size as displayed (after rotation)
    height: int
    streams: Dict[str, torch.Tensor]  # name -> uint8 [T, 3, H, W]
    stream_rates: Dict[str, Fraction]
    preview: torch.Tensor  # float32 [T, H, W, 3] in 0..1 (ComfyUI IMAGE)
    preview_rate: Fraction
    rotation: int = 0
    source_duration_s: float = field(default=0.0)
    # The frame batch itself when the source was in memory (no file to copy packets from): the
    # muxer encodes it. A reference to the caller's tensor, not a copy.
    source_frames: Optional[torch.Tensor] = field(default=None, repr=False)

    @property
    def duration_s(self) -> float:
        return float(self.duration)

    @property
    def clip_frames(self) -> torch.Tensor:
        """8 fps, uint8 [int(8·d), 3, 384, 384]."""
        return self.streams[CLIP_STREAM.name]

    @property
    def sync_frames(self) -> torch.Tensor:
        """25 fps, uint8 [int(25·d), 3, 224, 224]."""
        return self.streams[SYNC_STREAM.name]


class _TimestampSampler:
    """Fills one output stack with the first frame at or after each target time."""

    def __init__(self, stream: FrameStream, start: Fraction, count: int):
        self.stream, self.start, self.count = stream, start, count
        self.filled = 0
        self.out: Optional[torch.Tensor] = None  # allocated once the frame size is known

    @property
    def done(self) -> bool:
        return self.filled >= self.count

    def wants(self, t: Fraction) -> bool:
        """True when frame time t reaches the next unfilled target time."""
        return not self.done and t >= self.start + self.filled / self.stream.fps

    def _put(self, resized: Picture) -> None:
        if self.out is None:
            self.out = torch.empty((self.count, *resized.shape), dtype=torch.uint8)
        self.out[self.filled] = resized
        self.filled += 1

    def push(self, t: Fraction, picture: Picture) -> None:
        resized = self.stream.resize(picture)
        while self.wants(t):
            self._put(resized)

    def fill(self, picture: Picture) -> None:
        resized = self.stream.resize(picture)
        while not self.done:
            self._put(resized)


def _as_fraction(value, what: str) -> Fraction:
    """Exact seconds from a widget float: 1.1 means 11/10, not its binary approximation."""
    if isinstance(value, (Fraction, int)):
        return Fraction(value)
    number = float(value)
    if not math.isfinite(number):
        raise MediaError(f"{what} must be a finite number of seconds, got {value!r}.")
    return Fraction(repr(number))


def _rate_fraction(rate) -> Fraction:
    """Frame rate as a Fraction; floats like 29.97002997 become 30000/1001."""
    if isinstance(rate, (Fraction, int)):
        return Fraction(rate)
    return Fraction(float(rate)).limit_denominator(10000)


def _to_picture(frame: "av.VideoFrame", rotation: int) -> Picture:
    picture = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
    if rotation:
        picture = torch.rot90(picture, rotation // 90, dims=(1, 2))  # counter-clockwise
    return picture.contiguous()


def _decoded_frames(info: VideoInfo, start: Fraction) -> Iterator[Tuple[Fraction, Callable]]:
    """(time from the first frame, loader of the display picture) in presentation order.

    Seeks to the keyframe before `start`; if the container lands after it, decodes from the top.
    """
    for use_seek in ((True, False) if start > 0 else (False,)):
        container = open_media(info.path)
        previous_t: Optional[Fraction] = None
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if use_seek and not _seek_before(container, stream, info, start):
                continue
            for frame in container.decode(stream):
                if frame.pts is not None:
                    t = (frame.pts - info.first_pts) * info.time_base
                else:  # no timestamp: assume one average frame after the previous one
                    step = 1 / info.frame_rate if info.frame_rate else Fraction(0)
                    t = previous_t + step if previous_t is not None else Fraction(0)
                if use_seek and previous_t is None and t > start:
                    break  # the seek overshot the start: decode from the top instead
                previous_t = t
                yield t, (lambda frame=frame: _to_picture(frame, info.rotation))
            else:
                return
        except av.error.FFmpegError as err:
            at = f" near {float(previous_t):.2f} s" if previous_t is not None else ""
            raise MediaError(
                f"Decoding '{info.path}' failed{at} ({err.strerror or err}). The file is "
                "damaged; re-export it or set max_duration_s to stop before the damage."
            ) from err
        finally:
            container.close()


def _seek_before(container, stream, info: VideoInfo, start: Fraction) -> bool:
    """Jump to the keyframe at or before `start` (False when the file cannot seek)."""
    target = info.first_pts + math.floor(start / info.time_base)
    try:
        container.seek(target, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        return False
    return True


def _batch_frames(frames: torch.Tensor, rate: Fraction) -> Iterator[Tuple[Fraction, Callable]]:
    """Frame i of an IMAGE batch is shown at i / rate."""

    def load(index: int) -> Picture:
        image = frames[index, :, :, :3]
        if image.dtype != torch.uint8:
            image = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
        return image.permute(2, 0, 1).contiguous()

    for index in range(frames.shape[0]):
        yield Fraction(index) / rate, (lambda index=index: load(index))


def _check_batch(frames, frame_rate) -> Tuple[torch.Tensor, Fraction]:
    if frame_rate is None:
        raise MediaError(
            "A frame batch needs its frame rate: pass frame_rate (e.g. 24 or 30000/1001)."
        )
    rate = _rate_fraction(frame_rate)
    if rate <= 0:
        raise MediaError(f"frame_rate must be positive, got {frame_rate!r}.")
    frames = torch.as_tensor(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (3, 4) or frames.shape[0] == 0:
        raise MediaError(
            f"Expected an IMAGE batch [frames, height, width, 3] with at least one frame, got "
            f"shape {tuple(frames.shape)}."
        )
    return frames, rate


def _segment_duration(total: Fraction, start: Fraction, max_duration) -> Fraction:
    """d = min(max_duration, video duration - start), with clear errors for impossible asks."""
    if start < 0:
        raise MediaError(f"start_s must be 0 or more, got {float(start):g}.")
    if start >= total:
        raise MediaError(
            f"start_s={float(start):g} s is at or past the end of the video "
            f"({float(total):.3f} s long). Choose a start below {float(total):.3f} s."
        )
    available = total - start
    if max_duration is None or float(max_duration) == 0:
        return available
    limit = _as_fraction(max_duration, "max_duration_s")
    if limit < 0:
        raise MediaError(
            f"max_duration_s must be positive (or 0 for the whole video), got {float(limit):g}."
        )
    return min(limit, available)


def _check_limits(width: int, height: int, duration: Fraction) -> None:
    if max(width, height) > MAX_FRAME_SIDE:
        raise MediaError(
            f"The video is {width}×{height} px; frames larger than {MAX_FRAME_SIDE} px on a side "
            "are not supported. Downscale the video first."
        )
    if duration > MAX_DURATION_S:
        raise MediaError(
            f"The requested segment is {float(duration):.1f} s long; at most {MAX_DURATION_S:g} s "
            "can be resampled at once. Set max_duration_s (and start_s) to pick a shorter part."
        )


def _preview_stream(duration: Fraction) -> FrameStream:
    rate = min(Fraction(PREVIEW_MAX_FPS), (PREVIEW_MAX_FRAMES / duration).limit_denominator(1000))
    return FrameStream("preview", rate, PREVIEW_MAX_SIDE, "fit_within")


def sample_video(
    source: FrameSource,
    start_s: float = 0.0,
    max_duration_s: Optional[float] = None,
    *,
    frame_rate=None,
    streams: Sequence[FrameStream] = STANDARD_STREAMS,
    progress: Optional[Callable[[int, int], None]] = None,
) -> SampledVideo:
    """Resample a video file or an IMAGE batch to the given fixed-rate streams (see module doc).

    source: a path, or a frame batch [T, H, W, 3] (float 0..1 or uint8) with `frame_rate`.
    max_duration_s: None or 0 takes everything after start_s.
    progress: called as progress(frames_done, frames_total); it may raise to cancel.
    """
    start = _as_fraction(start_s, "start_s")
    if isinstance(source, (str, os.PathLike)):
        info = probe_video(source)
        path, rate, total = info.path, info.frame_rate, info.duration
        width, height, rotation = info.width, info.height, info.rotation
        duration = _segment_duration(total, start, max_duration_s)
        _check_limits(width, height, duration)
        frames: Iterator = _decoded_frames(info, start)
    else:
        batch, rate = _check_batch(source, frame_rate)
        path, total, rotation = None, batch.shape[0] / rate, 0
        height, width = int(batch.shape[1]), int(batch.shape[2])
        duration = _segment_duration(total, start, max_duration_s)
        _check_limits(width, height, duration)
        frames = _batch_frames(batch, rate)

    wanted = list(streams) + [_preview_stream(duration)]
    samplers = [_TimestampSampler(s, start, int(s.fps * duration)) for s in wanted]
    empty = [s for s in samplers if s.count == 0]
    if empty:
        shortest = max(1 / s.stream.fps for s in empty)
        raise MediaError(
            f"The segment is only {float(duration):.3f} s long, too short for one "
            f"{empty[0].stream.name} frame; it needs at least {float(shortest):.3f} s."
        )
    total_frames = sum(s.count for s in samplers)

    last_load = None
    try:
        for t, load in frames:
            last_load = load
            needy = [s for s in samplers if s.wants(t)]
            if needy:
                picture = load()  # only frames some stream uses are converted to RGB
                for sampler in needy:
                    sampler.push(t, picture)
                if progress is not None:
                    progress(sum(s.filled for s in samplers), total_frames)
            if all(s.done for s in samplers):
                break  # every target is filled: nothing after this frame is read
    finally:
        frames.close()  # closes the file now, also when progress() cancels
    if last_load is None:
        raise MediaError(f"No frames could be read from {path or 'the frame batch'}.")
    unfinished = [s for s in samplers if not s.done]
    if unfinished:
        picture = last_load()
        for sampler in unfinished:
            sampler.fill(picture)

    preview = samplers[-1].out.permute(0, 2, 3, 1).float() / 255.0
    return SampledVideo(
        source_path=path,
        frame_rate=rate,
        start_s=float(start),
        duration=duration,
        width=width,
        height=height,
        streams={s.stream.name: s.out for s in samplers[:-1]},
        stream_rates={s.stream.name: s.stream.fps for s in samplers[:-1]},
        preview=preview,
        preview_rate=samplers[-1].stream.fps,
        rotation=rotation,
        source_duration_s=float(total),
        source_frames=None if path is not None else batch,
    )
