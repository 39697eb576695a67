"""Layout predictor through the real host: Foley Load Layout Predictor → Foley Layout Predict from a video."""

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from foley_core.synthetic_foley import make_clip, write_mp4, write_wav
from foley_core.training.small_encoders import small_clip_state_dict

EMBEDDED = Path(__file__).resolve().parents[2] / "embedded_models"
PREDICTOR = EMBEDDED / "foley_embedded_layout_predictor.safetensors"
VIDEO = "foley_layout_predictor_clip.mp4"
AUDIO = "foley_layout_predictor_clip.wav"
DURATION = 4.0


@pytest.fixture(scope="module")
def layout_inputs(comfy_host):
    clip = make_clip(1_000_901, duration_s=DURATION, fps=25, sample_rate=16000, size=128)
    write_mp4(comfy_host.input_dir / VIDEO, clip)
    write_wav(comfy_host.input_dir / AUDIO, clip.audio, 16000)
    folder = comfy_host.models_dir / "foley_layout_predictor"
    shutil.copy(PREDICTOR, folder / "my_predictor.safetensors")
    save_file({"decoder.conv_in.weight": torch.zeros(2)}, str(folder / "not_a_predictor.safetensors"))
    # A CLIP with the embedded one's shapes but other weights: its features mean something else.
    save_file(small_clip_state_dict(7), str(comfy_host.models_dir / "mmaudio" / "other_small_clip.safetensors"))
    return comfy_host


def predict(choice, clip=None, **node):
    loader = {"predictor": choice, **({"clip": clip} if clip else {})}
    return {
        "1": {"class_type": "FoleyLoadVideo", "inputs": {"video": VIDEO, "start_time": 0.0, "max_duration": 0.0}},
        "2": {"class_type": "FoleyLoadLayoutPredictor", "inputs": loader},
        "3": {"class_type": "FoleyLayoutPredict",
              "inputs": {"video": ["1", 0], "predictor": ["2", 0], "bands": 5, "frame_rate": 10.2, **node}},
    }


def test_layout_from_video_with_the_embedded_predictor(layout_inputs):
    host = layout_inputs
    choices = host.object_info()["FoleyLoadLayoutPredictor"]["input"]["required"]["predictor"][0]
    embedded = next(c for c in choices if c.startswith("(embedded) "))
    assert "my_predictor.safetensors" in choices
    result = host.run(predict(embedded), timeout=300)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (entry,) = result.outputs["3"]["foley_layout"]
    assert entry["source"] == ("layout predictor foley_embedded_layout_predictor.safetensors "
                               "(CLIP foley_embedded_clip.safetensors)")
    assert entry["frames"] == round(DURATION * 10.2) and entry["bands"] == 5
    assert result.outputs["3"]["text"][0].startswith("layout from: layout predictor")
    assert len(result.outputs["3"]["images"]) == 1
    assert "TiVA layout predictor" in result.outputs["2"]["text"][0]


def test_encoders_clip_is_used_and_frame_rate_resampled(layout_inputs):
    prompt = predict("my_predictor.safetensors", frame_rate=20.0, encoders=["4", 0])
    prompt["4"] = {"class_type": "FoleyLoadEncoders",
                   "inputs": {"clip": "(embedded) foley_embedded_clip.safetensors",
                              "synchformer": "(embedded) foley_embedded_synchformer.safetensors", "dtype": "fp32"}}
    result = layout_inputs.run(prompt, timeout=300)
    assert result.status == "success", result.error_message + layout_inputs.log_tail(3000)
    (entry,) = result.outputs["3"]["foley_layout"]
    assert entry["source"] == ("layout predictor my_predictor.safetensors "
                               "(CLIP the encoders' CLIP foley_embedded_clip.safetensors)")
    assert entry["frames"] == 80 and entry["frame_rate"] == 20.0


def test_audio_wins_over_the_video(layout_inputs):
    prompt = predict("my_predictor.safetensors", audio=["5", 0])
    prompt["5"] = {"class_type": "FoleyLoadAudio", "inputs": {"audio": AUDIO, "start_time": 0.0, "duration": 0.0}}
    result = layout_inputs.run(prompt, timeout=300)
    assert result.status == "success", result.error_message
    assert result.outputs["3"]["foley_layout"][0]["source"] == "audio"


def test_clear_errors(layout_inputs):
    host = layout_inputs
    result = host.run(predict("not_a_predictor.safetensors"), timeout=300)
    assert result.status == "error" and "not_a_predictor.safetensors is not a Foley layout predictor" in \
        result.error_message
    result = host.run(predict("my_predictor.safetensors", clip="other_small_clip.safetensors"), timeout=300)
    assert result.status == "error"
    assert "trained on CLIP foley_embedded_clip.safetensors" in result.error_message
    assert "retrain the predictor on this CLIP" in result.error_message
    prompt = predict("my_predictor.safetensors")
    del prompt["3"]["inputs"]["predictor"], prompt["2"]
    result = host.run(prompt, timeout=300)
    assert result.status == "error" and "a video alone needs a layout predictor" in result.error_message
    result = host.run(predict("my_predictor.safetensors", bands=3), timeout=300)
    assert result.status == "error" and "set `bands` to 5" in result.error_message
