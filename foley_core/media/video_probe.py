"""Probe a video file with PyAV: frame rate, exact duration, display size, rotation, audio.

Duration rule (`VideoInfo.duration_s`): the video covers the time from the presentation
timestamp of its first decoded frame to the *end of its last frame* (largest packet
`pts + duration`). Only packet headers after the last keyframe are read (one seek), so this is
cheap for long files and exact for constant- and variable-frame-rate video: a 96-frame
29.97 fps H.264 mp4 lasts exactly 96·1001/30000 s. When the container does not store packet
durations, the stream duration, then the container duration, then "last pts + one average
frame" is used instead.

All times of a probed video are measured from its first frame (`first_pts`), so t = 0 is the
first picture whatever the container's own start offset is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import av

from ..errors import MediaError

# Frames larger than this on either side are refused (a 8K frame is 7680 px wide); decoding
# them would need gigabytes per frame stack and no Foley model benefits from it.
MAX_FRAME_SIDE = 8192


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns about a file. Width/height are as displayed (after rotation)."""

    path: str
    frame_rate: Fraction  # average rate of the video stream (frames per second)
    time_base: Fraction  # seconds per pts tick of the video stream
    first_pts: int  # pts of the first decoded frame; t = (pts - first_pts) * time_base
    duration: Fraction  # exact seconds from the first frame's start to the last frame's end
    width: int
    height: int
    rotation: int  # counter-clockwise degrees the decoded picture must turn for display
    codec: str
    has_audio: bool
    audio_sample_rate: Optional[int]

    @property
    def duration_s(self) -> float:
        return float(self.duration)


def open_media(path) -> "av.container.InputContainer":
    """Open `path` with PyAV, turning a missing or unreadable file into a MediaError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MediaError(
            f"Video file not found: '{path}'. Check the path (or upload the file to ComfyUI's "
            "input folder) and try again."
        )
    try:
        return av.open(path, mode="r")
    except av.error.FFmpegError as err:
        raise MediaError(
            f"'{path}' is not a readable media file ({err.strerror or err}). Make sure it is a "
            "video (e.g. an .mp4 with H.264) and not damaged; re-export it if needed."
        ) from err


def video_stream_of(container, path: str):
    """The first video stream of an open container, or a MediaError naming what was found."""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise MediaError(
            f"'{path}' has no video stream (it contains: {', '.join(kinds)}). "
            "Choose a video file; audio belongs in an AUDIO input."
        )
    return container.streams.video[0]


def frame_rotation(frame, stream) -> int:
    """Counter-clockwise display rotation in degrees (0, 90, 180 or 270).

    PyAV >= 14 exposes the display-matrix angle as `frame.rotation` (ffmpeg's convention: the
    picture is shown turned counter-clockwise by it, as `ffmpeg -autorotate` does). Older files
    or builds may only carry the legacy `rotate` tag, which counts clockwise.
    """
    degrees = getattr(frame, "rotation", None)
    if degrees is None:
        tag = stream.metadata.get("rotate")
        degrees = -int(float(tag)) if tag else 0
    return int(round(degrees / 90.0)) * 90 % 360


def first_frame(container, stream, path: str):
    """Decode the first frame, or raise a MediaError when the stream yields none."""
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as err:
        raise MediaError(
            f"The video stream of '{path}' cannot be decoded ({err.strerror or err}). "
            "The file is damaged or uses an unsupported codec; re-encode it to H.264 mp4."
        ) from err
    raise MediaError(
        f"The video stream of '{path}' contains no decodable frames. "
        "The file is empty or damaged; re-export the video."
    )


def _end_pts(container, stream) -> Optional[int]:
    """Largest `pts + duration` of the stream's packets (None if durations are not stored).

    Seeks to the last keyframe first: every frame presented after it is also decoded after it,
    so the tail of the packet list holds the maximum.
    """
    try:
        if stream.duration is not None:
            guess_end = (stream.start_time or 0) + stream.duration
            container.seek(guess_end, stream=stream, backward=True, any_frame=False)
        else:
            container.seek(0)  # rewind past the packets `first_frame` already consumed
    except av.error.FFmpegError:
        return None  # not seekable: fall back to the stored durations
    end = None
    last_pts, last_has_duration = None, True
    try:
        for packet in container.demux(stream):
            if packet.pts is None:
                continue  # the demuxer's final flush packet
            if last_pts is None or packet.pts > last_pts:
                last_pts, last_has_duration = packet.pts, bool(packet.duration)
            stop = packet.pts + (packet.duration or 0)
            end = stop if end is None else max(end, stop)
    except av.error.FFmpegError:
        pass  # a damaged tail: keep what was read; decoding will report real damage
    if last_pts is None or not last_has_duration:
        return None
    return end


def _fallback_duration(container, stream, first_pts: int, rate: Fraction) -> Fraction:
    """Duration when packets carry no durations: stream, then container, then one-frame guess."""
    tb = stream.time_base
    if stream.duration:
        return (stream.start_time or 0) * tb + stream.duration * tb - first_pts * tb
    if container.duration:
        return Fraction(container.duration, av.time_base) - first_pts * tb
    return 1 / rate if rate else Fraction(0)


def probe_video(path) -> VideoInfo:
    """Read a video file's stream facts (decoding only its first frame).

    Raises MediaError for a missing file, a file that is not media, a file without a video
    stream, or a video stream without decodable frames.
    """
    path = os.fspath(path)
    container = open_media(path)
    try:
        stream = video_stream_of(container, path)
        frame = first_frame(container, stream, path)
        tb = Fraction(stream.time_base)
        first_pts = frame.pts if frame.pts is not None else (stream.start_time or 0)
        rotation = frame_rotation(frame, stream)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        rate = Fraction(rate) if rate else Fraction(0)
        end_pts = _end_pts(container, stream)
        if end_pts is not None and end_pts > first_pts:
            duration = (end_pts - first_pts) * tb
        else:
            duration = _fallback_duration(container, stream, first_pts, rate)
        width, height = frame.width, frame.height
        if rotation in (90, 270):
            width, height = height, width
        audio = container.streams.audio
        return VideoInfo(
            path=path,
            frame_rate=rate,
            time_base=tb,
            first_pts=first_pts,
            duration=Fraction(duration),
            width=width,
            height=height,
            rotation=rotation,
            codec=stream.codec_context.name,
            has_audio=bool(audio),
            audio_sample_rate=audio[0].sample_rate if audio else None,
        )
    finally:
        container.close()
