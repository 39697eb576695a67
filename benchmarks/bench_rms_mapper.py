"""RMS-Mapper vs motion-energy estimate: E-L1 to the true RMS envelope on held-out synthetic clips.

Each held-out clip (foley_core.synthetic_foley.make_clip with seed 1e6 + --seed + i, the synthetic
benchmark's held-out seeds, checked against the training set's seeds) is written as an .mp4 and
read back with the plugin's video loader (sample_video, the 25 fps stream RMS Predict uses), so
both estimates see exactly what a user's node sees. Scored against the clip's true soundtrack
envelope (controls/envelope.rms_envelope): E-L1 (Stable-V2A's metric), plus the Pearson
correlation and, for context, E-L1 of an all-silent prediction.

    python benchmarks/bench_rms_mapper.py --mapper embedded_models/foley_embedded_rms_mapper.safetensors \
        --clips 24 --json docs/results/rms_mapper_benchmark.json

Not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from foley_core.controls.envelope import rms_envelope  # noqa: E402
from foley_core.controls.motion_energy import motion_energy_envelope  # noqa: E402
from foley_core.evaluation.synthetic_benchmark import HELD_OUT_SEED_OFFSET  # noqa: E402
from foley_core.media.video import sample_video  # noqa: E402
from foley_core.metrics import e_l1  # noqa: E402
from foley_core.models.rms_mapper import load_mapper, mapper_envelope  # noqa: E402
from foley_core.synthetic_foley import clip_seeds, make_clip, write_mp4  # noqa: E402

DEFAULT_MAPPER = REPO_ROOT / "embedded_models" / "foley_embedded_rms_mapper.safetensors"


def _stats(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "median": float(np.median(values)),
            "min": float(values.min()), "max": float(values.max()), "n": int(values.size)}


def _pearson(a, b) -> float:
    a, b = np.asarray(a.values, np.float64), np.asarray(b.values, np.float64)
    k = min(a.size, b.size)
    a, b = a[:k], b[:k]
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mapper", default=str(DEFAULT_MAPPER), help="RMS-Mapper .safetensors")
    parser.add_argument("--clips", type=int, default=24, help="held-out clips (>= 20 for the acceptance)")
    parser.add_argument("--seed", type=int, default=0, help="held-out seeds start at 1e6 + this")
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--train-seed", type=int, default=0, help="dataset seed of the training clips")
    parser.add_argument("--train-clips", type=int, default=480, help="training clips (their seeds are excluded)")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.monotonic()
    mapper, meta = load_mapper(args.mapper)
    training_seeds = set(clip_seeds(args.train_seed, args.train_clips))
    training_seeds |= {s for s in meta["training"].get("features", {}).get("seeds", []) if s is not None}
    methods = ("mapper argmax", "mapper mean", "motion energy", "silence")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.clips):
            seed = HELD_OUT_SEED_OFFSET + args.seed + i
            if seed in training_seeds:
                raise SystemExit(f"held-out seed {seed} is a training seed; pick another --seed")
            clip = make_clip(seed, duration_s=args.duration, fps=25, sample_rate=16000, size=128)
            path = Path(tmp) / f"clip_{i}.mp4"
            write_mp4(path, clip)
            video = sample_video(str(path))
            fps, frames = float(video.stream_rates["sync"]), video.sync_frames
            truth = rms_envelope(clip.audio, 16000)
            started = time.monotonic()
            estimates = {"mapper argmax": mapper_envelope(mapper, frames, fps, video.duration_s)[0]}
            mapper_s = time.monotonic() - started
            estimates["mapper mean"] = mapper_envelope(mapper, frames, fps, video.duration_s, decoding="mean")[0]
            estimates["motion energy"] = motion_energy_envelope(frames, fps, video.duration_s)
            row = {"seed": seed, "scene": clip.meta["scene"], "material": clip.meta["material"],
                   "mapper_seconds": round(mapper_s, 3)}
            for name in methods:
                if name == "silence":
                    row[name] = {"e_l1": float(np.mean(truth.values))}
                    continue
                row[name] = {"e_l1": e_l1(estimates[name], truth), "pearson": _pearson(estimates[name], truth)}
            rows.append(row)
            print(f"[bench_rms_mapper] {i + 1}/{args.clips} seed {seed} ({row['scene']}): E-L1 mapper "
                  f"{row['mapper argmax']['e_l1']:.4f} / mean-decoded {row['mapper mean']['e_l1']:.4f}, motion "
                  f"energy {row['motion energy']['e_l1']:.4f}, silence {row['silence']['e_l1']:.4f}", flush=True)
    summary = {name: {"e_l1": _stats([r[name]["e_l1"] for r in rows])} for name in methods}
    for name in methods[:3]:
        summary[name]["pearson"] = _stats([r[name]["pearson"] for r in rows])
    for name in methods[:2]:
        summary[name]["beats_motion_energy_on_clips"] = float(np.mean(
            [r[name]["e_l1"] < r["motion energy"]["e_l1"] for r in rows]))
    summary["acceptance_mapper_beats_motion_energy"] = (
        summary["mapper argmax"]["e_l1"]["mean"] < summary["motion energy"]["e_l1"]["mean"])
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                          "python": platform.python_version()},
              "mapper": {"file": Path(args.mapper).name, **meta},
              "settings": {k: v for k, v in vars(args).items() if k != "json"},
              "summary": summary, "clips": rows, "seconds": round(time.monotonic() - began, 1)}
    for name in methods:
        s = summary[name]
        extra = f", Pearson {s['pearson']['mean']:.3f}" if "pearson" in s else ""
        wins = (f", beats motion energy on {100 * s['beats_motion_energy_on_clips']:.0f} % of clips"
                if "beats_motion_energy_on_clips" in s else "")
        print(f"{name}: E-L1 {s['e_l1']['mean']:.4f} ± {s['e_l1']['std']:.4f} (median {s['e_l1']['median']:.4f})"
              f"{extra}{wins}")
    print(f"acceptance (mapper E-L1 < motion energy): {summary['acceptance_mapper_beats_motion_energy']}; "
          f"total {report['seconds']} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
