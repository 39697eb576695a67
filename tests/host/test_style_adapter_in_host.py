"""Style adapters through the real host: Foley Load Adapter (models/foley_adapters) → the Flow
Sampler's adapter input, in the shipped reference_foley workflow."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.media.synthetic import make_tone, write_flash_video
from foley_core.models.style_adapter import StyleAdapter, StyleAdapterConfig, save_adapter
from harness.model_files import NET_CONFIG, use_small_models, write_small_model_set
from media_files import FLASH_FPS, FLASH_FRAMES, N_FLASH_FRAMES, write_float_wav
from prompt_edits import node_of, plug, soundtrack, with_models_not_installed

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
ADAPTER_NODE = "90"


def _adapter(width: int, seed: int | None) -> StyleAdapter:
    adapter = StyleAdapter(StyleAdapterConfig(width=width, hidden_dim=16, acoustic_dim=NET_CONFIG.latent_dim,
                                              backbone={"file": "foley_small_random_44k.pth"}))
    if seed is not None:  # "trained": a non-zero output layer
        torch.manual_seed(seed)
        torch.nn.init.normal_(adapter.out.weight, std=2.0)
    return adapter


@pytest.fixture(scope="module")
def adapter_host(comfy_host):
    write_small_model_set(comfy_host.models_dir / "mmaudio")
    write_flash_video(comfy_host.input_dir / "foley_demo_video.mp4", fps=FLASH_FPS,
                      n_frames=N_FLASH_FRAMES, flash_frames=FLASH_FRAMES)
    write_float_wav(comfy_host.input_dir / "foley_demo_reference.wav", make_tone(44100, 2.0, 220.0), 44100)
    folder = comfy_host.models_dir / "foley_adapters"
    save_adapter(_adapter(NET_CONFIG.hidden_dim, None), folder / "zero_adapter.safetensors")
    save_adapter(_adapter(NET_CONFIG.hidden_dim, 1), folder / "trained_adapter.safetensors")
    save_adapter(_adapter(2 * NET_CONFIG.hidden_dim, 1), folder / "wide_adapter.safetensors")
    save_file({"audio_input_proj.0.weight": torch.zeros(2, 2)}, str(folder / "not_an_adapter.safetensors"))
    return comfy_host


def reference_prompt(adapter_file: str | None) -> dict:
    prompt = use_small_models(json.loads((WORKFLOWS / "api" / "reference_foley.json").read_text()))
    sampler = node_of(prompt, "FoleyFlowSampler")
    if adapter_file is not None:
        plug(prompt, sampler, "adapter", ADAPTER_NODE, "FoleyLoadAdapter", {"adapter": adapter_file})
    return prompt


def test_adapter_node_is_registered(adapter_host):
    info = adapter_host.object_info()
    assert info["FoleyLoadAdapter"]["output"] == ["FOLEY_ADAPTER"]
    files = info["FoleyLoadAdapter"]["input"]["required"]["adapter"][0]
    assert {"zero_adapter.safetensors", "trained_adapter.safetensors"} <= set(files)
    assert "adapter" in info["FoleyFlowSampler"]["input"]["optional"]


def test_zero_adapter_is_identical_and_trained_adapter_steers(adapter_host):
    plain = soundtrack(adapter_host, reference_prompt(None))
    zero = soundtrack(adapter_host, reference_prompt("zero_adapter.safetensors"))
    assert np.array_equal(plain, zero), "a zero-initialised adapter must leave the output unchanged"
    steered = soundtrack(adapter_host, reference_prompt("trained_adapter.safetensors"))
    assert not np.array_equal(plain, steered)


@pytest.mark.parametrize("file_name, expected", [
    ("wide_adapter.safetensors", "width 128"),
    ("not_an_adapter.safetensors", "is not a Foley style adapter"),
    ("missing_adapter.safetensors", "models/foley_adapters"),
])
def test_bad_adapters_are_reported(adapter_host, file_name, expected):
    result = adapter_host.run(reference_prompt(file_name), timeout=600)
    assert result.status == "error"
    assert expected in result.error_message and file_name in result.error_message, result.error_message


def test_embedded_adapter_runs_with_the_embedded_network(adapter_host):
    """Official names that are not installed fall back to the embedded 16 kHz set; the embedded
    adapter was trained against that network and is offered as "(embedded) …"."""
    info = adapter_host.object_info()
    (embedded_adapter,) = [n for n in info["FoleyLoadAdapter"]["input"]["required"]["adapter"][0]
                           if n.startswith("(embedded) ")]
    prompt = with_models_not_installed(json.loads((WORKFLOWS / "api" / "reference_foley.json").read_text()))
    sampler = node_of(prompt, "FoleyFlowSampler")
    encode = node_of(prompt, "FoleyStyleEncode")
    prompt[encode]["inputs"]["prompt_seconds"] = 1.0  # the embedded network's window is 4 s
    plug(prompt, sampler, "adapter", ADAPTER_NODE, "FoleyLoadAdapter", {"adapter": embedded_adapter})
    samples = soundtrack(adapter_host, prompt)
    assert samples.std() > 1e-4
