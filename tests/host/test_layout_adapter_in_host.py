"""TiVA layout adapter through the real host: Foley Load Layout Adapter (models/foley_layout_adapters)
+ Foley Layout Predict → the Flow Sampler's layout_adapter / layout inputs, in the shipped
reference_foley workflow (reference style + windowed sampling)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.controls.layout_adapter import LayoutAdapter, LayoutAdapterConfig, save_layout_adapter
from foley_core.media.synthetic import make_tone, write_flash_video
from harness.model_files import NET_CONFIG, use_small_models, write_small_model_set
from media_files import FLASH_FPS, FLASH_FRAMES, N_FLASH_FRAMES, write_float_wav
from prompt_edits import node_of, plug, soundtrack

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
ADAPTER_NODE, LAYOUT_NODE = "93", "94"


def _adapter(width: int, seed: int | None) -> LayoutAdapter:
    adapter = LayoutAdapter(LayoutAdapterConfig(width=width, latent_dim=NET_CONFIG.latent_dim, hidden=16,
                                                backbone={"file": "foley_small_random_44k.pth", "mode": "44k"}))
    if seed is not None:  # "trained": non-zero output layer
        torch.manual_seed(seed)
        torch.nn.init.normal_(adapter.proj.weight, std=2.0)
    return adapter


@pytest.fixture(scope="module")
def layout_host(comfy_host):
    write_small_model_set(comfy_host.models_dir / "mmaudio")
    write_flash_video(comfy_host.input_dir / "foley_demo_video.mp4", fps=FLASH_FPS,
                      n_frames=N_FLASH_FRAMES, flash_frames=FLASH_FRAMES)
    write_float_wav(comfy_host.input_dir / "foley_demo_reference.wav", make_tone(44100, 2.0, 220.0), 44100)
    folder = comfy_host.models_dir / "foley_layout_adapters"
    save_layout_adapter(_adapter(NET_CONFIG.hidden_dim, None), folder / "zero_layout.safetensors")
    save_layout_adapter(_adapter(NET_CONFIG.hidden_dim, 1), folder / "trained_layout.safetensors")
    save_layout_adapter(_adapter(2 * NET_CONFIG.hidden_dim, 1), folder / "wide_layout.safetensors")
    save_file({"audio_input_proj.0.weight": torch.zeros(2, 2)}, str(folder / "not_a_layout_adapter.safetensors"))
    return comfy_host


def reference_prompt(adapter_file: str | None, *, layout: bool = True, bands: int = 5) -> dict:
    prompt = use_small_models(json.loads((WORKFLOWS / "api" / "reference_foley.json").read_text()))
    sampler = node_of(prompt, "FoleyFlowSampler")
    audio = node_of(prompt, "FoleyLoadAudio")
    if adapter_file is not None:
        plug(prompt, sampler, "layout_adapter", ADAPTER_NODE, "FoleyLoadLayoutAdapter",
             {"layout_adapter": adapter_file, "strength": 1.0})
    if layout:
        plug(prompt, sampler, "layout", LAYOUT_NODE, "FoleyLayoutPredict",
             {"audio": [audio, 0], "bands": bands, "frame_rate": 10.2})
    return prompt


def test_layout_adapter_node_is_registered(layout_host):
    info = layout_host.object_info()
    assert info["FoleyLoadLayoutAdapter"]["output"] == ["FOLEY_LAYOUT_ADAPTER"]
    files = info["FoleyLoadLayoutAdapter"]["input"]["required"]["layout_adapter"][0]
    assert {"zero_layout.safetensors", "trained_layout.safetensors"} <= set(files)
    for node in ("FoleyFlowSampler", "FoleyGMDSSearch"):
        assert "layout_adapter" in info[node]["input"]["optional"]


def test_zero_adapter_is_identical_and_trained_adapter_changes_the_sound(layout_host):
    plain = soundtrack(layout_host, reference_prompt(None, layout=False))
    zero = soundtrack(layout_host, reference_prompt("zero_layout.safetensors"))
    assert np.array_equal(plain, zero), "a zero-initialised layout adapter must leave the output unchanged"
    steered = soundtrack(layout_host, reference_prompt("trained_layout.safetensors"))
    assert not np.array_equal(plain, steered)
    assert "layout_adapter active: trained_layout.safetensors" in layout_host.log_tail(20000)


@pytest.mark.parametrize("file_name, options, expected", [
    ("wide_layout.safetensors", {}, "width 128"),
    ("not_a_layout_adapter.safetensors", {}, "is not a Foley layout adapter"),
    ("missing_layout.safetensors", {}, "models/foley_layout_adapters"),
    ("trained_layout.safetensors", {"layout": False}, "needs a layout"),
    ("trained_layout.safetensors", {"bands": 3}, "set Foley Layout Predict's bands to 5"),
])
def test_bad_adapters_and_layouts_are_reported(layout_host, file_name, options, expected):
    result = layout_host.run(reference_prompt(file_name, **options), timeout=600)
    assert result.status == "error"
    assert expected in result.error_message, result.error_message


def test_embedded_adapter_runs_with_the_embedded_set_and_its_controlnet(layout_host):
    """The shipped adapter (embedded fallback) in the embedded synced workflow, together with the ControlNet."""
    embedded = "(embedded) foley_embedded_layout_adapter_16k.safetensors"
    files = layout_host.object_info()["FoleyLoadLayoutAdapter"]["input"]["required"]["layout_adapter"][0]
    assert embedded in files
    prompt = json.loads((WORKFLOWS / "api" / "embedded_synced_foley.json").read_text())
    sampler = node_of(prompt, "FoleyFlowSampler")
    prompt["95"] = {"class_type": "FoleyLoadAudio",
                    "inputs": {"audio": "foley_demo_reference.wav", "start_time": 0.0, "duration": 0.0}}
    prompt[LAYOUT_NODE] = {"class_type": "FoleyLayoutPredict", "inputs": {"audio": ["95", 0], "bands": 5,
                                                                         "frame_rate": 10.2}}
    prompt[ADAPTER_NODE] = {"class_type": "FoleyLoadLayoutAdapter", "inputs": {"layout_adapter": embedded}}
    prompt[sampler]["inputs"].update({"layout": [LAYOUT_NODE, 0], "layout_adapter": [ADAPTER_NODE, 0], "steps": 8})
    samples = soundtrack(layout_host, prompt)
    assert np.isfinite(samples).all() and samples.std() > 1e-5
    log = layout_host.log_tail(20000)
    assert "layout_adapter active: foley_embedded_layout_adapter_16k.safetensors" in log
    assert "controlnet active" in log
