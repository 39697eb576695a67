"""mux_audio: video packets copied byte for byte, audio placed and sized to the video exactly."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from foley_core.errors import MediaError
from foley_core.media.mux import container_extension, mux_audio, probe_video_timing, soft_limit

FPS = Fraction(30000, 1001)
N_FRAMES = 96  # 96 / 29.97 = 3.2032 s
VIDEO_DURATION = N_FRAMES / FPS
SR = 44100
FRAME_SIZES = {"aac": 1024, "opus": 960, "flac": 4608, "pcm": 1}


def _write_video(path, with_audio: bool = False, with_video: bool = True) -> None:
    """H.264 (with B-frames, so dts != pts) 160x120 at 29.97 fps; optional 1 kHz AAC soundtrack."""
    container = av.open(str(path), "w", format="mp4")
    # All streams must exist before the first packet is written (that writes the header).
    video = audio = None
    if with_video:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"preset": "veryfast", "bf": "2", "g": "24"}
    if with_audio:
        audio = container.add_stream("aac", rate=SR, layout="stereo")
    if video is not None:
        for i in range(N_FRAMES):
            image = np.zeros((120, 160, 3), np.uint8)
            image[:, : (i * 5) % 160] = (40, 200, 90)  # moving edge: real P/B-frame content
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    if audio is not None:
        t = np.arange(int(3.5 * SR)) / SR
        tone = (0.4 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
        data = np.stack([tone, tone])
        for pos in range(0, data.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data[:, pos : pos + 1024]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = SR, pos
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    container.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mux_src")
    paths = {
        "silent": folder / "silent.mp4",
        "with_audio": folder / "with_audio.mp4",
        "audio_only": folder / "audio_only.mp4",
        "corrupt": folder / "corrupt.mp4",
    }
    _write_video(paths["silent"])
    _write_video(paths["with_audio"], with_audio=True)
    _write_video(paths["audio_only"], with_audio=True, with_video=False)
    paths["corrupt"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return paths


def _tone(seconds: float, freq: float = 440.0, amp: float = 0.3, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    return (amp * torch.sin(2 * math.pi * freq * t))[None].repeat(2, 1)


def _click(seconds: float, at_s: float, sr: int = SR) -> torch.Tensor:
    """Silence with a 10 ms 2 kHz burst starting at `at_s`."""
    wave = torch.zeros(1, int(seconds * sr))
    start, n = int(at_s * sr), int(0.01 * sr)
    wave[0, start : start + n] = 0.8 * torch.sin(2 * math.pi * 2000 * torch.arange(n) / sr)
    return wave


def _video_packets(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [
            (bytes(p), p.pts, p.dts, p.is_keyframe)
            for p in container.demux(stream)
            if p.dts is not None
        ]
        return packets, stream.time_base


def _decode_audio(path):
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        chunks = [
            out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)
        ]
        return np.concatenate(chunks, axis=1), rate


def _out(tmp_path, codec="aac", name="out"):
    return tmp_path / f"{name}.{container_extension(codec)}"


@pytest.mark.parametrize("codec", ["aac", "flac", "opus", "pcm"])
def test_video_copied_byte_identical_and_audio_covers_video(media, tmp_path, codec):
    out = _out(tmp_path, codec)
    result = mux_audio(media["silent"], _tone(4.0), SR, out, audio_codec=codec)

    source_packets, source_tb = _video_packets(media["silent"])
    output_packets, output_tb = _video_packets(out)
    assert output_tb == source_tb
    assert len(output_packets) == len(source_packets) == result.n_video_packets == N_FRAMES
    assert any(pts != dts for _, pts, dts, _ in source_packets)  # fixture really has B-frames
    for i, (src, dst) in enumerate(zip(source_packets, output_packets)):
        assert src == dst, f"video packet {i} differs (bytes, pts, dts or keyframe flag)"

    assert result.video_duration_s == pytest.approx(float(VIDEO_DURATION), abs=1e-9)
    expected_rate = 48000 if codec == "opus" else SR
    assert result.sample_rate == expected_rate
    audio, rate = _decode_audio(out)
    assert rate == expected_rate
    frame = FRAME_SIZES[codec]
    assert abs(audio.shape[1] - float(VIDEO_DURATION) * rate) <= frame
    assert abs(result.audio_duration_s - float(VIDEO_DURATION)) <= 1 / rate
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.1
    assert out.suffix == (".mov" if codec == "pcm" else ".mp4")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp file removed


def _onset_s(audio: np.ndarray, rate: int) -> float:
    loud = np.flatnonzero(np.abs(audio).max(axis=0) > 0.2)
    assert loud.size, "click not found in the output"
    return loud[0] / rate


@pytest.mark.parametrize(
    "offset_ms, audio_start_s, codec",
    [(0.0, 0.0, "aac"), (250.0, 0.0, "aac"), (-400.0, 0.0, "aac"), (120.0, 0.5, "opus"),
     (-250.0, 0.0, "pcm")],
)
def test_offset_moves_the_click(media, tmp_path, offset_ms, audio_start_s, codec):
    out = _out(tmp_path, codec)
    result = mux_audio(media["silent"], _click(3.2, 1.0), SR, out, audio_codec=codec,
                       offset_ms=offset_ms, audio_start_s=audio_start_s)
    audio, rate = _decode_audio(out)
    expected = 1.0 + audio_start_s + offset_ms / 1000.0
    # Lossy codecs smear a click a little; 5 ms is far below one codec delay (AAC priming is
    # 1024 samples = 23 ms), so a forgotten priming/pre-skip shift would fail here.
    tolerance = 0.005 if codec in ("aac", "opus") else 1.5 / rate
    assert abs(_onset_s(audio, rate) - expected) <= tolerance
    assert audio.shape[1] == pytest.approx(result.audio_duration_s * rate, abs=FRAME_SIZES[codec])


def test_short_audio_is_padded_long_audio_is_trimmed(media, tmp_path):
    short = mux_audio(media["silent"], _tone(1.0), SR, _out(tmp_path, "pcm", "short"), audio_codec="pcm")
    audio, rate = _decode_audio(short.path)
    assert audio.shape[1] == round(float(VIDEO_DURATION) * rate)
    assert np.abs(audio[:, : int(0.99 * rate)]).max() > 0.25
    assert np.abs(audio[:, int(1.01 * rate):]).max() == 0.0  # padded with silence

    long = mux_audio(media["silent"], _tone(9.0), SR, _out(tmp_path, "pcm", "long"), audio_codec="pcm")
    audio, rate = _decode_audio(long.path)
    assert audio.shape[1] == round(float(VIDEO_DURATION) * rate)
    assert np.abs(audio[:, -100:]).max() > 0.25  # tone runs to the very end, then is cut


def _level_at(audio: np.ndarray, rate: int, freq: float) -> float:
    """Amplitude of a sine at `freq` in the middle second of the first channel."""
    segment = audio[0, rate : 2 * rate]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    return 2 * spectrum[int(round(freq * len(segment) / rate))] / np.hanning(len(segment)).sum()


def test_mix_keeps_original_soundtrack_with_gains(media, tmp_path):
    result = mux_audio(media["with_audio"], _tone(4.0, 440.0, 0.3), SR, _out(tmp_path),
                       mode="mix", original_gain=0.5, new_gain=1.0, audio_codec="aac")
    assert result.mode == "mix"
    audio, rate = _decode_audio(result.path)
    assert _level_at(audio, rate, 1000.0) == pytest.approx(0.5 * 0.4, rel=0.1)
    assert _level_at(audio, rate, 440.0) == pytest.approx(0.3, rel=0.1)
    # The copied video still matches, and the source soundtrack is replaced by one mixed stream.
    assert _video_packets(result.path)[0] == _video_packets(media["with_audio"])[0]


def test_replace_drops_original_soundtrack(media, tmp_path):
    result = mux_audio(media["with_audio"], _tone(4.0, 440.0), SR, _out(tmp_path), mode="replace")
    audio, rate = _decode_audio(result.path)
    assert _level_at(audio, rate, 1000.0) < 0.01
    assert _level_at(audio, rate, 440.0) == pytest.approx(0.3, rel=0.1)


def test_mix_without_original_falls_back_to_replace(media, tmp_path):
    result = mux_audio(media["silent"], _tone(4.0), SR, _out(tmp_path), mode="mix")
    assert result.mode == "replace"
    assert any("no soundtrack" in note for note in result.notes)


def test_loud_mix_is_limited_and_loud_audio_clipped(media, tmp_path):
    loud = _tone(4.0, 440.0, 1.5)
    clipped = mux_audio(media["silent"], loud, SR, _out(tmp_path, "pcm", "clip"), audio_codec="pcm")
    assert any("clipped" in note for note in clipped.notes)
    audio, _ = _decode_audio(clipped.path)
    assert np.abs(audio).max() <= 1.0

    mixed = mux_audio(media["with_audio"], _tone(4.0, 440.0, 0.9), SR, _out(tmp_path, "pcm", "mix"),
                      audio_codec="pcm", mode="mix", original_gain=1.0, new_gain=1.0)
    assert any("limiter" in note for note in mixed.notes)
    audio, _ = _decode_audio(mixed.path)
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0


def test_soft_limit_is_transparent_below_knee_and_bounded():
    x = torch.linspace(-5, 5, 1001)
    y = soft_limit(x)
    assert torch.equal(y[x.abs() <= 0.9], x[x.abs() <= 0.9])
    assert y.abs().max() <= 1.0 and torch.all(torch.diff(y) >= 0)


@pytest.mark.parametrize("bad, fragment", [
    (torch.full((2, 1000), float("nan")), "NaN"),
    (torch.zeros(2, 0), "empty"),
    (torch.zeros(3, 2, 1000), "batch"),
])
def test_bad_audio_raises(media, tmp_path, bad, fragment):
    with pytest.raises(MediaError, match=fragment):
        mux_audio(media["silent"], bad, SR, _out(tmp_path))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("source, fragment", [
    ("missing", "not found"), ("audio_only", "no video stream"), ("corrupt", "Cannot open"),
])
def test_bad_video_raises(media, tmp_path, source, fragment):
    path = media.get(source, tmp_path / "does_not_exist.mp4")
    with pytest.raises(MediaError, match=fragment):
        mux_audio(path, _tone(1.0), SR, _out(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_never_overwritten(media, tmp_path):
    out = _out(tmp_path)
    out.write_bytes(b"precious")
    with pytest.raises(MediaError, match="already exists"):
        mux_audio(media["silent"], _tone(1.0), SR, out)
    assert out.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [out]


def test_empty_placeholder_is_filled(media, tmp_path):
    out = _out(tmp_path)
    out.touch()  # what safe_output_file reserves
    result = mux_audio(media["silent"], _tone(1.0), SR, out)
    assert result.path == out and out.stat().st_size > 1000


def test_wrong_extension_and_options_raise(media, tmp_path):
    with pytest.raises(MediaError, match=r"\.mov"):
        mux_audio(media["silent"], _tone(1.0), SR, tmp_path / "x.mp4", audio_codec="pcm")
    with pytest.raises(MediaError, match="codec"):
        mux_audio(media["silent"], _tone(1.0), SR, tmp_path / "x.mp4", audio_codec="mp3")
    with pytest.raises(MediaError, match="mode"):
        mux_audio(media["silent"], _tone(1.0), SR, tmp_path / "x.mp4", mode="blend")


def test_probe_video_timing_is_end_of_last_frame(media):
    timing = probe_video_timing(media["silent"])
    assert timing.duration_s == VIDEO_DURATION  # exact Fraction, not a rounded float
    assert timing.n_packets == N_FRAMES


def test_bitrate_applies_to_lossy_codecs_only(media, tmp_path):
    low = mux_audio(media["silent"], _tone(4.0), SR, _out(tmp_path, "aac", "low"), bitrate="48k")
    high = mux_audio(media["silent"], _tone(4.0), SR, _out(tmp_path, "aac", "high"), bitrate=256000)
    assert low.path.stat().st_size < high.path.stat().st_size
    flac = mux_audio(media["silent"], _tone(4.0), SR, _out(tmp_path, "flac"), audio_codec="flac",
                     bitrate="192k")
    assert any("bitrate" in note for note in flac.notes)
    for bad in ["fast", -5, "9999999k"]:
        with pytest.raises(MediaError, match="bitrate"):
            mux_audio(media["silent"], _tone(1.0), SR, _out(tmp_path, "aac", "bad"), bitrate=bad)
    with pytest.raises(MediaError, match="offset_ms"):
        mux_audio(media["silent"], _tone(1.0), SR, _out(tmp_path, "aac", "bad"), offset_ms=float("nan"))
