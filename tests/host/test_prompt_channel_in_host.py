"""AudioIM's prompt channel through the real host: Foley Load Prompt Channel
(models/foley_prompt_channels) → the Flow Sampler's prompt_channel input, in the shipped
reference_foley workflow."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.media.synthetic import make_tone, write_flash_video
from foley_core.models.prompt_channel import PromptChannel, PromptChannelConfig, save_channel
from harness.model_files import NET_CONFIG, use_small_models, write_small_model_set
from media_files import FLASH_FPS, FLASH_FRAMES, N_FLASH_FRAMES, write_float_wav
from prompt_edits import node_of, plug, soundtrack, with_models_not_installed

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
CHANNEL_NODE = "91"


def _channel(width: int, seed: int | None) -> PromptChannel:
    channel = PromptChannel(PromptChannelConfig(width=width, latent_dim=NET_CONFIG.latent_dim,
                                                backbone={"file": "foley_small_random_44k.pth"}))
    if seed is not None:  # "trained": non-zero weights
        torch.manual_seed(seed)
        torch.nn.init.normal_(channel.proj.weight, std=2.0)
    return channel


@pytest.fixture(scope="module")
def channel_host(comfy_host):
    write_small_model_set(comfy_host.models_dir / "mmaudio")
    write_flash_video(comfy_host.input_dir / "foley_demo_video.mp4", fps=FLASH_FPS,
                      n_frames=N_FLASH_FRAMES, flash_frames=FLASH_FRAMES)
    write_float_wav(comfy_host.input_dir / "foley_demo_reference.wav", make_tone(44100, 2.0, 220.0), 44100)
    folder = comfy_host.models_dir / "foley_prompt_channels"
    save_channel(_channel(NET_CONFIG.hidden_dim, None), folder / "zero_channel.safetensors")
    save_channel(_channel(NET_CONFIG.hidden_dim, 1), folder / "trained_channel.safetensors")
    save_channel(_channel(2 * NET_CONFIG.hidden_dim, 1), folder / "wide_channel.safetensors")
    save_file({"audio_input_proj.0.weight": torch.zeros(2, 2)}, str(folder / "not_a_channel.safetensors"))
    return comfy_host


def reference_prompt(channel_file: str | None, mode: str = "channel+replacement") -> dict:
    prompt = use_small_models(json.loads((WORKFLOWS / "api" / "reference_foley.json").read_text()))
    sampler = node_of(prompt, "FoleyFlowSampler")
    if channel_file is not None:
        plug(prompt, sampler, "prompt_channel", CHANNEL_NODE, "FoleyLoadPromptChannel",
             {"prompt_channel": channel_file, "mode": mode})
    return prompt


def test_prompt_channel_node_is_registered(channel_host):
    info = channel_host.object_info()
    assert info["FoleyLoadPromptChannel"]["output"] == ["FOLEY_PROMPT_CHANNEL"]
    files = info["FoleyLoadPromptChannel"]["input"]["required"]["prompt_channel"][0]
    assert {"zero_channel.safetensors", "trained_channel.safetensors"} <= set(files)
    assert "prompt_channel" in info["FoleyFlowSampler"]["input"]["optional"]


def test_zero_channel_is_identical_and_trained_channel_changes_the_sound(channel_host):
    plain = soundtrack(channel_host, reference_prompt(None))
    zero = soundtrack(channel_host, reference_prompt("zero_channel.safetensors"))
    assert np.array_equal(plain, zero), "a zero-initialised prompt channel must leave the output unchanged"
    steered = soundtrack(channel_host, reference_prompt("trained_channel.safetensors", "channel only"))
    assert not np.array_equal(plain, steered)


@pytest.mark.parametrize("file_name, expected", [
    ("wide_channel.safetensors", "width 128"),
    ("not_a_channel.safetensors", "is not a Foley prompt channel"),
    ("missing_channel.safetensors", "models/foley_prompt_channels"),
])
def test_bad_channels_are_reported(channel_host, file_name, expected):
    result = channel_host.run(reference_prompt(file_name), timeout=600)
    assert result.status == "error"
    assert expected in result.error_message and file_name in result.error_message, result.error_message


def test_embedded_channel_runs_with_the_embedded_network(channel_host):
    """The embedded channel (trained against the embedded 16 kHz network) is offered as
    "(embedded) …"; with the official names not installed the embedded set runs it, and it changes
    the sound (a trained, non-zero channel)."""
    info = channel_host.object_info()
    (embedded_channel,) = [n for n in info["FoleyLoadPromptChannel"]["input"]["required"]["prompt_channel"][0]
                           if n.startswith("(embedded) ")]
    prompt = with_models_not_installed(json.loads((WORKFLOWS / "api" / "reference_foley.json").read_text()))
    encode = node_of(prompt, "FoleyStyleEncode")
    prompt[encode]["inputs"]["prompt_seconds"] = 1.5  # the embedded network's window is 4 s
    sampler = node_of(prompt, "FoleyFlowSampler")
    plain = soundtrack(channel_host, prompt)
    plug(prompt, sampler, "prompt_channel", CHANNEL_NODE, "FoleyLoadPromptChannel", {"prompt_channel": embedded_channel})
    steered = soundtrack(channel_host, prompt)
    assert steered.std() > 1e-4 and steered.shape == plain.shape
    assert not np.array_equal(plain, steered)
