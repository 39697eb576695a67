"""Small synthetic media for tests and demos: flash videos with known timing, sine tones.

Every frame of a flash video is black except the "flash" frames, which are entirely white.
Non-flash frames also carry their own index as an 8-bit code (grey blocks in the middle of the
picture, most significant bit on the left), so a test can tell exactly which source frame a
resampled output frame came from (`read_index_code`).
"""

from __future__ import annotations

import os
import wave
from fractions import Fraction
from typing import Iterable, Optional, Sequence, Tuple

import av
import numpy as np

CODE_BITS = 8
CODE_LEVEL = 160  # grey of a 1-bit block, far from both black and white after compression


def code_block_centers(width: int, height: int) -> list:
    """(x, y) pixel centres of the index-code blocks, most significant bit first.

    The blocks span the middle 60 % of the width, so a centre crop to a square keeps them.
    """
    left, block = 0.2 * width, 0.6 * width / CODE_BITS
    return [(left + (bit + 0.5) * block, 0.5 * height) for bit in range(CODE_BITS)]


def flash_frame(index: int, flash: bool, size: Tuple[int, int]) -> np.ndarray:
    """One RGB uint8 picture [H, W, 3]: white if `flash`, else black with `index` encoded."""
    width, height = size
    if flash:
        return np.full((height, width, 3), 255, np.uint8)
    picture = np.zeros((height, width, 3), np.uint8)
    block = 0.6 * width / CODE_BITS
    top, bottom = int(0.35 * height), int(0.65 * height)
    for bit in range(CODE_BITS):
        if (index >> (CODE_BITS - 1 - bit)) & 1:
            x0 = int(round(0.2 * width + bit * block))
            x1 = int(round(0.2 * width + (bit + 1) * block))
            picture[top:bottom, x0:x1] = CODE_LEVEL
    return picture


def flash_frames_array(n_frames: int, flash_frames: Iterable[int] = (),
                       size: Tuple[int, int] = (160, 120)) -> np.ndarray:
    """The frames of `write_flash_video` as one uint8 batch [T, H, W, 3] (no encoding)."""
    flashes = set(flash_frames)
    return np.stack([flash_frame(i, i in flashes, size) for i in range(n_frames)])


def read_index_code(picture: np.ndarray, centers: Sequence[Tuple[float, float]]) -> Optional[int]:
    """Frame index encoded in an RGB picture [H, W, 3]; None for a white (flash) picture.

    `centers` are the code block centres in this picture's pixel coordinates.
    """
    grey = np.asarray(picture, dtype=np.float32).mean(axis=-1)
    if grey.mean() > 200:
        return None
    value = 0
    for x, y in centers:
        level = grey[int(round(y)), int(round(x))]
        value = (value << 1) | int(level > CODE_LEVEL / 2)
    return value


def make_tone(sample_rate: int, duration_s: float, freq_hz: float = 440.0,
              amplitude: float = 0.5) -> np.ndarray:
    """A mono sine, float32 [round(sample_rate · duration_s)]."""
    n = int(round(sample_rate * duration_s))
    t = np.arange(n, dtype=np.float64) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def write_tone_wav(path, sample_rate: int = 16000, duration_s: float = 1.0,
                   freq_hz: float = 440.0, amplitude: float = 0.5) -> str:
    """Write a 16-bit mono WAV sine (an audio-only file) and return its path."""
    path = os.fspath(path)
    pcm = np.round(make_tone(sample_rate, duration_s, freq_hz, amplitude) * 32767).astype("<i2")
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return path


def _encode_video(path: str, frames: Sequence[Tuple[int, np.ndarray]], time_base: Fraction,
                  rate: Fraction, last_duration: int, codec: str, gop: Optional[int],
                  rotation: int, with_audio: Optional[int]) -> str:
    """Encode (pts, picture) pairs; the last frame lasts `last_duration` ticks of time_base."""
    height, width = frames[0][1].shape[:2]
    container = av.open(path, mode="w")
    try:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if gop:
            stream.codec_context.gop_size = gop
        if codec == "libx264":
            # B-frames on (veryfast keeps them), near-lossless so the flashes stay crisp
            stream.options = {"preset": "veryfast", "crf": "12"}
        if rotation:
            # PyAV >= 14; the value is the counter-clockwise display angle (`frame.rotation`)
            stream.set_display_rotation(rotation)
        audio = container.add_stream("aac", rate=with_audio) if with_audio else None

        packets = []
        for pts, picture in frames:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            packets += stream.encode(frame)
        packets += stream.encode(None)
        # Encoders do not pass frame durations on; set the last one so the file ends exactly.
        last = max(packets, key=lambda p: p.pts)
        last.duration = int(last_duration * time_base / last.time_base)
        for packet in packets:
            container.mux(packet)

        if audio is not None:
            end_s = float((frames[-1][0] + last_duration) * time_base)
            tone = make_tone(with_audio, end_s, 440.0, 0.3)
            frame = av.AudioFrame.from_ndarray(tone[None, :], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = with_audio, 0
            for packet in audio.encode(frame) + audio.encode(None):
                container.mux(packet)
    finally:
        container.close()
    return path


def write_flash_video(path, fps: Fraction = Fraction(30000, 1001), n_frames: int = 96,
                      flash_frames: Iterable[int] = (), size: Tuple[int, int] = (160, 120),
                      codec: str = "libx264", with_audio: Optional[int] = None,
                      rotation: int = 0, gop: Optional[int] = None) -> str:
    """Constant-frame-rate flash video: frame i is shown at i / fps and lasts 1 / fps.

    size is (width, height) of the stored picture; with_audio is a sample rate for an AAC tone
    track covering the video; rotation (degrees, counter-clockwise) is stored as a display
    matrix, so players show the picture turned; gop sets the keyframe interval.
    """
    fps = Fraction(fps)
    flashes = set(flash_frames)
    frames = [(i, flash_frame(i, i in flashes, size)) for i in range(n_frames)]
    return _encode_video(os.fspath(path), frames, 1 / fps, fps, 1, codec, gop, rotation,
                         with_audio)


def write_vfr_flash_video(path, frame_times_s: Sequence[float], last_frame_s: float,
                          flash_frames: Iterable[int] = (), size: Tuple[int, int] = (160, 120),
                          codec: str = "libx264", time_base: Fraction = Fraction(1, 1000),
                          with_audio: Optional[int] = None) -> str:
    """Variable-frame-rate flash video: frame i starts at frame_times_s[i] (rounded to
    time_base) and the last frame lasts last_frame_s, so the video ends at
    frame_times_s[-1] + last_frame_s."""
    flashes = set(flash_frames)
    ticks = [int(round(Fraction(repr(float(t))) / time_base)) for t in frame_times_s]
    if any(b <= a for a, b in zip(ticks, ticks[1:])):
        raise ValueError("frame times must increase by at least one time_base tick")
    frames = [(pts, flash_frame(i, i in flashes, size)) for i, pts in enumerate(ticks)]
    last = int(round(Fraction(repr(float(last_frame_s))) / time_base))
    mean_rate = Fraction(len(ticks)) / ((ticks[-1] + last - ticks[0]) * time_base)
    return _encode_video(os.fspath(path), frames, time_base, mean_rate.limit_denominator(1000),
                         last, codec, None, 0, with_audio)
