"""Load Video, Inspect Video and Mux through the real host's HTTP API (issue #2 acceptance)."""

import io
from pathlib import Path
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foley_core.media.synthetic import make_tone, write_flash_video
from media_files import (FLASH_FPS, FLASH_FRAMES, N_FLASH_FRAMES, decoded_audio, packets_of,
                         write_float_wav)


@pytest.fixture(scope="module")
def flash_video(comfy_host):
    name = "flashes_2997.mp4"
    write_flash_video(comfy_host.input_dir / name, fps=FLASH_FPS, n_frames=N_FLASH_FRAMES,
                      flash_frames=FLASH_FRAMES)
    return name


def expected_flash_indices(rate: int, n_out: int) -> list[int]:
    """Output k shows the first source frame i with i/fps >= k/rate (spec §5.1)."""
    found = []
    for k in range(n_out):
        i = math.ceil(Fraction(k, rate) * FLASH_FPS)
        if i in FLASH_FRAMES:
            found.append(k)
    return found


def preview_brightness(comfy_host, result, node_id: str) -> list[float]:
    images = result.outputs[node_id]["images"]
    values = []
    for entry in images:
        png = comfy_host.view(entry["filename"], entry.get("subfolder", ""), entry["type"])
        values.append(float(np.asarray(Image.open(io.BytesIO(png)).convert("L")).mean()))
    return values


def test_frame_stacks_follow_the_timestamp_rule(comfy_host, flash_video):
    prompt = {
        "1": {"class_type": "FoleyLoadVideo",
              "inputs": {"video": flash_video, "start_time": 0.0, "max_duration": 0.0}},
        "2": {"class_type": "FoleyInspectVideo", "inputs": {"video": ["1", 0], "stream": "clip_8fps"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "4": {"class_type": "FoleyInspectVideo", "inputs": {"video": ["1", 0], "stream": "sync_25fps"}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    result = comfy_host.run(prompt, timeout=300)
    assert result.status == "success", result.error_message
    info = json.loads(result.outputs["2"]["text"][0])
    duration = Fraction(N_FLASH_FRAMES) / FLASH_FPS
    assert Fraction(info["duration"]) == duration
    assert info["frame_rate"] == "30000/1001"
    for node, rate, stream in (("3", 8, "clip"), ("5", 25, "sync")):
        brightness = preview_brightness(comfy_host, result, node)
        assert len(brightness) == int(rate * duration) == info["streams"][stream]["frames"]
        flashes = [k for k, b in enumerate(brightness) if b > 128]
        assert flashes == expected_flash_indices(rate, len(brightness)), stream
        assert flashes, "the test video must show at least one flash in each stream"


def test_mux_copies_video_and_fits_audio_to_its_duration(comfy_host, flash_video):
    write_float_wav(comfy_host.input_dir / "tone.wav", make_tone(44100, 2.5, 440.0), 44100)
    prompt = {
        "1": {"class_type": "FoleyLoadVideo",
              "inputs": {"video": flash_video, "start_time": 0.0, "max_duration": 0.0}},
        "2": {"class_type": "FoleyLoadAudio",
              "inputs": {"audio": "tone.wav", "start_time": 0.0, "duration": 0.0}},
        "3": {"class_type": "FoleyMux",
              "inputs": {"audio": ["2", 0], "video": ["1", 0], "filename_prefix": "foley/tone",
                         "audio_codec": "aac", "mode": "replace", "offset_ms": 0.0,
                         "original_gain": 1.0, "new_gain": 1.0}},
    }
    result = comfy_host.run(prompt, timeout=300)
    assert result.status == "success", result.error_message
    (entry,) = result.outputs["3"]["foley_video"]
    out_path = comfy_host.output_dir / entry["subfolder"] / entry["filename"]
    assert out_path.is_file() and out_path.suffix == ".mp4"
    assert out_path.resolve().is_relative_to(comfy_host.output_dir.resolve())
    assert comfy_host.view(entry["filename"], entry["subfolder"])[:12] == out_path.read_bytes()[:12]
    assert packets_of(out_path) == packets_of(comfy_host.input_dir / flash_video)
    samples, rate, n_audio_streams = decoded_audio(out_path)
    assert n_audio_streams == 1
    video_duration = N_FLASH_FRAMES / float(FLASH_FPS)
    assert abs(samples.shape[1] / rate - video_duration) <= 1024 / rate
    # The tone (2.5 s) is there, followed by silence up to the video's end.
    assert np.abs(samples[:, : int(2.0 * rate)]).max() > 0.3
    assert np.abs(samples[:, int(2.7 * rate):]).max() < 0.02


def test_image_batch_video_is_encoded_and_muxed(comfy_host, flash_video):
    """Frames from another node (an IMAGE batch + fps) have no file: Mux encodes them once."""
    write_float_wav(comfy_host.input_dir / "tone_short.wav", make_tone(16000, 1.0, 330.0), 16000)
    prompt = {
        "1": {"class_type": "FoleyLoadVideo",
              "inputs": {"video": flash_video, "start_time": 0.0, "max_duration": 0.0}},
        "2": {"class_type": "FoleyInspectVideo", "inputs": {"video": ["1", 0], "stream": "clip_8fps"}},
        "3": {"class_type": "FoleyLoadVideo",
              "inputs": {"video": flash_video, "start_time": 0.0, "max_duration": 0.0,
                         "images": ["2", 0], "fps": 8.0}},
        "4": {"class_type": "FoleyLoadAudio",
              "inputs": {"audio": "tone_short.wav", "start_time": 0.0, "duration": 0.0}},
        "5": {"class_type": "FoleyMux",
              "inputs": {"audio": ["4", 0], "video": ["3", 0], "filename_prefix": "foley/from_images",
                         "audio_codec": "flac", "mode": "replace", "offset_ms": 0.0,
                         "original_gain": 1.0, "new_gain": 1.0}},
    }
    result = comfy_host.run(prompt, timeout=300)
    assert result.status == "success", result.error_message
    (entry,) = result.outputs["5"]["foley_video"]
    out_path = comfy_host.output_dir / entry["subfolder"] / entry["filename"]
    n_frames = int(8 * N_FLASH_FRAMES / FLASH_FPS)  # the 8 fps stack of the 3.2 s video
    assert len(packets_of(out_path)) == n_frames
    samples, rate, _ = decoded_audio(out_path)
    assert samples.shape[1] == round(n_frames / 8 * rate)
    assert not list(Path(comfy_host.temp_dir).rglob("frames.mp4")), "scratch files are removed"


def test_interrupt_stops_a_long_prompt_promptly(comfy_host, flash_video):
    """A huge resampling job (progress reported per frame) stops soon after /interrupt."""
    import threading
    import time

    write_flash_video(comfy_host.input_dir / "long.mp4", fps=Fraction(25), n_frames=1500,
                      size=(640, 480))
    prompt = {"1": {"class_type": "FoleyLoadVideo",
                    "inputs": {"video": "long.mp4", "start_time": 0.0, "max_duration": 0.0}},
              "2": {"class_type": "FoleyInspectVideo", "inputs": {"video": ["1", 0], "stream": "preview"}}}
    prompt_id = comfy_host.queue(prompt)
    time.sleep(2.0)
    interrupted_at = time.monotonic()
    comfy_host.interrupt()
    result = comfy_host.wait(prompt_id, timeout=120)
    stopped_after = time.monotonic() - interrupted_at
    events = [event for event, _ in result.messages]
    assert "execution_interrupted" in events, events
    assert stopped_after < 10.0, stopped_after
