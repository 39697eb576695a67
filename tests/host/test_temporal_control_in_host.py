"""Temporal control through the real host: RMS Predict from audio and from a video, Layout Predict,
and a sampler guided by both (small random weights in the official formats)."""

import json

import numpy as np
import pytest

from foley_core.media.synthetic import write_flash_video
from harness.model_files import use_small_models, write_small_model_set
from media_files import FLASH_FPS, FLASH_FRAMES, N_FLASH_FRAMES, decoded_audio, write_float_wav

from test_workflows import api_twin, mp4_entry

SR = 16000
AUDIO_S = 2.0
BURST = (0.5, 0.8)  # seconds: the loud part of the test recording


@pytest.fixture(scope="module")
def control_inputs(comfy_host):
    write_small_model_set(comfy_host.models_dir / "mmaudio")
    write_flash_video(comfy_host.input_dir / "foley_control_video.mp4", fps=FLASH_FPS,
                      n_frames=N_FLASH_FRAMES, flash_frames=FLASH_FRAMES)
    t = np.arange(int(AUDIO_S * SR)) / SR
    audio = 0.02 * np.sin(2 * np.pi * 440 * t)
    loud = (t >= BURST[0]) & (t < BURST[1])
    audio[loud] = 0.8 * np.sin(2 * np.pi * 440 * t[loud])
    write_float_wav(comfy_host.input_dir / "foley_control_audio.wav", audio.astype(np.float32), SR)
    return comfy_host


def rms_from_audio(edited=""):
    return {
        "1": {"class_type": "FoleyLoadAudio",
              "inputs": {"audio": "foley_control_audio.wav", "start_time": 0.0, "duration": 0.0}},
        "2": {"class_type": "FoleyRMSPredict", "inputs": {"audio": ["1", 0], "edited_envelope": edited}},
    }


def test_rms_predict_from_audio(control_inputs):
    host = control_inputs
    result = host.run(rms_from_audio(), timeout=300)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (entry,) = result.outputs["2"]["foley_envelope"]
    assert entry["frame_rate"] == 125.0 and entry["edited"] is False
    assert entry["duration_s"] == pytest.approx(AUDIO_S, abs=0.01)
    values = np.array(entry["values"])
    assert len(values) <= 400
    times = np.arange(len(values)) * entry["duration_s"] / len(values)
    loud = (times > BURST[0] + 0.1) & (times < BURST[1] - 0.1)
    assert values[loud].min() > 0.5 > values[times > BURST[1] + 0.2].max()
    (image,) = result.outputs["2"]["images"]
    assert image["type"] == "temp" and host.view(image["filename"], image["subfolder"], "temp")[:4] == b"\x89PNG"


def test_rms_predict_applies_an_edit_and_rejects_a_malformed_one(control_inputs):
    host = control_inputs
    edit = json.dumps({"version": 1, "mode": "replace", "points": [[0.0, 0.25], [2.0, 0.25]]})
    result = host.run(rms_from_audio(edit), timeout=300)
    assert result.status == "success", result.error_message
    (entry,) = result.outputs["2"]["foley_envelope"]
    assert entry["edited"] is True and np.allclose(entry["values"], 0.25, atol=1e-4)
    bad = host.run(rms_from_audio("{oops"), timeout=300)
    assert bad.status == "error" and "not valid JSON" in bad.error_message, bad.error_message


def test_rms_predict_from_video_uses_motion_energy(control_inputs):
    host = control_inputs
    prompt = {
        "1": {"class_type": "FoleyLoadVideo",
              "inputs": {"video": "foley_control_video.mp4", "start_time": 0.0, "max_duration": 0.0, "fps": 0.0}},
        "2": {"class_type": "FoleyRMSPredict", "inputs": {"video": ["1", 0], "edited_envelope": ""}},
    }
    result = host.run(prompt, timeout=300)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (entry,) = result.outputs["2"]["foley_envelope"]
    assert entry["duration_s"] == pytest.approx(N_FLASH_FRAMES / float(FLASH_FPS), abs=0.02)
    values = np.array(entry["values"])
    times = np.arange(len(values)) * entry["duration_s"] / len(values)
    assert values.max() > 0.05  # the estimate peaks at LEVEL (0.25) before smoothing
    # The strongest motion sits within 0.15 s of a flash.
    flashes = np.array(FLASH_FRAMES) / float(FLASH_FPS)
    assert np.min(np.abs(flashes - times[int(np.argmax(values))])) < 0.15


def test_guided_sampler_runs_end_to_end(control_inputs):
    """video_to_audio with the sampler steered by the video's envelope and the recording's layout."""
    host = control_inputs
    prompt = use_small_models(api_twin("video_to_audio"))
    prompt["1"]["inputs"]["video"] = "foley_control_video.mp4"
    prompt["20"] = {"class_type": "FoleyRMSPredict", "inputs": {"video": ["1", 0], "edited_envelope": ""}}
    prompt["21"] = {"class_type": "FoleyLoadAudio",
                    "inputs": {"audio": "foley_control_audio.wav", "start_time": 0.0, "duration": 0.0}}
    prompt["22"] = {"class_type": "FoleyLayoutPredict", "inputs": {"audio": ["21", 0], "bands": 5, "frame_rate": 10.2}}
    sampler = prompt["6"]["inputs"]
    sampler.update({"envelope": ["20", 0], "layout": ["22", 0], "control_strength": 2.0,
                    "control_start": 0.0, "control_end": 1.0, "steps": 4})
    result = host.run(prompt, timeout=600)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (layout,) = result.outputs["22"]["foley_layout"]
    assert layout["bands"] == 5 and layout["frames"] == round(AUDIO_S * 10.2)
    mux_id = next(k for k, v in prompt.items() if v["class_type"] == "FoleyMux")
    samples, rate, _ = decoded_audio(mp4_entry(host, result, mux_id))
    assert samples.shape[1] / rate == pytest.approx(N_FLASH_FRAMES / float(FLASH_FPS), abs=0.05)
    assert np.isfinite(samples).all() and samples.std() > 1e-5
