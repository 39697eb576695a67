"""GMDS Search through the real host: the shipped workflow runs end to end on small random models,
the same seed gives the same soundtrack, verifiers chain, and a missing CLAP folder is named."""

import json
from pathlib import Path

import numpy as np

from foley_core.media.synthetic import make_tone, write_flash_video
from harness.model_files import use_small_models, write_small_model_set
from media_files import FLASH_FPS, FLASH_FRAMES, N_FLASH_FRAMES, decoded_audio, write_float_wav

import pytest

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
SMALL = {"steps": 2, "population": 2, "rounds": 1}  # 2 × (1 + 2·1) = 6 sampler evaluations


@pytest.fixture(scope="module")
def host(comfy_host):
    write_small_model_set(comfy_host.models_dir / "mmaudio")
    write_flash_video(comfy_host.input_dir / "foley_demo_video.mp4", fps=FLASH_FPS,
                      n_frames=N_FLASH_FRAMES, flash_frames=FLASH_FRAMES)
    write_float_wav(comfy_host.input_dir / "foley_demo_reference.wav", make_tone(44100, 2.0, 220.0), 44100)
    return comfy_host


def small_prompt(seed=42):
    prompt = use_small_models(json.loads((WORKFLOWS / "api" / "gmds_search.json").read_text()))
    prompt["7"]["inputs"].update(SMALL, seed=seed)
    return prompt


def soundtrack(host, result):
    (entry,) = result.outputs["9"]["foley_video"]
    samples, rate, _ = decoded_audio(host.output_dir / entry["subfolder"] / entry["filename"])
    return samples, rate


def test_gmds_workflow_runs_and_the_same_seed_gives_the_same_sound(host):
    first = host.run(small_prompt(42), timeout=900)
    assert first.status == "success", first.error_message + host.log_tail(3000)
    (summary,) = first.outputs["7"]["text"]
    assert "after 6 evaluations" in summary and "motion_onsets" in summary, summary
    assert first.outputs["10"]["images"], "the score plot must be previewed"
    samples, rate = soundtrack(host, first)
    assert abs(samples.shape[1] / rate - N_FLASH_FRAMES / float(FLASH_FPS)) <= 1024 / rate
    assert samples.std() > 1e-4

    other = host.run(small_prompt(7), timeout=900)  # evicts seed 42 from the cache
    assert other.status == "success", other.error_message
    again = host.run(small_prompt(42), timeout=900)
    assert again.status == "success", again.error_message
    assert "7" not in {n for e, d in again.messages if e == "execution_cached" for n in d["nodes"]}
    assert again.outputs["7"]["text"] == first.outputs["7"]["text"]
    assert np.array_equal(soundtrack(host, again)[0], samples)


def test_keep_parent_is_optional_and_reported(host):
    prompt = small_prompt()
    prompt["7"]["inputs"]["keep_parent"] = True
    result = host.run(prompt, timeout=900)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (summary,) = result.outputs["7"]["text"]
    assert summary.startswith("GMDS (keep_parent, elitist): best score") and "after 6 evaluations" in summary, summary


def test_verifiers_chain_with_weights(host):
    prompt = small_prompt()
    prompt["20"] = {"class_type": "FoleyLoadAudio",
                    "inputs": {"audio": "foley_demo_reference.wav", "start_time": 0.0, "duration": 0.0}}
    prompt["21"] = {"class_type": "FoleyLoadVerifier",
                    "inputs": {"kind": "envelope", "weight": 0.5, "clap_model": "none", "text": "",
                               "target_audio": ["20", 0], "previous": ["6", 0]}}
    prompt["7"]["inputs"]["verifier"] = ["21", 0]
    result = host.run(prompt, timeout=900)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (summary,) = result.outputs["7"]["text"]
    assert "motion_onsets ×1 + envelope ×0.5" in summary, summary


def test_missing_clap_model_names_the_folder(host):
    prompt = small_prompt()
    prompt["6"]["inputs"].update(kind="clap", clap_model="none")
    result = host.run(prompt, timeout=600)
    assert result.status == "error"
    message = result.error_message
    assert "CLAP" in message and str(Path("models") / "clap") in message, message
    assert "config.json" in message and "model.safetensors" in message, message


def test_longer_than_one_window_is_refused_with_the_reason(host):
    prompt = small_prompt()
    prompt["7"]["inputs"]["window_seconds"] = 1.5  # the 3.2 s video does not fit a 1.5 s window
    result = host.run(prompt, timeout=600)
    assert result.status == "error"
    assert "one 1.5 s backbone window" in result.error_message, result.error_message


def test_betas_in_the_wrong_order_are_refused(host):
    prompt = small_prompt()
    prompt["7"]["inputs"].update(beta_small=0.9, beta_large=0.5)
    result = host.run(prompt, timeout=600)
    assert result.status == "error"
    assert "beta_large > beta_small" in result.error_message, result.error_message


def test_search_follows_an_envelope_with_the_samplers_guidance(host):
    """Issue #7: the search takes the Flow Sampler's envelope input and steers every candidate with it."""
    prompt = small_prompt()
    prompt["20"] = {"class_type": "FoleyLoadAudio",
                    "inputs": {"audio": "foley_demo_reference.wav", "start_time": 0.0, "duration": 0.0}}
    prompt["21"] = {"class_type": "FoleyRMSPredict", "inputs": {"audio": ["20", 0], "edited_envelope": ""}}
    prompt["7"]["inputs"].update(envelope=["21", 0], control_strength=2.0, control_start=0.0, control_end=0.8)
    result = host.run(prompt, timeout=900)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (summary,) = result.outputs["7"]["text"]
    assert "after 6 evaluations" in summary, summary
    assert "envelope guidance active (strength 2, steps 0-0.8)" in summary, summary
    samples, _ = soundtrack(host, result)
    assert np.isfinite(samples).all() and samples.std() > 1e-5


def test_search_drives_the_embedded_controlnet(host):
    from harness.model_files import NET_CONFIG
    from foley_core.controls.controlnet import save_controlnet
    from test_controlnet_in_host import _controlnet

    save_controlnet(_controlnet(NET_CONFIG, 1), host.models_dir / "foley_controlnet" / "gmds_controlnet.safetensors")
    prompt = small_prompt()
    prompt["20"] = {"class_type": "FoleyRMSPredict", "inputs": {"video": ["1", 0], "edited_envelope": ""}}
    prompt["21"] = {"class_type": "FoleyLoadControlNet",
                    "inputs": {"controlnet": "gmds_controlnet.safetensors", "strength": 1.0,
                               "cfg_mode": "conditional"}}
    prompt["7"]["inputs"].update(envelope=["20", 0], controlnet=["21", 0])
    result = host.run(prompt, timeout=900)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (summary,) = result.outputs["7"]["text"]
    assert "controlnet active:" in summary and "following the envelope" in summary, summary
    assert "guidance active" not in summary, summary  # the ControlNet takes the envelope, not guidance
