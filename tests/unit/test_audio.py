"""Audio tensor helpers and soundtrack decoding."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch

from foley_core.errors import MediaError
from foley_core.media.audio import (
    decode_audio_stream,
    fit_to_length,
    resample,
    to_channels,
    to_mono,
    validate_waveform,
)

SR = 16000


# --- validate_waveform ---------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 100), (3, 100), (100,)])
def test_validate_returns_batch_channel_time_float32(shape):
    out = validate_waveform(torch.rand(shape, dtype=torch.float64), SR)
    assert out.dim() == 3 and out.shape[-1] == 100 and out.dtype == torch.float32


def test_validate_scales_integer_pcm_and_accepts_numpy():
    pcm = torch.tensor([[-32768, 0, 16384]], dtype=torch.int16)
    assert validate_waveform(pcm, SR)[0, 0].tolist() == [-1.0, 0.0, 0.5]
    assert validate_waveform(np.zeros((2, 10), np.float32), SR).shape == (1, 2, 10)


def test_validate_nan_and_inf_report_counts_and_fix():
    wave = torch.zeros(1, 2, 50)
    wave[0, 0, :3] = float("nan")
    wave[0, 1, 7] = float("inf")
    with pytest.raises(MediaError, match=r"3 NaN and 1 infinite samples out of 100.*float32"):
        validate_waveform(wave, SR)


@pytest.mark.parametrize("wave", [torch.zeros(1, 2, 0), torch.zeros(0), torch.zeros(1, 0, 5)])
def test_validate_empty_raises(wave):
    with pytest.raises(MediaError, match="empty"):
        validate_waveform(wave, SR)


@pytest.mark.parametrize("rate", [0, -44100, 10, 10**9, 44100.5, float("nan"), True, "44100", None])
def test_validate_bad_sample_rate_raises(rate):
    with pytest.raises(MediaError, match="sample rate"):
        validate_waveform(torch.zeros(1, 1, 10), rate)


def test_validate_accepts_integral_float_rate():
    validate_waveform(torch.zeros(1, 1, 10), 44100.0)


@pytest.mark.parametrize("wave, fragment", [
    (torch.zeros(1, 44100, 2), "transpose"),
    (torch.zeros(1, 1, 2, 10), "shape"),
    (torch.zeros(1, 2, 10, dtype=torch.bool), "dtype"),
    (torch.zeros(1, 2, 10, dtype=torch.complex64), "dtype"),
    ([0.0, 0.1], "tensor"),
])
def test_validate_bad_inputs(wave, fragment):
    with pytest.raises(MediaError, match=fragment):
        validate_waveform(wave, SR)


# --- resample / channels / length ----------------------------------------------------------

def _dominant_hz(wave: torch.Tensor, rate: int) -> float:
    spectrum = torch.fft.rfft(wave.flatten()).abs()
    return float(spectrum.argmax()) * rate / wave.numel()


def test_resample_keeps_pitch_and_duration():
    t = torch.arange(SR) / SR
    tone = torch.sin(2 * math.pi * 440 * t)[None]
    up = resample(tone, SR, 48000)
    assert up.shape == (1, 48000)
    assert _dominant_hz(up, 48000) == pytest.approx(440, abs=1)
    assert resample(tone, SR, SR) is tone
    with pytest.raises(MediaError):
        resample(tone, 0, SR)


def test_mono_and_channel_conversion():
    stereo = torch.stack([torch.ones(5), -torch.ones(5) * 3])[None]
    assert to_mono(stereo).shape == (1, 1, 5) and torch.all(to_mono(stereo) == -1)
    mono = torch.arange(4.0)[None]
    assert torch.equal(to_channels(mono, 2), torch.stack([torch.arange(4.0)] * 2))
    six = torch.arange(6.0)[:, None].repeat(1, 3)
    assert to_channels(six, 2)[:, 0].tolist() == [0.0, 1.0]  # front left/right kept
    assert to_channels(stereo, 3)[0, :, 0].tolist() == [1.0, -3.0, 1.0]
    assert to_channels(stereo, 2) is stereo


@pytest.mark.parametrize("offset, expected", [
    (0, [1, 2, 3, 4, 0, 0]),
    (2, [0, 0, 1, 2, 3, 4]),
    (-1, [2, 3, 4, 0, 0, 0]),
    (-9, [0, 0, 0, 0, 0, 0]),
    (9, [0, 0, 0, 0, 0, 0]),
])
def test_fit_to_length_shifts_then_pads_or_trims(offset, expected):
    wave = torch.tensor([[1.0, 2, 3, 4]])
    assert fit_to_length(wave, 6, offset)[0].tolist() == expected
    assert fit_to_length(wave, 2, offset).shape == (1, 2)


# --- decode_audio_stream -------------------------------------------------------------------

def _write_wav(path, rate=22050, seconds=2.0):
    """Stereo 16-bit wav: silence with a click on sample `rate` (t = 1 s), left channel only."""
    samples = np.zeros((2, int(rate * seconds)), np.int16)
    samples[0, rate] = 30000
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        for pos in range(0, samples.shape[1], 1000):
            chunk = np.ascontiguousarray(samples[:, pos:pos + 1000].T.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            frame.sample_rate, frame.pts = rate, pos
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return samples


def test_decode_whole_file_and_window(tmp_path):
    path = tmp_path / "click.wav"
    samples = _write_wav(path)
    wave, rate = decode_audio_stream(path)
    assert rate == 22050 and wave.dtype == torch.float32
    assert wave.shape == samples.shape
    assert int(wave[0].abs().argmax()) == 22050 and float(wave[1].abs().max()) == 0.0

    part, _ = decode_audio_stream(path, start_s=0.8, duration_s=0.5)
    assert part.shape == (2, 11025)
    assert int(part[0].abs().argmax()) == 22050 - 17640  # click stays at t = 1 s

    tail, _ = decode_audio_stream(path, start_s=1.5, duration_s=2.0)
    assert tail.shape == (2, 44100) and float(tail[:, 11025:].abs().max()) == 0.0  # padded


def test_decode_no_audio_returns_none_and_missing_raises(tmp_path):
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    assert decode_audio_stream(path) is None
    with pytest.raises(MediaError, match="not found"):
        decode_audio_stream(tmp_path / "nope.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + bytes(200))
    with pytest.raises(MediaError):
        decode_audio_stream(garbage)
    with pytest.raises(MediaError):
        decode_audio_stream(path, start_s=-1.0)
