"""Envelope guidance on the synthetic benchmark: E-L1 and onset accuracy, unguided vs guided.

For each held-out synthetic clip (foley_core.synthetic_foley.make_clip, the same seeds as the
synthetic benchmark) the embedded model set generates audio from the video twice with the same
seed: plain sampling, and with training-free guidance (foley_core/controls/guidance.py) towards
the clip's TRUE RMS envelope (an oracle target: it measures how well guidance follows an
envelope, not how well one is predicted). Reported: E-L1 between each output's RMS envelope and
the target, and onset accuracy at 0.1 s against the ground-truth event times.

    python benchmarks/bench_guidance.py                       # defaults: 20 clips, a few CPU minutes
    python benchmarks/bench_guidance.py --strengths 0.5,1,2 --ends 0.6,1 --seed 500   # tuning split
    python benchmarks/bench_guidance.py --compare-gradients 4  # detached vs through-the-network
    python benchmarks/bench_guidance.py --no-envelope --layout-target --layout-adapter A.safetensors
        # TiVA layout: unguided vs layout guidance vs a trained layout adapter (controls/layout_adapter.py)
    python benchmarks/bench_guidance.py --no-envelope --layout-pair P.safetensors,A.safetensors [--layout-pair ...]
        # video → layout predictor → layout adapter (no oracle): e.g. the L2-stage pair vs the joint-stage pair

Not a test: pytest never collects it (it lives outside tests/ and is not named test_*).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from foley_core.controls.envelope import rms_envelope  # noqa: E402
from foley_core.controls.guidance import DEFAULT_ITERATIONS, ControlGuidance  # noqa: E402
from foley_core.controls.layout import audio_layout  # noqa: E402
from foley_core.controls.layout_adapter import apply_layout_adapter, load_layout_adapter  # noqa: E402
from foley_core.controls.motion_energy import motion_energy_envelope  # noqa: E402
from foley_core.decoding import decode_latents  # noqa: E402
from foley_core.evaluation.synthetic_benchmark import HELD_OUT_SEED_OFFSET, _caption, load_model_set  # noqa: E402
from foley_core.features import encode_visual  # noqa: E402
from foley_core.generation import GenerationSettings, generate  # noqa: E402
from foley_core.media.video import sample_video  # noqa: E402
from foley_core.metrics import e_l1, onset_accuracy  # noqa: E402
from foley_core.models.layout_predictor import load_predictor, video_layout  # noqa: E402
from foley_core.synthetic_foley import make_clip  # noqa: E402
from foley_core.synthetic_foley.scenes import ONSET_KINDS  # noqa: E402

TOLERANCE = 0.1


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _stats(values) -> dict:
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "median": float(np.median(values)),
            "n": int(values.size)}


class _Clip:
    def __init__(self, models, seed: int, duration: float):
        clip = make_clip(seed, duration_s=duration, fps=25, sample_rate=models.sample_rate, size=128)
        video = sample_video(torch.from_numpy(clip.frames), frame_rate=clip.fps)
        self.seed, self.meta, self.video = seed, clip.meta, video
        self.truth = clip.audio.astype(np.float32)
        self.target = rms_envelope(self.truth, models.sample_rate)
        self.layout = audio_layout(self.truth, models.sample_rate)  # TiVA layout of the true soundtrack
        self.onsets = [e["time_s"] for e in clip.meta["events"] if e["kind"] in ONSET_KINDS]
        # The training-free video estimate (what RMS Predict gives without an RMS-Mapper).
        self.motion = motion_energy_envelope(video.sync_frames, float(video.stream_rates["sync"]), video.duration_s)
        self.features = encode_visual(models.clip, models.synchformer, video.clip_frames, video.sync_frames,
                                      video.duration_s, _caption(clip), "")


def _generate(models, clip: _Clip, steps: int, cfg: float, hook=None, network=None) -> tuple[dict, float]:
    started = time.monotonic()
    latents, lengths = generate(network or models.network, clip.features, models.mode,
                                GenerationSettings(seed=clip.seed, steps=steps, cfg_strength=cfg),
                                device=torch.device("cpu"), velocity_hook=hook)
    wave = decode_latents(models.vae, models.vocoder, latents, lengths.samples)[0, 0].numpy()
    seconds = time.monotonic() - started
    scores = {"e_l1": e_l1(rms_envelope(wave, models.sample_rate), clip.target),
              f"onset_acc@{TOLERANCE:g}s": onset_accuracy(wave, clip.onsets, TOLERANCE,
                                                          sample_rate=models.sample_rate),
              "layout_l2": float(np.mean((audio_layout(wave, models.sample_rate).values - clip.layout.values) ** 2))}
    return scores, seconds


def compare_gradients(models, clips: list[_Clip], steps: int, cfg: float, start: float, end: float) -> dict:
    """Cosine between the detached and the through-the-network gradient at every guided step of
    a network-guided run, and their cost."""
    cosines, costs = [], {"detached": [], "network": []}

    class Probe(ControlGuidance):
        def __call__(self, k, t, x, v):
            if k in self.active:
                timed = {}
                for mode in ("detached", "network"):
                    began = time.monotonic()
                    timed[mode] = self.gradient_at(t, x, v, mode)[0]
                    costs[mode].append(time.monotonic() - began)
                a, b = timed["detached"].flatten(), timed["network"].flatten()
                cosines.append(float(torch.nn.functional.cosine_similarity(a, b, dim=0)))
            return super().__call__(k, t, x, v)

    for clip in clips:
        hook = Probe(models.vae, models.network, envelope=clip.target, strength=1.0, start=start, end=end,
                     steps=steps, gradient="network")
        _generate(models, clip, steps, cfg, hook)
    return {"cosine": _stats(cosines), "seconds_per_gradient": {k: _stats(v) for k, v in costs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=str(REPO_ROOT / "embedded_models"))
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="held-out clip seeds start at 1e6 + this")
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=4.5)
    parser.add_argument("--strengths", default="1.0", help="comma-separated guidance strengths")
    parser.add_argument("--starts", default="0.0", help="comma-separated control_start fractions")
    parser.add_argument("--ends", default="1.0", help="comma-separated control_end fractions")
    parser.add_argument("--gradient", default="detached", choices=("detached", "network"))
    parser.add_argument("--band-weighting", action="store_true",
                        help="weigh mel bands by their bandwidth in the envelope proxy")
    parser.add_argument("--distance", default="l2", choices=("l1", "l2"), help="envelope distance of the guidance")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help="gradient moves per guided step (controls/guidance.py; 1 = the first runs' setting)")
    parser.add_argument("--compare-gradients", type=int, default=0, metavar="N",
                        help="also measure detached vs network gradients on the first N clips")
    parser.add_argument("--motion-target", action="store_true",
                        help="also guide towards the video's motion-energy estimate (first config)")
    parser.add_argument("--layout-target", action="store_true",
                        help="also guide towards the true soundtrack's TiVA layout (first config)")
    parser.add_argument("--no-envelope", action="store_true", help="skip the envelope-guided runs")
    parser.add_argument("--layout-adapter", default="", metavar="FILE",
                        help="also sample with this trained layout adapter fed the true soundtrack's layout")
    parser.add_argument("--adapter-strengths", default="1", help="comma-separated layout-adapter strengths")
    parser.add_argument("--layout-pair", action="append", default=[], metavar="PREDICTOR,ADAPTER",
                        help="also sample with ADAPTER fed PREDICTOR's layout of the video (repeatable; strength 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: fastest for this tiny model on a shared box; 0 = torch default)")
    parser.add_argument("--json", default="", help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = load_model_set(Path(args.models))
    adapter = load_layout_adapter(args.layout_adapter)[0] if args.layout_adapter else None
    pairs = []  # (label, predictor, adapter): the predicted layout, not the oracle
    for text in args.layout_pair:
        predictor_file, adapter_file = text.split(",")
        pairs.append((f"{Path(predictor_file).stem} -> {Path(adapter_file).stem}", load_predictor(predictor_file)[0],
                      load_layout_adapter(adapter_file)[0]))
    configs = [(s, a, b) for s in _floats(args.strengths) for a in _floats(args.starts) for b in _floats(args.ends)]
    began = time.monotonic()
    rows = []
    clips = []
    for i in range(args.clips):
        clip = _Clip(models, HELD_OUT_SEED_OFFSET + args.seed + i, args.duration)
        clips.append(clip)
        row = {"seed": clip.seed, "scene": clip.meta["scene"], "material": clip.meta["material"],
               "motion_energy_vs_truth_e_l1": e_l1(clip.motion, clip.target)}
        row["unguided"], row["unguided_s"] = _generate(models, clip, args.steps, args.cfg)
        for strength, start, end in [] if args.no_envelope else configs:
            hook = ControlGuidance(models.vae, models.network, envelope=clip.target, strength=strength,
                                   start=start, end=end, steps=args.steps, gradient=args.gradient, distance=args.distance,
                                   band_weighting=args.band_weighting, iterations=args.iterations)
            key = f"guided s={strength:g} {start:g}-{end:g}"
            row[key], row[key + "_s"] = _generate(models, clip, args.steps, args.cfg, hook)
            row[key]["proxy_distance"] = hook.report.losses[:1] + hook.report.losses[-1:]
        if args.motion_target:  # a realistic target: the video's motion-energy estimate, scored vs the truth
            strength, start, end = configs[0]
            hook = ControlGuidance(models.vae, models.network, envelope=clip.motion, strength=strength,
                                   start=start, end=end, steps=args.steps, gradient=args.gradient, distance=args.distance,
                                   band_weighting=args.band_weighting, iterations=args.iterations)
            key = f"guided to motion energy s={strength:g} {start:g}-{end:g}"
            row[key], row[key + "_s"] = _generate(models, clip, args.steps, args.cfg, hook)
        if args.layout_target:  # TiVA layout guidance towards the true soundtrack's layout
            strength, start, end = configs[0]
            hook = ControlGuidance(models.vae, models.network, layout=clip.layout, strength=strength,
                                   start=start, end=end, steps=args.steps, gradient=args.gradient, distance=args.distance,
                                   band_weighting=args.band_weighting, iterations=args.iterations)
            key = f"guided to layout s={strength:g} {start:g}-{end:g}"
            row[key], row[key + "_s"] = _generate(models, clip, args.steps, args.cfg, hook)
        for strength in _floats(args.adapter_strengths) if adapter is not None else []:
            network = apply_layout_adapter(models.network, adapter, clip.layout, strength=strength)
            key = f"guided by the layout adapter x{strength:g}"
            row[key], row[key + "_s"] = _generate(models, clip, args.steps, args.cfg, network=network)
        for label, predictor, pair_adapter in pairs:
            video = clip.video
            predicted = video_layout(predictor, models.clip, video.clip_frames, float(video.stream_rates["clip"]),
                                     video.duration_s)
            network = apply_layout_adapter(models.network, pair_adapter, predicted)
            key = f"guided by predicted layout [{label}]"
            row[key], row[key + "_s"] = _generate(models, clip, args.steps, args.cfg, network=network)
            row[key]["predicted_layout_l2"] = float(np.mean(
                (predicted.values[:clip.layout.n_frames] - clip.layout.values[:predicted.n_frames]) ** 2))
        rows.append(row)
        print(f"[bench_guidance] clip {i + 1}/{args.clips} seed {clip.seed}: unguided E-L1 "
              f"{row['unguided']['e_l1']:.4f}; " + "; ".join(
                  f"{k} {row[k]['e_l1']:.4f}" for k in row if k.startswith("guided") and not k.endswith("_s")),
              flush=True)
    summary = {"motion_energy_vs_truth": {"e_l1": _stats([r["motion_energy_vs_truth_e_l1"] for r in rows])}}
    for key in [k for k in rows[0] if (k == "unguided" or k.startswith("guided")) and not k.endswith("_s")]:
        summary[key] = {m: _stats([r[key][m] for r in rows])
                        for m in ("e_l1", f"onset_acc@{TOLERANCE:g}s", "layout_l2")}
        summary[key]["seconds_per_clip"] = _stats([r[key + "_s"] for r in rows])
        if "predicted_layout_l2" in rows[0][key]:  # --layout-pair: how far the predicted layout was from the truth
            summary[key]["predicted_layout_l2"] = _stats([r[key]["predicted_layout_l2"] for r in rows])
        if key != "unguided":
            base, ours = summary["unguided"]["e_l1"]["mean"], summary[key]["e_l1"]["mean"]
            summary[key]["e_l1_reduction"] = 1.0 - ours / base
            summary[key]["e_l1_lower_on_clips"] = float(np.mean([r[key]["e_l1"] < r["unguided"]["e_l1"]
                                                                 for r in rows]))
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                          "python": platform.python_version()},
              "settings": {k: v for k, v in vars(args).items() if k != "json"},
              "summary": summary, "clips": rows, "seconds": round(time.monotonic() - began, 1)}
    if args.compare_gradients:
        report["gradients"] = compare_gradients(models, clips[:args.compare_gradients], args.steps, args.cfg,
                                                configs[0][1], configs[0][2])
    for key, s in summary.items():
        if key == "motion_energy_vs_truth":
            print(f"motion-energy estimate vs true envelope: E-L1 {s['e_l1']['mean']:.4f} ± {s['e_l1']['std']:.4f}")
            continue
        extra = f", E-L1 −{100 * s['e_l1_reduction']:.1f} %" if "e_l1_reduction" in s else ""
        print(f"{key}: E-L1 {s['e_l1']['mean']:.4f} ± {s['e_l1']['std']:.4f}, onset acc@0.1 s "
              f"{s[f'onset_acc@{TOLERANCE:g}s']['mean']:.3f} ± {s[f'onset_acc@{TOLERANCE:g}s']['std']:.3f}, "
              f"layout L2 {s['layout_l2']['mean']:.4f} ± {s['layout_l2']['std']:.4f}, "
              f"{s['seconds_per_clip']['mean']:.1f} s/clip{extra}")
    if "gradients" in report:
        print("gradients:", json.dumps(report["gradients"]))
    print(f"total {report['seconds']} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
