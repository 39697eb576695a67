"""The main job: run the shipped video_to_audio workflow through a real ComfyUI host.

Writes a demo video (white flashes at known frames) and a model set into a fresh folder, starts
the host on it, submits workflows/api/video_to_audio.json, and prints where the mp4 is.
Until the embedded trained model lands (issue #4), the model set is small random weights in the
official formats: the pipeline, timing and muxing are real, the sound is noise-like.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from foley_core.media.synthetic import write_flash_video  # noqa: E402
from harness.comfy_host import ComfyHost  # noqa: E402
from harness.model_files import use_small_models, write_small_model_set  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--comfy-dir", required=True, help="ComfyUI checkout to run")
    parser.add_argument("--out", default=str(REPO / "out" / time.strftime("demo_%Y%m%d_%H%M%S")))
    args = parser.parse_args()
    work = Path(args.out).resolve()
    host = ComfyHost(Path(args.comfy_dir), work)
    host.prepare_folders()
    write_small_model_set(host.models_dir / "mmaudio")
    write_flash_video(host.input_dir / "foley_demo_flashes.mp4", n_frames=240,
                      flash_frames=range(12, 240, 30), size=(320, 240))
    prompt = use_small_models(json.loads((REPO / "workflows/api/video_to_audio.json").read_text()))
    print(f"[demo] starting ComfyUI ({args.comfy_dir}) in {work}", flush=True)
    with host:
        started = time.monotonic()
        result = host.run(prompt, timeout=1800)
        if result.status != "success":
            print(f"[demo] the workflow failed: {result.error_message}\n{host.log_tail()}")
            return 1
        files = result.files("foley_video")
    mp4 = [host.output_dir / f["subfolder"] / f["filename"] for f in files]
    print(f"[demo] video_to_audio finished in {time.monotonic() - started:.1f} s")
    print(f"[demo] mp4 with sound: {mp4[0]}")
    print(f"[demo] output folder: {host.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
