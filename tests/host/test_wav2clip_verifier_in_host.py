"""The wav2clip verifier through the real host: Foley Load Verifier builds it from Wav2CLIP.pt and a
CLIP in models/wav2clip (small random weights in the official key layouts) and GMDS Search scores
its candidates with it; an absent or wrong file is refused with its name and folder."""

import json
from pathlib import Path

import pytest

from foley_core.media.synthetic import write_flash_video
from foley_core.models.wav2clip import CLIP_FILE, WAV2CLIP_FILE
from harness.model_files import use_small_models, write_small_model_set
from harness.wav2clip_files import write_wav2clip_files
from media_files import FLASH_FPS, FLASH_FRAMES, N_FLASH_FRAMES

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
SMALL_CLIP_FILE = "foley_small_clip_512.safetensors"  # not the default name, so the default stays absent
VIDEO = "foley_wav2clip_video.mp4"
SMALL = {"steps": 2, "population": 2, "rounds": 1}  # 2 × (1 + 2·1) = 6 evaluations


@pytest.fixture(scope="module")
def host(comfy_host):
    write_small_model_set(comfy_host.models_dir / "mmaudio")
    write_wav2clip_files(comfy_host.models_dir / "wav2clip", WAV2CLIP_FILE, SMALL_CLIP_FILE)
    write_flash_video(comfy_host.input_dir / VIDEO, fps=FLASH_FPS, n_frames=N_FLASH_FRAMES,
                      flash_frames=FLASH_FRAMES)
    return comfy_host


def wav2clip_prompt(wav2clip_model=WAV2CLIP_FILE, wav2clip_clip=SMALL_CLIP_FILE, seed=5):
    prompt = use_small_models(json.loads((WORKFLOWS / "api" / "gmds_search.json").read_text()))
    prompt["1"]["inputs"]["video"] = VIDEO
    prompt["6"]["inputs"].update(kind="wav2clip", weight=2.0, wav2clip_model=wav2clip_model,
                                 wav2clip_clip=wav2clip_clip)
    prompt["7"]["inputs"].update(SMALL, seed=seed)
    return prompt


def test_object_info_lists_the_kind_and_its_files_after_the_older_inputs(host):
    info = host.object_info()["FoleyLoadVerifier"]["input"]
    assert "wav2clip" in info["required"]["kind"][0]
    optional = list(info["optional"])
    assert optional[-2:] == ["wav2clip_model", "wav2clip_clip"]  # appended: saved widget values keep places
    assert info["optional"]["wav2clip_model"][0][0] == WAV2CLIP_FILE
    assert info["optional"]["wav2clip_clip"][0][0] == CLIP_FILE  # listed even while absent
    assert SMALL_CLIP_FILE in info["optional"]["wav2clip_clip"][0]


def test_gmds_search_with_the_wav2clip_verifier(host):
    result = host.run(wav2clip_prompt(), timeout=900)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    (info,) = result.outputs["6"]["text"]
    assert "wav2clip ×2" in info and "not ViT-B/32-shaped" in info, info  # the small CLIP is reported
    (summary,) = result.outputs["7"]["text"]
    assert "after 6 evaluations" in summary and "wav2clip ×2" in summary, summary
    best = float(summary.split("best score ")[1].split()[0])
    assert -2.0 <= best <= 2.0, summary  # weight 2 × a cosine


@pytest.mark.parametrize("field, name, expected", [
    ("wav2clip_clip", CLIP_FILE, "is not there"),  # listed by default, not installed here
    ("wav2clip_model", SMALL_CLIP_FILE, "is not a Wav2CLIP file"),  # the CLIP picked as Wav2CLIP
    ("wav2clip_clip", WAV2CLIP_FILE, "is not a CLIP file"),  # and the other way round
])
def test_unusable_wav2clip_files_are_named_with_their_folder(host, field, name, expected):
    result = host.run(wav2clip_prompt(**{field: name}), timeout=600)
    assert result.status == "error"
    message = result.error_message
    assert expected in message and name in message, message
    assert "models/wav2clip" in message, message
