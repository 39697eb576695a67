"""Per-clip control targets (training/clip_targets.py): envelopes and layouts are each clip's own
audio as `extract` cut it, stored one row per clip; missing files and clips without audio are named."""

from __future__ import annotations

import wave
from fractions import Fraction

import numpy as np
import pytest

from foley_core.controls.envelope import rms_envelope
from foley_core.errors import FoleyError
from foley_core.media.synthetic import write_flash_video
from foley_core.training.controlnet import extract_envelopes, load_envelopes
from foley_core.training.layout_adapter import load_layouts
from test_layout_adapter import SEQ
from test_layout_adapter_training import write_features


def write_tone(path, start_s: float, hz: float) -> np.ndarray:
    t = np.arange(16000) / 16000
    audio = (0.5 * np.sin(2 * np.pi * hz * t) * (t > start_s)).astype(np.float32)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
        handle.writeframes((audio * 32767).astype(np.int16).tobytes())
    return (audio * 32767).astype(np.int16).astype(np.float32) / 32768  # the file's own samples


def test_envelopes_are_each_clips_own_rms_envelope(tmp_path):
    samples = [write_tone(tmp_path / f"clip_{i}.wav", 0.3 * (i + 1), 400 + 300 * i) for i in range(2)]
    write_features(tmp_path / "features", n=2, sources=[tmp_path / f"clip_{i}.wav" for i in range(2)])
    lines = []
    meta = extract_envelopes(tmp_path / "features", report=lines.append)
    envelopes, stored = load_envelopes(tmp_path / "features")
    assert stored == meta and meta["clips"] == ["clip_0.wav", "clip_1.wav"] and meta["frame_rate"] == 125.0
    assert not (tmp_path / "features" / "envelopes.safetensors.tmp").exists()
    assert lines[-1].startswith("wrote envelopes.safetensors: 2 envelopes of shape")
    for row, audio in zip(envelopes, samples):  # cut/padded to whole latents, as `extract` fed the VAE
        expected = rms_envelope(np.pad(audio, (0, SEQ.samples - audio.size)), 16000).values
        np.testing.assert_allclose(row.numpy(), expected, atol=1e-4)
    assert envelopes[0, :20].max() < 0.05 < envelopes[0, -20:].min()  # silent start, then the tone


def test_missing_targets_name_the_command_and_a_clip_without_audio_is_named(tmp_path):
    write_features(tmp_path / "features", n=1, sources=[tmp_path / "silent_video.mp4"])
    with pytest.raises(FileNotFoundError, match="foley_core.training layouts"):
        load_layouts(tmp_path / "features")
    write_flash_video(tmp_path / "silent_video.mp4", fps=Fraction(25), n_frames=10, flash_frames=[1])
    with pytest.raises(FoleyError, match="silent_video.mp4: no audio stream"):
        extract_envelopes(tmp_path / "features", report=lambda _: None)
