"""The main job: run a shipped workflow through a real ComfyUI host.

Writes a silent demo video (a procedural Foley scene from the synthetic benchmark: objects
hitting a surface at known times) into a fresh folder, starts the host on it, submits
workflows/api/<workflow>.json unchanged and prints where the mp4 with sound is, and how many of
the scene's true event times the soundtrack's onsets hit (0.1 s tolerance).

Default workflow: embedded_synced_foley — the embedded model set's synchronised path (RMS-Mapper
envelope of the video → envelope ControlNet → flow network; docs/embedded_sync.md), no download.
`--workflow video_to_audio` runs the plain MMAudio graph instead: with no official weights
installed its loaders fall back to the embedded set and the Griffin-Lim vocoder, and say so.
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


def sync_report(mp4: Path, truth: dict) -> str:
    """How many true event times the soundtrack's detected onsets hit within 0.1 s."""
    from foley_core.media.audio import decode_audio_stream
    from foley_core.metrics import onset_scores
    from foley_core.synthetic_foley.scenes import ONSET_KINDS

    wave, rate = decode_audio_stream(mp4)
    events = [e["time_s"] for e in truth["events"] if e["kind"] in ONSET_KINDS]
    scores = onset_scores(wave.mean(0).numpy(), rate, events, tolerances=(0.1,))
    return (f"onset accuracy against the scene's {len(events)} true events: "
            f"{scores['onset_acc@0.1s']:.2f} at 0.1 s ({int(scores['n_pred'])} onsets detected)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--comfy-dir", required=True, help="ComfyUI checkout to run")
    parser.add_argument("--out", default=str(REPO / "out" / time.strftime("demo_%Y%m%d_%H%M%S")))
    parser.add_argument("--seed", type=int, default=7, help="which synthetic scene to film")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--workflow", default="embedded_synced_foley",
                        help="a workflow name from workflows/api/ (default: embedded_synced_foley)")
    args = parser.parse_args()
    work = Path(args.out).resolve()
    host = ComfyHost(Path(args.comfy_dir), work)
    host.prepare_folders()
    truth = write_demo_video(host.input_dir / DEMO_VIDEO, args.seed, args.duration)
    events = ", ".join(f"{e['time_s']:.2f}" for e in truth["events"] if e["kind"] != "scrape_end")
    print(f"[demo] video: {truth['scene']} on {truth['material']}, events at {events} s", flush=True)
    prompt = json.loads((REPO / "workflows/api" / f"{args.workflow}.json").read_text())
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
    print(f"[demo] {args.workflow} finished in {time.monotonic() - started:.1f} s")
    print(f"[demo] mp4 with sound: {mp4[0]}")
    print(f"[demo] {sync_report(mp4[0], truth)}")
    print(f"[demo] output folder: {host.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
