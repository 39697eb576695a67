"""The synchformer_desync verifier through the real host: Foley Load Verifier builds it from a full
Synchformer file in models/mmaudio (the tiny parity weights, official key names) and GMDS Search
scores its candidates with it; a visual-only or absent file is refused with its name and folder."""

import json
from fractions import Fraction
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from foley_core.media.synthetic import write_flash_video
from harness.model_files import NAMES, use_small_models, write_small_model_set

PARITY = Path(__file__).resolve().parents[1] / "data" / "parity"
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
SYNC_FILE = "foley_tiny_synchformer_full.safetensors"
VIDEO = "foley_desync_video.mp4"
N_FRAMES = 130  # 5.2 s at 25 fps: 15 Synchformer segments, so two distinct 14-segment windows
SMALL = {"steps": 2, "population": 2, "rounds": 1}  # 2 × (1 + 2·1) = 6 evaluations


@pytest.fixture(scope="module")
def host(comfy_host):
    mmaudio = comfy_host.models_dir / "mmaudio"
    write_small_model_set(mmaudio)
    weights = load_file(str(PARITY / "synchformer_sync_tiny.weights.safetensors"))
    heads = json.loads((PARITY / "synchformer_sync_tiny.json").read_text())["config"]
    meta = {"visual_heads": str(heads["visual"]["NUM_HEADS"]),
            "audio_heads": str(heads["audio"]["num_attention_heads"]), "sync_heads": str(heads["sync"]["n_head"])}
    save_file(weights, str(mmaudio / SYNC_FILE), metadata=meta)
    write_flash_video(comfy_host.input_dir / VIDEO, fps=Fraction(25), n_frames=N_FRAMES,
                      flash_frames=(10, 40, 41, 70, 100, 120))
    return comfy_host


def desync_prompt(sync_model=SYNC_FILE, seed=3):
    prompt = use_small_models(json.loads((WORKFLOWS / "api" / "gmds_search.json").read_text()))
    prompt["1"]["inputs"]["video"] = VIDEO
    prompt["6"]["inputs"].update(kind="synchformer_desync", weight=1.0, sync_model=sync_model)
    prompt["7"]["inputs"].update(SMALL, seed=seed)
    return prompt


def test_gmds_search_with_the_desync_verifier(host):
    result = host.run(desync_prompt(), timeout=900)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (summary,) = result.outputs["7"]["text"]
    assert "after 6 evaluations" in summary and "synchformer_desync ×1" in summary, summary
    best = float(summary.split("best score ")[1].split()[0])
    # 1 − DeSync/2 with DeSync a mean of |offsets| on the 0.2-s grid over two windows: a multiple of 0.05
    assert 0.0 <= best <= 1.0 and abs(best * 20 - round(best * 20)) < 1e-3, summary


@pytest.mark.parametrize("name, expected", [
    (NAMES["synchformer"], "only the visual branch"),  # the small visual-only file the encoders use
    ("synchformer_state_dict.pth", "is not there"),  # listed by default, not installed here
])
def test_unusable_sync_file_is_named_with_its_folder(host, name, expected):
    result = host.run(desync_prompt(sync_model=name), timeout=600)
    assert result.status == "error"
    message = result.error_message
    assert expected in message and name in message, message
    assert "synchformer_state_dict.pth" in message and "models/mmaudio" in message, message
