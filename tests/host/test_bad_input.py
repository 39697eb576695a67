"""Bad input gets an error in /history that names the problem; the host keeps serving."""

from fractions import Fraction

import av
import numpy as np
import pytest

from foley_core.media.synthetic import make_tone, write_flash_video
from media_files import write_float_wav


def load_video(name, start=0.0, max_duration=0.0):
    return {"class_type": "FoleyLoadVideo",
            "inputs": {"video": name, "start_time": start, "max_duration": max_duration}}


def inspect(node="1"):
    return {"class_type": "FoleyInspectVideo", "inputs": {"video": [node, 0], "stream": "preview"}}


def mux_prompt(audio_name, video_name, prefix="foley/bad"):
    return {
        "1": load_video(video_name),
        "2": {"class_type": "FoleyLoadAudio",
              "inputs": {"audio": audio_name, "start_time": 0.0, "duration": 0.0}},
        "3": {"class_type": "FoleyMux",
              "inputs": {"audio": ["2", 0], "video": ["1", 0], "filename_prefix": prefix,
                         "audio_codec": "aac", "mode": "replace", "offset_ms": 0.0,
                         "original_gain": 1.0, "new_gain": 1.0}},
    }


def write_empty_video_stream(path):
    """An mp4 whose video stream holds no frames at all."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    return str(path)


@pytest.fixture(scope="module")
def bad_files(comfy_host):
    d = comfy_host.input_dir
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    write_float_wav(d / "tone_only.wav", make_tone(16000, 1.0))
    write_empty_video_stream(d / "no_frames.mp4")
    write_flash_video(d / "short.mp4", fps=Fraction(25), n_frames=25, flash_frames=(3,))
    write_flash_video(d / "too_wide.mp4", fps=Fraction(25), n_frames=2, size=(8200, 16))
    nan = make_tone(16000, 1.0)
    nan[100:110] = np.nan
    write_float_wav(d / "nan.wav", nan)
    write_float_wav(d / "empty.wav", np.zeros(0, np.float32))
    return d


BAD_VIDEO_CASES = [
    ("missing", {"1": load_video("does_not_exist.mp4"), "2": inspect()}, "not found"),
    ("corrupt", {"1": load_video("corrupt.mp4"), "2": inspect()}, "corrupt.mp4"),
    ("no video stream", {"1": load_video("tone_only.wav"), "2": inspect()}, "no video stream"),
    ("zero frames", {"1": load_video("no_frames.mp4"), "2": inspect()}, "frame"),
    ("start past end", {"1": load_video("short.mp4", start=5.0), "2": inspect()}, "start"),
    ("extreme resolution", {"1": load_video("too_wide.mp4"), "2": inspect()}, "8200"),
    ("dot-dot path", {"1": load_video("../../../etc/passwd"), "2": inspect()}, "outside"),
    ("absolute path", {"1": load_video("/etc/passwd"), "2": inspect()}, "outside"),
]


@pytest.mark.parametrize("case,prompt,needle", BAD_VIDEO_CASES, ids=[c[0] for c in BAD_VIDEO_CASES])
def test_bad_video_input_is_named_in_history(comfy_host, bad_files, case, prompt, needle):
    result = comfy_host.run(prompt, timeout=120)
    assert result.status == "error", case
    assert needle.lower() in result.error_message.lower(), result.error_message
    assert "MediaError" in result.error_message
    assert comfy_host.is_alive()


@pytest.mark.parametrize("audio,needle", [("nan.wav", "nan"), ("empty.wav", "empty")])
def test_bad_audio_is_named_in_history(comfy_host, bad_files, audio, needle):
    result = comfy_host.run(mux_prompt(audio, "short.mp4"), timeout=120)
    assert result.status == "error"
    assert needle in result.error_message.lower(), result.error_message


@pytest.mark.parametrize("prefix", ["../../escape", "/tmp/escape", "a/../../escape"])
def test_output_prefix_cannot_escape_the_output_folder(comfy_host, bad_files, prefix):
    before = set(comfy_host.work_dir.rglob("*escape*"))
    result = comfy_host.run(mux_prompt("tone_only.wav", "short.mp4", prefix), timeout=120)
    assert result.status == "error"
    assert "output" in result.error_message.lower(), result.error_message
    assert set(comfy_host.work_dir.rglob("*escape*")) == before
    assert not list(comfy_host.work_dir.parent.glob("escape*"))


def test_host_still_serves_valid_prompts_after_errors(comfy_host, bad_files):
    result = comfy_host.run(mux_prompt("tone_only.wav", "short.mp4", "foley/after_errors"), timeout=120)
    assert result.status == "success", result.error_message
    assert result.outputs["3"]["foley_video"]
