"""RMS-Mapper through the real host: Foley Load RMS-Mapper → Foley RMS Predict from a video."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

from foley_core.controls.envelope import rms_envelope
from foley_core.synthetic_foley import make_clip, write_mp4

EMBEDDED_MAPPER = Path(__file__).resolve().parents[2] / "embedded_models" / "foley_embedded_rms_mapper.safetensors"

VIDEO = "foley_mapper_clip.mp4"
DURATION = 4.0


@pytest.fixture(scope="module")
def mapper_inputs(comfy_host):
    clip = make_clip(1_000_900, duration_s=DURATION, fps=25, sample_rate=16000, size=128)
    write_mp4(comfy_host.input_dir / VIDEO, clip)
    folder = comfy_host.models_dir / "foley_rms_mapper"
    shutil.copy(EMBEDDED_MAPPER, folder / "my_mapper.safetensors")
    import torch

    save_file({"decoder.conv_in.weight": torch.zeros(2)}, str(folder / "not_a_mapper.safetensors"))
    comfy_host.truth = rms_envelope(clip.audio, 16000)
    return comfy_host


def predict(mapper_choice, **loader):
    return {
        "1": {"class_type": "FoleyLoadVideo", "inputs": {"video": VIDEO, "start_time": 0.0, "max_duration": 0.0}},
        "2": {"class_type": "FoleyLoadRMSMapper", "inputs": {"mapper": mapper_choice, **loader}},
        "3": {"class_type": "FoleyRMSPredict", "inputs": {"video": ["1", 0], "mapper": ["2", 0], "edited_envelope": ""}},
    }


def test_rms_predict_from_video_with_the_embedded_mapper(mapper_inputs):
    host = mapper_inputs
    info = host.object_info()["FoleyLoadRMSMapper"]["input"]
    choices = info["required"]["mapper"][0]
    embedded = next(c for c in choices if c.startswith("(embedded) "))
    assert "(motion energy estimate)" in choices and "my_mapper.safetensors" in choices
    result = host.run(predict(embedded), timeout=300)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (entry,) = result.outputs["3"]["foley_envelope"]
    assert entry["source"].startswith("RMS-Mapper foley_embedded_rms_mapper.safetensors (block flow)")
    assert result.outputs["3"]["text"][0].startswith("envelope from: RMS-Mapper")
    assert entry["frame_rate"] == 125.0 and entry["duration_s"] == pytest.approx(DURATION, abs=0.02)
    values = np.array(entry["values"])
    assert np.all((values >= 0) & (values <= 1)) and values.max() > 0.02
    truth = np.interp(np.arange(len(values)) * len(host.truth.values) / len(values),
                      np.arange(len(host.truth.values)), host.truth.values)
    assert np.corrcoef(values, truth)[0, 1] > 0.2  # it follows this held-out clip's soundtrack
    assert "RMS-Mapper" in result.outputs["2"]["text"][0]


def test_motion_energy_choice_and_installed_file(mapper_inputs):
    host = mapper_inputs
    result = host.run(predict("(motion energy estimate)"), timeout=300)
    assert result.status == "success", result.error_message
    assert result.outputs["3"]["foley_envelope"][0]["source"] == "motion energy estimate"
    result = host.run(predict("my_mapper.safetensors"), timeout=300)
    assert result.status == "success", result.error_message
    assert result.outputs["3"]["foley_envelope"][0]["source"].startswith("RMS-Mapper my_mapper.safetensors")


def test_wrong_file_in_the_mapper_slot_is_a_clear_error(mapper_inputs):
    result = mapper_inputs.run(predict("not_a_mapper.safetensors"), timeout=300)
    assert result.status == "error"
    assert "not_a_mapper.safetensors is not a Foley RMS-Mapper" in result.error_message
    assert "VAE" in result.error_message


def test_a_mapper_file_that_is_not_installed_falls_back_to_the_embedded_one(mapper_inputs):
    result = mapper_inputs.run(predict("someone_elses_mapper.safetensors"), timeout=300)
    assert result.status == "success", result.error_message
    source = result.outputs["3"]["foley_envelope"][0]["source"]
    assert source.startswith("RMS-Mapper foley_embedded_rms_mapper.safetensors")
    assert "'someone_elses_mapper.safetensors' is not installed" in source
