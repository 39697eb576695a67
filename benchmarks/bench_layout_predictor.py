"""TiVA layout predictor vs baselines: layout L2 to the true layout on held-out synthetic clips.

Each held-out clip (foley_core.synthetic_foley.make_clip with seed 1e6 + --seed + i, the synthetic
benchmark's held-out seeds, checked against the predictor's training seeds) is written as an .mp4
and read back with the plugin's video loader (sample_video), so every estimate sees what the node
sees. Truth: controls/layout.audio_layout of the clip's soundtrack ([41, 5] for 4 s). Metric: TiVA's
L2(t_a, t_v) = mean squared error per layout cell; plus the Pearson correlation of the band-mean
curves over time (does it get the timing?). Baselines, fitted on --fit-clips training clips:
- constant mean layout: the per-band mean of the training layouts, at every frame;
- motion-energy layout: the motion-energy envelope (controls/motion_energy.py) averaged over each
  layout frame, mapped per band by a least-squares affine fit (a_c · energy + b_c).

    python benchmarks/bench_layout_predictor.py --predictor embedded_models/foley_embedded_layout_predictor.safetensors \
        --clips 48 --json docs/results/layout_predictor_benchmark.json

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

from benchmarks.bench_rms_mapper import _stats  # noqa: E402
from foley_core.controls.layout import audio_layout  # noqa: E402
from foley_core.controls.motion_energy import motion_energy_envelope  # noqa: E402
from foley_core.evaluation.synthetic_benchmark import HELD_OUT_SEED_OFFSET  # noqa: E402
from foley_core.media.video import sample_video  # noqa: E402
from foley_core.models.builders import build_clip  # noqa: E402
from foley_core.models.layout_predictor import load_predictor, video_layout  # noqa: E402
from foley_core.synthetic_foley import clip_seeds, make_clip, write_mp4  # noqa: E402

DEFAULT_PREDICTOR = REPO_ROOT / "embedded_models" / "foley_embedded_layout_predictor.safetensors"
DEFAULT_CLIP = REPO_ROOT / "embedded_models" / "foley_embedded_clip.safetensors"


def _clip_inputs(seed: int, duration: float, folder: Path):
    """(video as the node loads it, true layout values [M, C]) of one synthetic clip."""
    clip = make_clip(seed, duration_s=duration, fps=25, sample_rate=16000, size=128)
    path = folder / f"clip_{seed}.mp4"
    write_mp4(path, clip)
    video = sample_video(str(path))
    path.unlink()
    return video, audio_layout(clip.audio, 16000).values


def _energy_per_frame(video, frames: int) -> np.ndarray:
    """The motion-energy envelope averaged over each layout frame's span, [frames]."""
    envelope = motion_energy_envelope(video.sync_frames, float(video.stream_rates["sync"]), video.duration_s)
    values = np.asarray(envelope.values, np.float64)
    edges = np.linspace(0, values.size, frames + 1).round().astype(int)
    return np.array([values[a:max(b, a + 1)].mean() for a, b in zip(edges[:-1], edges[1:])])


def _l2(a: np.ndarray, b: np.ndarray) -> float:
    k = min(a.shape[0], b.shape[0])
    return float(np.mean((a[:k] - b[:k]) ** 2))


def _timing(a: np.ndarray, b: np.ndarray) -> float:
    k = min(a.shape[0], b.shape[0])
    x, y = a[:k].mean(1), b[:k].mean(1)
    return float(np.corrcoef(x, y)[0, 1]) if x.std() > 1e-9 and y.std() > 1e-9 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictor", default=str(DEFAULT_PREDICTOR), help="layout predictor .safetensors")
    parser.add_argument("--clip", default=str(DEFAULT_CLIP), help="the CLIP it was trained on")
    parser.add_argument("--clips", type=int, default=48, help="held-out clips")
    parser.add_argument("--seed", type=int, default=0, help="held-out seeds start at 1e6 + this")
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--train-seed", type=int, default=0, help="dataset seed of the training clips")
    parser.add_argument("--fit-clips", type=int, default=32, help="training clips the baselines are fitted on")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.monotonic()
    predictor, meta = load_predictor(args.predictor)
    encoder = build_clip(Path(args.clip))
    training_seeds = {s for s in meta["training"].get("features", {}).get("seeds", []) if s is not None}
    methods = ("predictor", "constant mean layout", "motion-energy layout")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fit_layouts, fit_energy = [], []
        for seed in clip_seeds(args.train_seed, args.fit_clips):
            video, truth = _clip_inputs(seed, args.duration, Path(tmp))
            fit_layouts.append(truth)
            fit_energy.append(_energy_per_frame(video, truth.shape[0]))
        mean_layout = np.concatenate(fit_layouts).mean(0)  # [C]
        energy = np.concatenate(fit_energy)
        design = np.stack([energy, np.ones_like(energy)], 1)
        affine = np.linalg.lstsq(design, np.concatenate(fit_layouts), rcond=None)[0]  # [2, C]
        print(f"[bench_layout_predictor] baselines fitted on {args.fit_clips} training clips", flush=True)
        for i in range(args.clips):
            seed = HELD_OUT_SEED_OFFSET + args.seed + i
            if seed in training_seeds:
                raise SystemExit(f"held-out seed {seed} is a training seed; pick another --seed")
            video, truth = _clip_inputs(seed, args.duration, Path(tmp))
            started = time.monotonic()
            predicted = video_layout(predictor, encoder, video.clip_frames, float(video.stream_rates["clip"]),
                                     video.duration_s, Path(args.clip).name).values
            seconds = time.monotonic() - started
            e = _energy_per_frame(video, truth.shape[0])
            estimates = {"predictor": predicted,
                         "constant mean layout": np.broadcast_to(mean_layout, truth.shape),
                         "motion-energy layout": np.clip(np.stack([e, np.ones_like(e)], 1) @ affine, 0, 1)}
            row = {"seed": seed, "predictor_seconds": round(seconds, 3)}
            for name in methods:
                row[name] = {"l2": _l2(estimates[name], truth), "timing_pearson": _timing(estimates[name], truth)}
            rows.append(row)
            print(f"[bench_layout_predictor] {i + 1}/{args.clips} seed {seed}: L2 predictor "
                  f"{row['predictor']['l2']:.4f}, mean layout {row['constant mean layout']['l2']:.4f}, "
                  f"motion energy {row['motion-energy layout']['l2']:.4f}", flush=True)
    summary = {name: {"l2": _stats([r[name]["l2"] for r in rows]),
                      "timing_pearson": _stats([r[name]["timing_pearson"] for r in rows])} for name in methods}
    for name in methods[1:]:
        summary["predictor"][f"beats_{name.replace(' ', '_')}_on_clips"] = float(np.mean(
            [r["predictor"]["l2"] < r[name]["l2"] for r in rows]))
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                          "python": platform.python_version(), "load_average": os.getloadavg()},
              "predictor": {"file": Path(args.predictor).name, **meta},
              "settings": {k: v for k, v in vars(args).items() if k != "json"},
              "summary": summary, "clips": rows, "seconds": round(time.monotonic() - began, 1)}
    for name in methods:
        s = summary[name]
        print(f"{name}: layout L2 {s['l2']['mean']:.4f} ± {s['l2']['std']:.4f} (median {s['l2']['median']:.4f}), "
              f"timing Pearson {s['timing_pearson']['mean']:.3f}")
    print(f"total {report['seconds']} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
