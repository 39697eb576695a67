"""The main job: run the shipped video_to_audio workflow through a real ComfyUI host.

Writes a silent demo video (a procedural Foley scene from the synthetic benchmark: objects
hitting a surface at known times) into a fresh folder, starts the host on it, submits
workflows/api/video_to_audio.json unchanged and prints where the mp4 with sound is. With no
official weights installed, the loaders fall back to the embedded model set (embedded_models/,
trained on synthetic Foley) and the built-in Griffin-Lim vocoder, and say so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from foley_core.media.encode import encode_frames  # noqa: E402
from foley_core.synthetic_foley import make_clip  # noqa: E402
from harness.comfy_host import ComfyHost  # noqa: E402

DEMO_VIDEO = "foley_demo_video.mp4"


def write_demo_video(path: Path, seed: int, duration_s: float) -> dict:
    """A silent mp4 of one synthetic scene; returns its ground truth (event times)."""
    clip = make_clip(seed, duration_s=duration_s, fps=25, sample_rate=16000, size=256)
    encode_frames(torch.from_numpy(clip.frames), clip.fps, path)
    return clip.meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--comfy-dir", required=True, help="ComfyUI checkout to run")
    parser.add_argument("--out", default=str(REPO / "out" / time.strftime("demo_%Y%m%d_%H%M%S")))
    parser.add_argument("--seed", type=int, default=7, help="which synthetic scene to film")
    parser.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    work = Path(args.out).resolve()
    host = ComfyHost(Path(args.comfy_dir), work)
    host.prepare_folders()
    truth = write_demo_video(host.input_dir / DEMO_VIDEO, args.seed, args.duration)
    events = ", ".join(f"{e['time_s']:.2f}" for e in truth["events"] if e["kind"] != "scrape_end")
    print(f"[demo] video: {truth['scene']} on {truth['material']}, events at {events} s", flush=True)
    prompt = json.loads((REPO / "workflows/api/video_to_audio.json").read_text())
    print(f"[demo] starting ComfyUI ({args.comfy_dir}) in {work}", flush=True)
    with host:
        started = time.monotonic()
        result = host.run(prompt, timeout=1800)
        if result.status != "success":
            print(f"[demo] the workflow failed: {result.error_message}\n{host.log_tail()}")
            return 1
    for node_id, output in sorted(result.outputs.items()):
        for text in output.get("text", []):
            print(f"[demo] node {node_id}: {text}")
    mp4 = [host.output_dir / f["subfolder"] / f["filename"] for f in result.files("foley_video")]
    print(f"[demo] video_to_audio finished in {time.monotonic() - started:.1f} s")
    print(f"[demo] mp4 with sound: {mp4[0]}")
    print(f"[demo] output folder: {host.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
