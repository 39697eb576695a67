"""Style-adapter benchmark on the synthetic Foley scenes: does a reference recording set the timbre?

    python benchmarks/bench_style.py prepare  --work /tmp/style --train-clips /tmp/embedded/work/train_clips \
        --features /tmp/embedded/work/features
    python benchmarks/bench_style.py train    --work /tmp/style --stage1-steps 330 --stage2-steps 60 --lr 1e-2
    python benchmarks/bench_style.py evaluate --work /tmp/style --adapter /tmp/style/adapter.safetensors \
        --clips 40 --out docs/results/style_adapter_benchmark.json

prepare: copies the feature folder (read-only sources stay untouched), renders for every training
  clip a "rest of the recording" — a further 4 s of the same scene and material from another
  seed — and writes <clip>.wav = [the clip's own 4 s | that continuation], so stage 2 of AC-Foley
  (reference segments of the same recording that do not overlap the target) has material to
  draw from; then `python -m foley_core.training references` (2 s segments, acoustic vector).
train: stage 1 (reference inside the target) then stage 2 (non-overlapping segments), both on
  the frozen embedded backbone, exported with `export-adapter`.
evaluate: held-out clips (seeds far from the training ones). Isolating the reference's effect:
  the model gets NO caption (the empty prompt; captions name the material) and, by default, NO
  CLIP features (the learned empty ones — the picture shows the material by colour and texture);
  the Synchformer features stay, so timing still comes from the video. For clip i the own
  reference is the loudest 2 s of its recording's continuation (same material, other events, no
  overlap with the target) and the other reference is clip j's, j the next held-out clip of
  another material. Each clip is generated three times with the same seed: no reference, its own
  reference, and the other reference (the swap test: the output must follow the reference, not the
  video). No latent prompting: only the adapter's global path is measured.
Metrics: metrics/timbre.closer_to_own_than_other (MFCC descriptor distance to the reference
  audio), onset accuracy at 0.1 s vs the ground-truth event times (metrics/onsets).

Not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from foley_core.decoding import decode_latents  # noqa: E402
from foley_core.features import encode_visual  # noqa: E402
from foley_core.generation import GenerationSettings, generate  # noqa: E402
from foley_core.media.video import sample_video  # noqa: E402
from foley_core.metrics import onset_scores  # noqa: E402
from foley_core.metrics.timbre import closer_to_own_than_other, timbre_descriptor  # noqa: E402
from foley_core.models.style_adapter import apply_style, load_adapter  # noqa: E402
from foley_core.style import encode_reference  # noqa: E402
from foley_core.synthetic_foley import make_clip  # noqa: E402
from foley_core.synthetic_foley.dataset import write_wav  # noqa: E402
from foley_core.synthetic_foley.scenes import ONSET_KINDS  # noqa: E402

EMBEDDED = REPO_ROOT / "embedded_models"
CONTINUATION_SEED = 0x5EED_2025  # xor-ed into a clip's seed for "the rest of its recording"
HELD_OUT_SEED_OFFSET = 2_000_000  # far from the training seeds and from the main benchmark's
REFERENCE_S = 2.0
SAMPLE_RATE = 16000


# One thread: on a shared, busy CPU more OpenMP threads make the tiny models much slower.
SUBPROCESS_ENV = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}


def log(message: str) -> None:
    print(f"[bench_style {time.strftime('%H:%M:%S')}] {message}", flush=True)


def continuation(seed: int, scene: str, material: str, duration: float) -> np.ndarray:
    """A further stretch of the same scene and material: the rest of the clip's recording."""
    return make_clip(seed ^ CONTINUATION_SEED, duration_s=duration, fps=25, sample_rate=SAMPLE_RATE,
                     size=32, scene=scene, material=material).audio


def loudest_segment(audio: np.ndarray, seconds: float) -> float:
    """Offset (s) of the `seconds`-long window with the most energy (10 ms grid)."""
    n, hop = int(seconds * SAMPLE_RATE), SAMPLE_RATE // 100
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    starts = np.arange(0, len(audio) - n + 1, hop)
    return float(starts[np.argmax(energy[starts + n] - energy[starts])] / SAMPLE_RATE)


# --------------------------------------------------------------------------------- prepare
def prepare(work: Path, train_clips: Path, features: Path, segment: float, per_stage: int) -> None:
    import subprocess

    from foley_core.media.audio import decode_audio_stream

    work.mkdir(parents=True, exist_ok=True)
    feat = work / "features"
    if not (feat / "index.json").exists():
        shutil.copytree(features, feat)
    index = json.loads((train_clips / "index.json").read_text())
    sources = work / "sources"
    sources.mkdir(exist_ok=True)
    for k, clip in enumerate(index["clips"]):
        out = sources / f"{clip['name']}.wav"
        if out.exists():
            continue
        own, rate = decode_audio_stream(train_clips / f"{clip['name']}.wav")
        assert rate == SAMPLE_RATE
        rest = continuation(clip["seed"], clip["scene"], clip["material"], index["duration_s"])
        write_wav(out, np.concatenate([own[0].numpy(), rest]), SAMPLE_RATE)
        if (k + 1) % 100 == 0:
            log(f"continuations: {k + 1}/{len(index['clips'])}")
    subprocess.run([sys.executable, "-m", "foley_core.training", "references", "--features", str(feat),
                    "--vae", str(EMBEDDED / "foley_embedded_vae_16k.safetensors"), "--sources", str(sources),
                    "--segment", str(segment), "--per-stage", str(per_stage)], check=True, cwd=REPO_ROOT, env=SUBPROCESS_ENV)


# ----------------------------------------------------------------------------------- train
def train(work: Path, stage1_steps: int, stage2_steps: int, batch_size: int, text_dropout: float,
          clip_dropout: float, hidden_dim: int, lr: float, device: str = "cpu") -> Path:
    import subprocess

    backbone = EMBEDDED / "foley_embedded_16k.safetensors"
    base = {"backbone": str(backbone), "parts": ["acoustic"], "hidden_dim": hidden_dim, "batch_size": batch_size,
            "lr": lr, "reference_dropout": 0.1, "text_dropout": text_dropout, "clip_dropout": clip_dropout,
            "video_dropout": 0.0, "warmup_steps": 30, "checkpoint_every": 100, "log_every": 10}
    previous = None
    for stage, steps in ((1, stage1_steps), (2, stage2_steps)):
        if steps <= 0:
            continue
        run = work / f"stage{stage}"
        config = dict(base, stage=stage, steps=steps, init_adapter=str(previous) if previous else None)
        (work / f"stage{stage}.json").write_text(json.dumps(config, indent=1))
        command = [sys.executable, "-m", "foley_core.training", "train-adapter", "--features",
                   str(work / "features"), "--out", str(run), "--device", device]
        command += ["--resume"] if (run / "checkpoint.pt").exists() else ["--config", str(work / f"stage{stage}.json")]
        log(f"stage {stage}: {steps} steps")
        subprocess.run(command, check=True, cwd=REPO_ROOT, env=SUBPROCESS_ENV)
        previous = work / f"adapter_stage{stage}.safetensors"
        subprocess.run([sys.executable, "-m", "foley_core.training", "export-adapter", "--run", str(run),
                        "--out", str(previous)], check=True, cwd=REPO_ROOT, env=SUBPROCESS_ENV)
    final = work / "adapter.safetensors"
    shutil.copyfile(previous, final)
    log(f"adapter: {final}")
    return final


# -------------------------------------------------------------------------------- evaluate
def _models():
    from foley_core.evaluation.synthetic_benchmark import load_model_set

    return load_model_set(EMBEDDED)


def held_out_clips(n: int, seed: int, duration: float) -> list[dict]:
    clips = []
    for i in range(n):
        clip = make_clip(HELD_OUT_SEED_OFFSET + seed + i, duration_s=duration, fps=25,
                         sample_rate=SAMPLE_RATE, size=128)
        rest = continuation(clip.meta["seed"], clip.meta["scene"], clip.meta["material"], duration)
        start = loudest_segment(rest, REFERENCE_S)
        reference = rest[int(start * SAMPLE_RATE):int(start * SAMPLE_RATE) + int(REFERENCE_S * SAMPLE_RATE)]
        clips.append({"clip": clip, "reference": reference.astype(np.float32), "reference_offset_s": start})
    for i, item in enumerate(clips):  # the other reference: the next clip of another material
        material = item["clip"].meta["material"]
        j = next((k % n for k in range(i + 1, i + n) if clips[k % n]["clip"].meta["material"] != material), None)
        if j is None:
            raise SystemExit("all held-out clips have the same material; use more clips")
        item["other"] = j
    return clips


def evaluate(adapter_path: Path | None, n_clips: int, seed: int, duration: float, steps: int, cfg: float,
             video: str, strength: float = 1.0, device: str = "cpu") -> dict:
    models = _models()
    net, vae = models.network, models.vae
    adapter = load_adapter(adapter_path)[0] if adapter_path else None
    # Sampling + decoding on `device`; the video encoders and metrics stay on the CPU. Only the CPU
    # path has been measured so far (this repo's tree fills the GPU machine's 64 MiB transfer).
    dev = torch.device(device)
    for module in (net, vae, models.vocoder, adapter):
        if module is not None:
            module.to(dev)
    clips = held_out_clips(n_clips, seed, duration)
    styles = [encode_reference(vae, torch.from_numpy(c["reference"])[None], SAMPLE_RATE, models.mode,
                               prompt_s=REFERENCE_S) for c in clips]
    ref_desc = [timbre_descriptor(c["reference"], SAMPLE_RATE) for c in clips]
    conditions = ["none"] + (["own", "other"] if adapter is not None else [])
    outputs = {c: [] for c in conditions}
    per_clip, started = [], time.monotonic()
    for i, item in enumerate(clips):
        clip = item["clip"]
        frames = sample_video(torch.from_numpy(clip.frames), frame_rate=clip.fps)
        features = encode_visual(models.clip, models.synchformer, frames.clip_frames, frames.sync_frames,
                                 frames.duration_s, "", "")
        if video == "sync_only":  # the picture's material cues out, the timing in
            features.clip_f = net.empty_clip_feat.detach().float().expand(1, features.clip_f.shape[1], -1).clone()
        gt = [e["time_s"] for e in clip.meta["events"] if e["kind"] in ONSET_KINDS]
        row = {"seed": clip.meta["seed"], "scene": clip.meta["scene"], "material": clip.meta["material"],
               "other_material": clips[item["other"]]["clip"].meta["material"],
               "reference_offset_s": item["reference_offset_s"]}
        for condition in conditions:
            style = {"none": None, "own": styles[i], "other": styles[item["other"]]}[condition]
            network = apply_style(net, adapter, style, strength=strength) if style is not None else net
            latents, lengths = generate(network, features, models.mode,
                                        GenerationSettings(seed=clip.meta["seed"], steps=steps, cfg_strength=cfg),
                                        device=dev)
            wave = decode_latents(vae, models.vocoder, latents, lengths.samples)[0, 0].cpu().numpy()
            desc = timbre_descriptor(wave, SAMPLE_RATE)
            outputs[condition].append(desc)
            scores = onset_scores(wave, SAMPLE_RATE, gt, tolerances=(0.1, 0.3))
            row[condition] = {"onset_acc@0.1s": scores["onset_acc@0.1s"], "onset_acc@0.3s": scores["onset_acc@0.3s"],
                              "d_own_ref": float(np.linalg.norm(desc - ref_desc[i])),
                              "d_other_ref": float(np.linalg.norm(desc - ref_desc[item["other"]]))}
        per_clip.append(row)
        if (i + 1) % 10 == 0 or i + 1 == n_clips:
            log(f"{i + 1}/{n_clips} clips ({time.monotonic() - started:.0f} s)")
    own = ref_desc
    other = [ref_desc[c["other"]] for c in clips]
    summary = {"no_reference": {
        "closer_to_own_reference": closer_to_own_than_other(outputs["none"], own, other),
        "onset_acc@0.1s": float(np.mean([r["none"]["onset_acc@0.1s"] for r in per_clip])),
        "onset_acc@0.3s": float(np.mean([r["none"]["onset_acc@0.3s"] for r in per_clip]))}}
    if adapter is not None:
        summary["own_reference"] = {
            "closer_to_own_reference": closer_to_own_than_other(outputs["own"], own, other),
            "onset_acc@0.1s": float(np.mean([r["own"]["onset_acc@0.1s"] for r in per_clip])),
            "onset_acc@0.3s": float(np.mean([r["own"]["onset_acc@0.3s"] for r in per_clip]))}
        summary["other_reference_swap"] = {
            "closer_to_given_reference": closer_to_own_than_other(outputs["other"], other, own),
            "onset_acc@0.1s": float(np.mean([r["other"]["onset_acc@0.1s"] for r in per_clip]))}
        summary["onset_acc@0.1s_drop"] = (summary["no_reference"]["onset_acc@0.1s"]
                                          - summary["own_reference"]["onset_acc@0.1s"])
    return {"adapter": str(adapter_path) if adapter_path else None, "n_clips": n_clips, "seed": seed,
            "duration_s": duration, "steps": steps, "cfg": cfg, "video": video, "caption": "", "strength": strength,
            "reference_s": REFERENCE_S, "summary": summary, "clips": per_clip,
            "seconds": round(time.monotonic() - started, 1),
            "machine": (f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads" if dev.type == "cpu"
                        else f"{torch.cuda.get_device_name(dev)} (sampling/decoding), "
                             f"{torch.get_num_threads()} CPU threads")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--train-clips", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--segment", type=float, default=REFERENCE_S)
    p.add_argument("--per-stage", type=int, default=4)
    t = sub.add_parser("train")
    t.add_argument("--work", required=True, type=Path)
    t.add_argument("--stage1-steps", type=int, default=330)
    t.add_argument("--stage2-steps", type=int, default=60)
    t.add_argument("--batch-size", type=int, default=12)
    t.add_argument("--text-dropout", type=float, default=1.0, help="1 = always caption-free (see evaluate)")
    t.add_argument("--clip-dropout", type=float, default=1.0, help="1 = always without CLIP features")
    t.add_argument("--hidden-dim", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-2)
    t.add_argument("--device", default="cpu", help="train-adapter's --device (cpu, cuda, auto)")
    e = sub.add_parser("evaluate")
    e.add_argument("--adapter", type=Path, help="adapter file; without it only the no-reference baseline runs")
    e.add_argument("--clips", type=int, default=40)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--duration", type=float, default=4.0)
    e.add_argument("--steps", type=int, default=25)
    e.add_argument("--cfg", type=float, default=4.5)
    e.add_argument("--video", choices=["sync_only", "full"], default="sync_only")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--strength", type=float, default=1.0, help="adapter strength (F_style multiplier)")
    e.add_argument("--device", default="cpu", help="device for sampling and decoding (cpu, cuda)")
    e.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.work, args.train_clips, args.features, args.segment, args.per_stage)
    elif args.command == "train":
        train(args.work, args.stage1_steps, args.stage2_steps, args.batch_size, args.text_dropout,
              args.clip_dropout, args.hidden_dim, args.lr, args.device)
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        report = evaluate(args.adapter, args.clips, args.seed, args.duration, args.steps, args.cfg, args.video,
                          args.strength, args.device)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        print(json.dumps(report["summary"], indent=1))


if __name__ == "__main__":
    main()
