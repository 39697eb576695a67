"""Build the embedded default model set from scratch on the synthetic Foley data (CPU, ~1 hour).

    python -m foley_core.training.embedded_recipe --work /tmp/foley_embedded --out embedded_models

Stages (`--stages`, default all three):
- base: synthetic training clips → small frozen encoders (small_encoders.py) → a small mel VAE
  (vae_trainer.py) → features (extract) → flow network (train) → export;
- mapper, controlnet: the control stages (embedded_controls.py) — RMS-Mapper (video → envelope) and
  an envelope ControlNet on the flow network, which make the set follow the video.
Every step uses the same engine and file formats a user's training does; the result loads through
the plugin's loaders. The vocoder is the built-in Griffin-Lim (no weights). `--stages
mapper,controlnet` re-runs only the control stages on an existing WORK/OUT (the features are reused).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..media.audio import decode_audio_stream
from ..synthetic_foley import generate_dataset
from .config import TrainConfig
from .embedded_controls import ControlSettings, build_controls
from .export import export_network
from .extract import extract_features, load_encoders
from .loop import train
from .small_encoders import small_clip_state_dict, small_synchformer_state_dict
from .vae_trainer import VAETrainingConfig, train_vae

STAGES = ("base", "mapper", "controlnet")
MODE = "16k"
FILES = {
    "network": "foley_embedded_16k.safetensors",
    "vae": "foley_embedded_vae_16k.safetensors",
    "clip": "foley_embedded_clip.safetensors",
    "synchformer": "foley_embedded_synchformer.safetensors",
}
NETWORK = {"latent_dim": 20, "hidden_dim": 128, "depth": 4, "fused_depth": 2, "num_heads": 2,
           "clip_dim": 32, "sync_dim": 64, "text_dim": 32, "v2": True}


def caption(meta: dict) -> str:
    return f"{meta['material']} {meta['scene']}"


def log(message: str) -> None:
    print(f"[embedded {time.strftime('%H:%M:%S')}] {message}", flush=True)


def build(work: Path, out: Path, *, train_clips: int, duration: float, vae_steps: int,
          flow_minutes: float, batch_size: int, seed: int, sync_pretext_steps: int = 0,
          pretext_clips: int = 200, flow_steps: int = 0, stages: tuple[str, ...] = STAGES,
          controls: ControlSettings | None = None) -> dict:
    """Run the chosen stages and write OUT (files + manifest.json); returns the manifest."""
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    if "base" in stages:
        manifest = build_base(work, out, train_clips=train_clips, duration=duration, vae_steps=vae_steps,
                              flow_minutes=flow_minutes, batch_size=batch_size, seed=seed,
                              sync_pretext_steps=sync_pretext_steps, pretext_clips=pretext_clips,
                              flow_steps=flow_steps)
    elif (out / "manifest.json").is_file():
        manifest = json.loads((out / "manifest.json").read_text())
        duration = manifest["trained_on"]["duration_s"]
    else:
        raise FileNotFoundError(f"{out / 'manifest.json'} not found: the control stages need a set built by "
                                "the base stage (add 'base' to --stages)")
    control_stages = set(stages) - {"base"}
    if control_stages:
        build_controls(work, out, manifest, stages=control_stages, duration=duration,
                       settings=controls or ControlSettings(seed=seed), log=log)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    log(f"wrote {out}")
    return manifest


def build_base(work: Path, out: Path, *, train_clips: int, duration: float, vae_steps: int,
               flow_minutes: float, batch_size: int, seed: int, sync_pretext_steps: int,
               pretext_clips: int, flow_steps: int) -> dict:
    """Clips → encoders → VAE → features → flow network; returns the manifest (not yet written)."""
    work.mkdir(parents=True, exist_ok=True)
    data = work / "train_clips"
    if not (data / "index.json").exists():
        log(f"generating {train_clips} synthetic clips of {duration} s")
        generate_dataset(data, train_clips, seed, duration_s=duration, fps=25, sample_rate=16000, size=128)
    index = json.loads((data / "index.json").read_text())
    captions = {f"{c['name']}.mp4": caption(c) for c in index["clips"]}
    (work / "captions.json").write_text(json.dumps(captions, indent=1))

    encoders_dir = work / "encoders"
    encoders_dir.mkdir(exist_ok=True)
    clip_file, sync_file = encoders_dir / FILES["clip"], encoders_dir / FILES["synchformer"]
    save_file(small_clip_state_dict(seed), str(clip_file))
    sync_state = small_synchformer_state_dict(seed + 1)
    if sync_pretext_steps > 0 and not (encoders_dir / "sync_pretext.json").exists():
        log(f"training the Synchformer-shaped encoder on the clips' own sound ({sync_pretext_steps} steps)")
        sync_state, pretext_log = _pretext_synchformer(sync_state, index, duration, sync_pretext_steps,
                                                       pretext_clips, seed)
        (encoders_dir / "sync_pretext.json").write_text(json.dumps(pretext_log, indent=1))
        save_file(sync_state, str(sync_file))
    elif not sync_file.exists():
        save_file(sync_state, str(sync_file))

    vae_dir = work / "vae"
    if not (vae_dir / "vae.pth").exists():
        log(f"training the VAE for {vae_steps} steps")
        waves = []
        for clip in index["clips"]:
            wave, _ = decode_audio_stream(data / f"{clip['name']}.wav")
            waves.append(wave.mean(0))
        train_vae(waves, VAETrainingConfig(mode=MODE, embed_dim=NETWORK["latent_dim"], hidden_dim=16,
                                           crop_frames=128, batch_size=16, steps=vae_steps,
                                           seed=seed, log_every=250), vae_dir, log=log)
    vae_file = vae_dir / "vae.pth"

    features = work / "features"
    if not (features / "index.json").exists():
        log("extracting features")
        encoders = load_encoders(clip_file, sync_file, vae_file, MODE)
        extract_features(data, features, encoders, mode=MODE, duration_s=duration, captions=captions,
                         shard_size=128, batch_size=8, report=log)

    run = work / "run"
    config = TrainConfig(network=NETWORK, mode=MODE, duration_s=duration, batch_size=batch_size,
                         lr=1e-3, warmup_steps=200, steps=1, ema_decay=0.998, seed=seed,
                         checkpoint_every=500, log_every=50)
    # A fixed step count reproduces a committed set exactly; a minute budget adapts to the machine.
    steps = flow_steps or _steps_for_budget(features, config, work / "calibration", flow_minutes)
    config = TrainConfig(**{**asdict(config), "steps": steps})
    config_file = work / "run.json"
    config_file.write_text(json.dumps(asdict(config), indent=1))
    log(f"training the flow network for {steps} steps")
    train(features, TrainConfig.load(config_file), run, resume=(run / "checkpoint.pt").exists(),
          device="cpu")

    out.mkdir(parents=True, exist_ok=True)
    export_network(run, out / FILES["network"], use_ema=True, fp16=True)
    vae_state = torch.load(vae_file, weights_only=True)
    save_file({k: (v.half() if k not in ("data_mean", "data_std") else v) for k, v in vae_state.items()},
              str(out / FILES["vae"]))
    for name, source in (("clip", clip_file), ("synchformer", sync_file)):
        from safetensors.torch import load_file

        save_file({k: v.half() for k, v in load_file(str(source)).items()}, str(out / FILES[name]))
    manifest = {
        "format": "foley-imitator-embedded/1", "mode": MODE, "files": dict(FILES), "vocoder": "griffin-lim",
        "trained_on": {"synthetic_clips": train_clips, "duration_s": duration, "seed": seed},
        "network": NETWORK, "flow_steps": steps, "batch_size": batch_size,
        "sync_pretext_steps": sync_pretext_steps, "pretext_clips": pretext_clips,
        "recipe": "python -m foley_core.training.embedded_recipe",
        "training_logs": {"flow": "training_log.jsonl", "vae": "vae_training.json"},
    }
    shutil.copyfile(run / "log.jsonl", out / "training_log.jsonl")
    shutil.copyfile(vae_dir / "vae_training.json", out / "vae_training.json")
    _keep_add_ons(out / "manifest.json", manifest)
    return manifest


# Add-ons that read only the video (through the fixed-seed encoders), not the flow network.
VIDEO_ONLY_ADD_ONS = ("rms_mapper", "layout_predictor")


def _keep_add_ons(path: Path, manifest: dict) -> None:
    """Carry over the add-ons of an existing manifest (RMS-Mapper, ControlNet, style adapter: trained by
    their own commands, docs/training.md) whose files are still there, instead of dropping them."""
    if not path.exists():
        return
    old = json.loads(path.read_text())
    for key, name in old.get("files", {}).items():
        if key in FILES or not (path.parent / name).exists():
            continue
        manifest["files"][key] = name
        if key in old:
            manifest[key] = old[key]
        if key in old.get("training_logs", {}) and (path.parent / old["training_logs"][key]).exists():
            manifest.setdefault("training_logs", {})[key] = old["training_logs"][key]
        if key not in VIDEO_ONLY_ADD_ONS:  # the others were fitted to the old network
            log(f"kept {name}; it was trained against the previous flow network: retrain it for this one")


def _pretext_synchformer(state: dict, index: dict, duration: float, steps: int, n_clips: int,
                         seed: int) -> tuple[dict, dict]:
    """Audio-visual pretext (sync_pretext.py) on the first n_clips training clips, regenerated in
    memory from their seeds."""
    from ..media.video import sample_video
    from ..models.synchformer import SynchformerVisualEncoder
    from ..synthetic_foley import make_clip
    from .small_encoders import SYNC_CONFIG
    from .sync_pretext import token_targets, train_sync_encoder

    encoder = SynchformerVisualEncoder(SYNC_CONFIG)
    encoder.load_state_dict(state)
    clips = []
    for entry in index["clips"][:n_clips]:
        clip = make_clip(entry["seed"], duration_s=duration, fps=25, sample_rate=16000, size=128)
        video = sample_video(torch.from_numpy(clip.frames), frame_rate=clip.fps)
        clips.append((video.sync_frames, token_targets(clip.audio, 16000, video.sync_frames.shape[0])))
    result = train_sync_encoder(encoder, clips, steps=steps, seed=seed, log=log)
    return {k: v.detach().clone().contiguous() for k, v in encoder.state_dict().items()}, result


def _steps_for_budget(features: Path, config: TrainConfig, scratch: Path, minutes: float) -> int:
    """Time a few steps on this machine and size the run to the budget."""
    shutil.rmtree(scratch, ignore_errors=True)
    probe = TrainConfig(**{**asdict(config), "steps": 12, "warmup_steps": 1, "checkpoint_every": 1000})
    started = time.monotonic()
    train(features, probe, scratch, device="cpu")
    per_step = (time.monotonic() - started) / 12
    shutil.rmtree(scratch, ignore_errors=True)
    steps = max(200, int(minutes * 60 / per_step))
    log(f"{per_step:.2f} s per step")
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--train-clips", type=int, default=480)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--flow-minutes", type=float, default=35.0,
                        help="flow-training budget; the step count is calibrated on this machine")
    parser.add_argument("--flow-steps", type=int, default=0,
                        help="fixed flow-training steps (overrides --flow-minutes; 0 = use the budget)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sync-pretext-steps", type=int, default=0,
                        help="audio-visual pretext for the Synchformer-shaped encoder (0 = random, as the "
                             "committed set; 600 steps were tried and did not improve onset accuracy)")
    parser.add_argument("--pretext-clips", type=int, default=200)
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated subset of base,mapper,controlnet (e.g. 'mapper,controlnet' "
                             "retrains the controls on an existing WORK and OUT)")
    parser.add_argument("--mapper-minutes", type=float, default=15.0,
                        help="RMS-Mapper training budget (feature extraction not included)")
    parser.add_argument("--mapper-epochs", type=int, default=0, help="fixed epochs (overrides --mapper-minutes)")
    parser.add_argument("--controlnet-minutes", type=float, default=30.0, help="ControlNet training budget")
    parser.add_argument("--controlnet-steps", type=int, default=0,
                        help="fixed ControlNet steps (overrides --controlnet-minutes)")
    parser.add_argument("--controlnet-batch-size", type=int, default=12)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    controls = ControlSettings(mapper_epochs=args.mapper_epochs, mapper_minutes=args.mapper_minutes,
                               controlnet_steps=args.controlnet_steps, controlnet_minutes=args.controlnet_minutes,
                               controlnet_batch_size=args.controlnet_batch_size, seed=args.seed)
    build(Path(args.work), Path(args.out), train_clips=args.train_clips, duration=args.duration,
          vae_steps=args.vae_steps, flow_minutes=args.flow_minutes, batch_size=args.batch_size,
          seed=args.seed, sync_pretext_steps=args.sync_pretext_steps, pretext_clips=args.pretext_clips,
          flow_steps=args.flow_steps, stages=tuple(s.strip() for s in args.stages.split(",") if s.strip()),
          controls=controls)


if __name__ == "__main__":
    main()
