"""Envelope ControlNet vs training-free guidance on the synthetic benchmark (issue #6 acceptance).

For each held-out synthetic clip (foley_core.synthetic_foley.make_clip, the seeds of the synthetic
benchmark) the embedded model set generates audio from the video with the same seed:
- unguided: plain sampling;
- guidance: foley_core/controls/guidance.py with its defaults, towards the clip's TRUE RMS envelope;
- controlnet: the trained envelope ControlNet (controls/controlnet.py) fed with the same envelope,
  in each requested CFG mode.
Reported: E-L1 between each output's RMS envelope and the target, and onset accuracy at 0.1 s
against the ground-truth event times (the metrics and clips of benchmarks/bench_guidance.py).

    python benchmarks/bench_controlnet.py --controlnet embedded_models/foley_envelope_controlnet_16k.safetensors

Not a test: pytest never collects it.
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

from foley_core.controls.controlnet import CFG_MODES, ControlledNetwork, load_controlnet  # noqa: E402
from foley_core.controls.envelope import rms_envelope  # noqa: E402
from foley_core.controls.guidance import ControlGuidance  # noqa: E402
from foley_core.decoding import decode_latents  # noqa: E402
from foley_core.evaluation.synthetic_benchmark import HELD_OUT_SEED_OFFSET, _caption, load_model_set  # noqa: E402
from foley_core.features import encode_visual  # noqa: E402
from foley_core.generation import GenerationSettings, generate  # noqa: E402
from foley_core.media.video import sample_video  # noqa: E402
from foley_core.metrics import e_l1, onset_accuracy  # noqa: E402
from foley_core.synthetic_foley import make_clip  # noqa: E402
from foley_core.synthetic_foley.scenes import ONSET_KINDS  # noqa: E402

TOLERANCE = 0.1
ONSET_KEY = f"onset_acc@{TOLERANCE:g}s"


def _stats(values) -> dict:
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "median": float(np.median(values)),
            "n": int(values.size)}


def _clip(models, seed: int, duration: float) -> dict:
    clip = make_clip(seed, duration_s=duration, fps=25, sample_rate=models.sample_rate, size=128)
    video = sample_video(torch.from_numpy(clip.frames), frame_rate=clip.fps)
    return {"seed": seed, "meta": clip.meta, "target": rms_envelope(clip.audio.astype(np.float32), models.sample_rate),
            "onsets": [e["time_s"] for e in clip.meta["events"] if e["kind"] in ONSET_KINDS],
            "features": encode_visual(models.clip, models.synchformer, video.clip_frames, video.sync_frames,
                                      video.duration_s, _caption(clip), "")}


def _run(models, network, clip: dict, steps: int, cfg: float, hook=None) -> tuple[dict, float]:
    started = time.monotonic()
    latents, lengths = generate(network, clip["features"], models.mode,
                                GenerationSettings(seed=clip["seed"], steps=steps, cfg_strength=cfg),
                                device=torch.device("cpu"), velocity_hook=hook)
    wave = decode_latents(models.vae, models.vocoder, latents, lengths.samples)[0, 0].numpy()
    seconds = time.monotonic() - started
    return {"e_l1": e_l1(rms_envelope(wave, models.sample_rate), clip["target"]),
            ONSET_KEY: onset_accuracy(wave, clip["onsets"], TOLERANCE, sample_rate=models.sample_rate)}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=str(REPO_ROOT / "embedded_models"))
    parser.add_argument("--controlnet", default=str(REPO_ROOT / "embedded_models" / "foley_envelope_controlnet_16k.safetensors"))
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="held-out clip seeds start at 1e6 + this")
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=4.5)
    parser.add_argument("--modes", default="conditional,both", help="ControlNet CFG modes to run")
    parser.add_argument("--strengths", default="1", help="ControlNet residual strengths")
    parser.add_argument("--no-guidance", action="store_true", help="skip the guidance baseline")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--merge", nargs="+", metavar="PART.json",
                        help="only combine the clips of earlier runs (e.g. clip ranges run in parallel) into --json")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        rows = sorted((r for part in parts for r in part["clips"]), key=lambda r: r["seed"])
        report = {**parts[0], "command": " && ".join(p["command"] for p in parts), "clips": rows,
                  "summary": summarise(rows), "seconds": sum(p["seconds"] for p in parts)}
        report["settings"] = {**parts[0]["settings"], "clips": len(rows)}
        print_summary(report)
        Path(args.json).write_text(json.dumps(report, indent=1))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    models = load_model_set(Path(args.models))
    controlnet, meta = load_controlnet(args.controlnet)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(CFG_MODES)
    if unknown:
        raise SystemExit(f"unknown CFG modes {sorted(unknown)}; choose from {CFG_MODES}")
    strengths = [float(s) for s in args.strengths.split(",") if s]
    began = time.monotonic()
    rows = []
    for i in range(args.clips):
        clip = _clip(models, HELD_OUT_SEED_OFFSET + args.seed + i, args.duration)
        row = {"seed": clip["seed"], "scene": clip["meta"]["scene"], "material": clip["meta"]["material"]}
        row["unguided"], row["unguided_s"] = _run(models, models.network, clip, args.steps, args.cfg)
        if not args.no_guidance:  # the guidance module's defaults (strength, step range, gradient)
            hook = ControlGuidance(models.vae, models.network, envelope=clip["target"], steps=args.steps)
            row["guidance"], row["guidance_s"] = _run(models, models.network, clip, args.steps, args.cfg, hook)
        for mode in modes:
            for strength in strengths:
                key = f"controlnet {mode}" + ("" if strength == 1 else f" x{strength:g}")
                net = ControlledNetwork(models.network, controlnet, clip["target"], cfg_mode=mode, strength=strength)
                row[key], row[key + "_s"] = _run(models, net, clip, args.steps, args.cfg)
        rows.append(row)
        print(f"[bench_controlnet] clip {i + 1}/{args.clips} seed {clip['seed']} ({row['scene']}): " + "; ".join(
            f"{k} E-L1 {row[k]['e_l1']:.4f} onset {row[k][ONSET_KEY]:.2f}"
            for k in row if isinstance(row[k], dict)), flush=True)
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                          "python": platform.python_version()},
              "settings": {k: v for k, v in vars(args).items() if k not in ("json", "merge")},
              "controlnet": {"file": Path(args.controlnet).name, **meta},
              "summary": summarise(rows), "clips": rows, "seconds": round(time.monotonic() - began, 1)}
    print_summary(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


def summarise(rows: list[dict]) -> dict:
    summary = {}
    for key in [k for k in rows[0] if isinstance(rows[0][k], dict)]:
        summary[key] = {m: _stats([r[key][m] for r in rows]) for m in ("e_l1", ONSET_KEY)}
        summary[key]["seconds_per_clip"] = _stats([r[key + "_s"] for r in rows])
        if key != "unguided":
            base = summary["unguided"]["e_l1"]["mean"]
            summary[key]["e_l1_reduction_vs_unguided"] = 1.0 - summary[key]["e_l1"]["mean"] / base
            if "guidance" in summary and key != "guidance":
                summary[key]["e_l1_lower_than_guidance_on_clips"] = float(np.mean(
                    [r[key]["e_l1"] < r["guidance"]["e_l1"] for r in rows]))
    return summary


def print_summary(report: dict) -> None:
    for key, s in report["summary"].items():
        extra = (f", E-L1 −{100 * s['e_l1_reduction_vs_unguided']:.1f} % vs unguided"
                 if "e_l1_reduction_vs_unguided" in s else "")
        print(f"{key}: E-L1 {s['e_l1']['mean']:.4f} ± {s['e_l1']['std']:.4f}, onset acc@0.1 s "
              f"{s[ONSET_KEY]['mean']:.3f} ± {s[ONSET_KEY]['std']:.3f}, {s['seconds_per_clip']['mean']:.1f} s/clip{extra}")
    print(f"total {report['seconds']} s")


if __name__ == "__main__":
    main()
