"""Envelope ControlNet through the real host: Foley Load ControlNet (models/foley_controlnet) → the Flow
Sampler's controlnet input, fed by RMS Predict's envelope (small random weights in the official formats)."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.controls.controlnet import ControlNetConfig, EnvelopeControlNet, save_controlnet
from foley_core.media.synthetic import write_flash_video
from harness.model_files import NET_CONFIG, use_small_models, write_small_model_set
from media_files import FLASH_FPS, FLASH_FRAMES, N_FLASH_FRAMES
from prompt_edits import node_of, plug, soundtrack

from test_workflows import api_twin

CONTROLNET_NODE = "30"


def _controlnet(config, seed=None) -> EnvelopeControlNet:
    cn = EnvelopeControlNet(ControlNetConfig.for_backbone(config, {"file": "foley_small_random_44k.pth",
                                                                   "mode": "44k"}))
    if seed is not None:  # "trained": non-zero input/output layers
        torch.manual_seed(seed)
        with torch.no_grad():
            for layer in (cn.input_proj, *cn.output_projs):
                layer.weight.normal_(0.0, 0.5)
    return cn


@pytest.fixture(scope="module")
def controlnet_host(comfy_host):
    write_small_model_set(comfy_host.models_dir / "mmaudio")
    write_flash_video(comfy_host.input_dir / "foley_cn_video.mp4", fps=FLASH_FPS, n_frames=N_FLASH_FRAMES,
                      flash_frames=FLASH_FRAMES)
    folder = comfy_host.models_dir / "foley_controlnet"
    save_controlnet(_controlnet(NET_CONFIG), folder / "zero_controlnet.safetensors")
    save_controlnet(_controlnet(NET_CONFIG, 1), folder / "trained_controlnet.safetensors")
    wide = NET_CONFIG.__class__(**{**NET_CONFIG.architecture(), "hidden_dim": 128, "num_heads": 2})
    save_controlnet(_controlnet(wide, 1), folder / "wide_controlnet.safetensors")
    save_file({"x": torch.zeros(2)}, str(folder / "not_a_controlnet.safetensors"))
    return comfy_host


def envelope_prompt(controlnet_file=None, strength=1.0) -> dict:
    prompt = use_small_models(api_twin("envelope_control"))
    prompt["1"]["inputs"]["video"] = "foley_cn_video.mp4"
    sampler = node_of(prompt, "FoleyFlowSampler")
    prompt[sampler]["inputs"]["steps"] = 4
    if controlnet_file is None:
        prompt[sampler]["inputs"]["control_strength"] = 0.0  # the envelope connected but guidance off
    else:
        plug(prompt, sampler, "controlnet", CONTROLNET_NODE, "FoleyLoadControlNet",
             {"controlnet": controlnet_file, "strength": strength, "cfg_mode": "conditional"})
    return prompt


def test_controlnet_node_is_registered(controlnet_host):
    info = controlnet_host.object_info()
    assert info["FoleyLoadControlNet"]["output"] == ["FOLEY_CONTROLNET"]
    files = info["FoleyLoadControlNet"]["input"]["required"]["controlnet"][0]
    assert {"zero_controlnet.safetensors", "trained_controlnet.safetensors"} <= set(files)
    assert any(f.startswith("(embedded) ") for f in files), "the embedded ControlNet is offered"
    assert "controlnet" in info["FoleyFlowSampler"]["input"]["optional"]


def test_zero_controlnet_is_identical_and_trained_controlnet_steers(controlnet_host):
    plain = soundtrack(controlnet_host, envelope_prompt(None))
    zero = soundtrack(controlnet_host, envelope_prompt("zero_controlnet.safetensors"))
    assert np.array_equal(plain, zero), "a zero-initialised ControlNet must leave the output unchanged"
    steered = soundtrack(controlnet_host, envelope_prompt("trained_controlnet.safetensors"))
    assert not np.array_equal(plain, steered) and np.isfinite(steered).all()
    off = soundtrack(controlnet_host, envelope_prompt("trained_controlnet.safetensors", strength=0.0))
    assert np.array_equal(plain, off)


def test_controlnet_without_envelope_is_reported(controlnet_host):
    prompt = envelope_prompt("trained_controlnet.safetensors")
    sampler = node_of(prompt, "FoleyFlowSampler")
    del prompt[sampler]["inputs"]["envelope"]
    result = controlnet_host.run(prompt, timeout=600)
    assert result.status == "error" and "needs an envelope" in result.error_message, result.error_message


@pytest.mark.parametrize("file_name, expected", [
    ("wide_controlnet.safetensors", "hidden_dim 128 vs 64"),
    ("not_a_controlnet.safetensors", "is not a Foley envelope ControlNet"),
    ("missing_controlnet.safetensors", "models/foley_controlnet"),
])
def test_bad_controlnets_are_reported(controlnet_host, file_name, expected):
    result = controlnet_host.run(envelope_prompt(file_name), timeout=600)
    assert result.status == "error"
    assert expected in result.error_message and file_name in result.error_message, result.error_message
