"""The synthetic Foley benchmark: held-out procedural clips with known event times and materials.

For each clip the model generates audio from the video (and, as a control, with the video
features masked — the learned empty features — so only the caption is left), and we measure:
- onset accuracy / AP against the ground-truth event times at 0.1 s and 0.3 s (metrics/onsets.py;
  accuracy = recall of ground-truth onsets, AP = detection AP with onset strength as confidence);
- E-L1 between the RMS envelopes of the output and of the clip's true soundtrack;
- timbre distance to the true soundtrack, and how often an output is closer (timbre) to its own
  clip's soundtrack than to a clip of another material.
The true soundtracks themselves are scored too (the detector's ceiling).

With `envelope_from_video` the "video" condition is the embedded set's whole temporal pipeline:
the RMS-Mapper predicts an envelope from the frames and the envelope ControlNet steers the flow
network with it (the masked condition has neither: without the video there is no envelope).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..decoding import decode_latents
from ..features import encode_visual
from ..generation import GenerationSettings, generate
from ..media.video import sample_video
from ..metrics import envelope_l1_audio, onset_scores, timbre_distance
from ..models import builders
from ..synthetic_foley import make_clip
from ..synthetic_foley.scenes import ONSET_KINDS

TOLERANCES = (0.1, 0.3)
HELD_OUT_SEED_OFFSET = 1_000_000  # far from the training seeds (clip_seeds(0, n) of the recipe)


@dataclass
class ModelSet:
    network: torch.nn.Module
    mode: str
    clip: torch.nn.Module
    synchformer: torch.nn.Module
    vae: torch.nn.Module
    vocoder: torch.nn.Module
    sample_rate: int
    rms_mapper: Optional[torch.nn.Module] = None
    controlnet: Optional[torch.nn.Module] = None


def load_model_set(folder: Path, envelope_from_video: bool = False) -> ModelSet:
    """An embedded-style folder: manifest.json naming network / clip / synchformer / vae files."""
    manifest = json.loads((folder / "manifest.json").read_text())
    files = manifest["files"]
    built = builders.build_network(folder / files["network"])
    vae = builders.build_vae(folder / files["vae"])
    vocoder_file = files.get("vocoder")
    vocoder = builders.build_vocoder(folder / vocoder_file if vocoder_file else None, vae.cfg.mode)
    sample_rate, _ = builders.codec_rates(vae.cfg.mode)
    models = ModelSet(built.network, built.mode or vae.cfg.mode, builders.build_clip(folder / files["clip"]),
                      builders.build_synchformer(folder / files["synchformer"]), vae, vocoder, sample_rate)
    if envelope_from_video:
        from ..controls.controlnet import load_controlnet
        from ..models.rms_mapper import load_mapper

        missing = [k for k in ("rms_mapper", "controlnet") if k not in files]
        if missing:
            raise FileNotFoundError(f"{folder}/manifest.json names no {' or '.join(missing)} file; "
                                    "the envelope-from-video benchmark needs both.")
        models.rms_mapper = load_mapper(folder / files["rms_mapper"])[0]
        models.controlnet = load_controlnet(folder / files["controlnet"])[0]
    return models


def _caption(clip) -> str:
    return f"{clip.meta['material']} {clip.meta['scene']}"


def evaluate_clip(models: ModelSet, seed: int, duration: float, steps: int, cfg: float) -> dict:
    clip = make_clip(seed, duration_s=duration, fps=25, sample_rate=models.sample_rate, size=128)
    video = sample_video(torch.from_numpy(clip.frames), frame_rate=clip.fps)
    gt_onsets = [e["time_s"] for e in clip.meta["events"] if e["kind"] in ONSET_KINDS]
    truth = clip.audio.astype(np.float32)
    result = {"seed": seed, "scene": clip.meta["scene"], "material": clip.meta["material"],
              "n_events": len(gt_onsets), "truth": _scores(truth, truth, models.sample_rate, gt_onsets)}
    for condition, masked in (("video", False), ("masked", True)):
        features = encode_visual(models.clip, models.synchformer, video.clip_frames, video.sync_frames,
                                 video.duration_s, _caption(clip), "", mask_video=masked)
        network = models.network
        if models.controlnet is not None and not masked:
            network = _controlled_by_predicted_envelope(models, clip, duration)
        latents, lengths = generate(network, features, models.mode,
                                    GenerationSettings(seed=seed, steps=steps, cfg_strength=cfg),
                                    device=torch.device("cpu"))
        wave = decode_latents(models.vae, models.vocoder, latents, lengths.samples)[0, 0].numpy()
        result[condition] = _scores(wave, truth, models.sample_rate, gt_onsets)
        result[condition]["_wave"] = wave
    result["_truth"] = truth
    return result


def _controlled_by_predicted_envelope(models: ModelSet, clip, duration: float):
    """The flow network steered by the ControlNet with the RMS-Mapper's envelope of the frames."""
    from ..controls.controlnet import apply_controlnet
    from ..models.rms_mapper import mapper_envelope

    envelope, _ = mapper_envelope(models.rms_mapper, clip.frames, clip.fps, duration)
    return apply_controlnet(models.network, models.controlnet, envelope)


def _scores(wave: np.ndarray, truth: np.ndarray, sample_rate: int, gt_onsets) -> dict:
    scores = onset_scores(wave, sample_rate, gt_onsets, tolerances=TOLERANCES)
    scores["e_l1"] = envelope_l1_audio(wave, sample_rate, truth, sample_rate)
    scores["timbre_distance"] = timbre_distance((wave, sample_rate), (truth, sample_rate))
    return scores


def _own_material_rate(results: list[dict], condition: str, sample_rate: int) -> float:
    """Fraction of (clip, other-material clip) pairs where the output is closer in timbre to its
    own clip's soundtrack than to the other clip's."""
    wins = total = 0
    for a in results:
        for b in results:
            if a["material"] == b["material"]:
                continue
            own = timbre_distance((a[condition]["_wave"], sample_rate), (a["_truth"], sample_rate))
            other = timbre_distance((a[condition]["_wave"], sample_rate), (b["_truth"], sample_rate))
            wins += own < other
            total += 1
    return wins / total if total else float("nan")


def summarize(results: list[dict], sample_rate: int) -> dict:
    summary = {}
    for condition in ("video", "masked", "truth"):
        keys = [k for k in results[0][condition] if not k.startswith("_") and k not in ("n_pred", "n_gt")]
        summary[condition] = {}
        for key in keys:
            values = [r[condition][key] for r in results]
            summary[condition][key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
        if condition != "truth":
            summary[condition]["own_material_timbre_rate"] = _own_material_rate(results, condition, sample_rate)
    return summary


def run(models_dir: Path, n_clips: int, seed: int, duration: float, steps: int, cfg: float,
        log=print, envelope_from_video: bool = False) -> dict:
    models = load_model_set(models_dir, envelope_from_video)
    results, started = [], time.monotonic()
    for i in range(n_clips):
        results.append(evaluate_clip(models, HELD_OUT_SEED_OFFSET + seed + i, duration, steps, cfg))
        if (i + 1) % 10 == 0 or i + 1 == n_clips:
            log(f"[benchmark] {i + 1}/{n_clips} clips ({time.monotonic() - started:.0f} s)")
    summary = summarize(results, models.sample_rate)
    per_clip = [{k: ({kk: vv for kk, vv in v.items() if not kk.startswith("_")} if isinstance(v, dict) else v)
                 for k, v in r.items() if not k.startswith("_")} for r in results]
    return {"models": str(models_dir), "n_clips": n_clips, "seed": seed, "duration_s": duration,
            "steps": steps, "cfg": cfg, "envelope_from_video": envelope_from_video,
            "summary": summary, "clips": per_clip,
            "seconds": round(time.monotonic() - started, 1)}


def markdown_table(report: dict) -> str:
    s = report["summary"]
    rows = [("onset acc @0.1 s", "onset_acc@0.1s"), ("onset acc @0.3 s", "onset_acc@0.3s"),
            ("onset AP (detection) @0.1 s", "onset_ap_det@0.1s"), ("onset AP (detection) @0.3 s", "onset_ap_det@0.3s"),
            ("onset AP (CondFoleyGen) @0.1 s", "onset_ap@0.1s"), ("E-L1 vs true soundtrack ↓", "e_l1"),
            ("timbre distance to true soundtrack ↓", "timbre_distance")]
    lines = ["| metric | with video | video masked | true soundtrack |", "|---|---|---|---|"]
    for label, key in rows:
        cells = [f"{s[c][key]['mean']:.3f} ± {s[c][key]['std']:.3f}" for c in ("video", "masked", "truth")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(f"| closer to own material than another (timbre) | {s['video']['own_material_timbre_rate']:.3f} | "
                 f"{s['masked']['own_material_timbre_rate']:.3f} | – |")
    return "\n".join(lines)
