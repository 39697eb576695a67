"""RMS-Mapper training (models/rms_mapper.py): extract features once, train, export.

    python -m foley_core.training rms-mapper extract --clips DIR --out FEATURES [--duration 4] [--raft W]
    python -m foley_core.training rms-mapper train --features FEATURES --out RUN [--epochs N ...] [--resume]
    python -m foley_core.training rms-mapper export --run RUN --out mapper.safetensors
    (also `python -m foley_core.training.rms_mapper_trainer ...`; multi-process:
     `torchrun --nproc_per_node N -m foley_core.training rms-mapper train ...`, gloo on CPU)

`extract` reads every video of DIR (.mp4/.mov/.mkv/.webm) with its sound (a sibling .wav of the
same stem when there is one, e.g. the synthetic set's, else the video's own audio track). Frames:
decoded with PyAV, resized exactly as FoleyLoadVideo's 25 fps stream (224 px, short side + centre
crop, bicubic) and picked by timestamp at 25 fps (rotation metadata is ignored); features:
controls/mapper_features.py. Target: the clip's RMS envelope (controls/envelope.rms_envelope, the
paper's extraction) over the first `duration` seconds; shorter clips are skipped. Everything goes
into FEATURES/rms_mapper_features.safetensors.

`train`: cross-entropy between the mapper's logits and the Gaussian-smoothed μ-law targets
(σ = 1, Eq. 9/10; rows normalised to sum to 1 — a choice: a proper distribution per frame). Adam,
lr 1e-3, weight decay 1e-3 (the paper's), constant lr; batch and epochs are settings (paper: 64 and
500 on a GPU; the default here fits a few CPU minutes). The last `val_clips` clips are held out and
their E-L1 is logged at every checkpoint. Checkpoints (every `checkpoint_every` epochs, atomic,
weights-only) hold model, optimizer and RNG state; --resume continues from the last one.
Its epoch loop (constant-lr Adam, no EMA, per-epoch checkpoints with validation, BatchNorm
buffers) stays here rather than in training/driver.py, whose preamble and helpers it uses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from ..controls.envelope import mu_law_encode, rms_envelope, smoothed_targets
from ..controls.mapper_features import FEATURE_RATE, FEATURE_VERSION, RaftFlow, flow_method, frames_at_rate, \
    video_features
from ..errors import FoleyError
from ..models.rms_mapper import RMSMapper, RMSMapperConfig, decode_logits, envelope_frames, save_mapper
from .checkpoint import CHECKPOINT_NAME, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .config import JsonConfig
from .driver import FINAL_NAME, LOG_NAME, all_gather, end_process_group, epoch_batches, prepare_run, truncate_log

FEATURES_NAME = "rms_mapper_features.safetensors"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")


# ------------------------------------------------------------------------------ extraction
def decode_video_frames(path: Path, duration_s: float) -> torch.Tensor:
    """uint8 [round(25·duration), 3, 224, 224]: the clip as FoleyLoadVideo's 25 fps stream sees it."""
    import av

    from ..media.frame_sampling import SYNC_STREAM

    pictures, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if frame.time > duration_s + 1.0:
                break
            times.append(float(frame.time))
            pictures.append(torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1))
    if not pictures:
        raise FoleyError(f"{path.name}: no video frames could be decoded")
    start = times[0]
    chosen = frames_at_rate(torch.stack(pictures), np.asarray(times) - start, duration_s)
    return SYNC_STREAM.resize(chosen)


def _clip_audio(path: Path):
    from ..media.audio import decode_audio_stream

    wav = path.with_suffix(".wav")
    decoded = decode_audio_stream(wav if wav.is_file() else path)
    if decoded is None:
        raise FoleyError(f"{path.name}: no sound (no {wav.name} and no audio track) to learn the envelope from")
    return decoded


def extract_features(clips_dir: str | Path, out_dir: str | Path, *, duration_s: float = 4.0,
                     raft: Optional[str] = None, limit: Optional[int] = None,
                     report: Callable[[str], None] = print) -> dict[str, Any]:
    """Write OUT/rms_mapper_features.safetensors (features, envelopes, clip names); returns its meta."""
    clips_dir, out_dir = Path(clips_dir), Path(out_dir)
    videos = sorted(p for p in clips_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)[:limit]
    if not videos:
        raise FoleyError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {clips_dir}")
    flow = "block"
    if raft:
        from ..models.checkpoint_io import read_state_dict

        flow = RaftFlow(read_state_dict(raft, "RAFT weights"), Path(raft).name)
    n_frames, n_out = int(round(FEATURE_RATE * duration_s)), envelope_frames(duration_s)
    features, envelopes, names, seeds, skipped = [], [], [], [], []
    started = time.time()
    for number, path in enumerate(videos):
        wave, rate = _clip_audio(path)
        if wave.shape[-1] < duration_s * rate - 1:
            skipped.append(path.name)
            continue
        frames = decode_video_frames(path, duration_s)
        if frames.shape[0] < n_frames:
            skipped.append(path.name)
            continue
        envelope = rms_envelope(wave[..., : int(round(duration_s * rate))], rate).values[:n_out]
        features.append(video_features(frames[:n_frames], flow))
        envelopes.append(torch.from_numpy(np.ascontiguousarray(envelope)))
        names.append(path.name)
        meta_file = path.with_suffix(".json")
        seeds.append(json.loads(meta_file.read_text()).get("seed") if meta_file.is_file() else None)
        if (number + 1) % 25 == 0:
            report(f"extract: {number + 1}/{len(videos)} clips, {time.time() - started:.0f} s")
    if not names:
        raise FoleyError(f"no clip in {clips_dir} is at least {duration_s} s long with sound")
    meta = {"duration_s": duration_s, "feature_rate": FEATURE_RATE, "feature_version": FEATURE_VERSION,
            "flow": flow_method(flow), "clips": names, "seeds": seeds, "skipped": skipped,
            "source": str(clips_dir)}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (FEATURES_NAME + ".tmp")
    save_file({"features": torch.stack(features).contiguous(), "envelopes": torch.stack(envelopes).contiguous()},
              str(tmp), metadata={"rms_mapper_features": json.dumps(meta)})
    tmp.replace(out_dir / FEATURES_NAME)
    report(f"wrote {out_dir / FEATURES_NAME}: {len(names)} clips ({len(skipped)} skipped), "
           f"{meta['flow']} flow, {time.time() - started:.0f} s")
    return meta


def load_features(feature_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    path = Path(feature_dir) / FEATURES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `rms-mapper extract` first")
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        meta = json.loads(handle.metadata()["rms_mapper_features"])
        return handle.get_tensor("features"), handle.get_tensor("envelopes"), meta


# ---------------------------------------------------------------------------------- config
@dataclass
class MapperTrainConfig(JsonConfig):
    config_name = "RMS-Mapper training"

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-3
    sigma: float = 1.0
    val_clips: int = 24
    seed: int = 0
    checkpoint_every: int = 5  # epochs
    log_every: int = 10  # steps
    channels: int = 128
    kernel_size: int = 5
    lstm_hidden: int = 32
    lstm_layers: int = 2
    dropout: float = 0.1
    crop_s: float = 2.0  # train on random windows of this length (0 = whole clips): the BiLSTM's cost
    deterministic: bool = True

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.checkpoint_every, self.log_every) < 1:
            raise ValueError("epochs, batch_size, checkpoint_every and log_every must be >= 1")
        if self.val_clips < 0 or self.sigma <= 0 or self.crop_s < 0:
            raise ValueError("val_clips and crop_s must be >= 0 and sigma > 0")


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 10 averaged over frames: -Σ_i target_i · log softmax(logits)_i."""
    return -(targets * logits.float().log_softmax(-1)).sum(-1).mean()


def targets_for(envelopes: torch.Tensor, n_classes: int, sigma: float) -> torch.Tensor:
    classes = mu_law_encode(envelopes.numpy(), n_classes)
    return torch.from_numpy(smoothed_targets(classes, n_classes, sigma=sigma, normalize=True))


def crop_plan(config: MapperTrainConfig, mapper_config: RMSMapperConfig, n_frames: int, n_out: int
              ) -> Optional[tuple[int, int, int]]:
    """(video frames per crop, envelope frames per crop, envelope frames per video frame) or None."""
    ratio = mapper_config.envelope_rate / mapper_config.feature_rate
    frames = int(round(config.crop_s * mapper_config.feature_rate))
    if config.crop_s == 0 or frames >= n_frames:
        return None
    if abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(f"crop_s needs envelope frames per video frame to be whole (got {ratio}); set crop_s 0")
    ratio = int(round(ratio))
    if (n_frames - frames) * ratio + frames * ratio > n_out + ratio:
        raise ValueError("the envelopes are shorter than the features; re-extract")
    return frames, frames * ratio, ratio


def cropped_batch(features: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor, crop, seed: int,
                  step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's rows, each cut to a random aligned window (drawn from a per-step generator, so a
    resumed run draws the same windows)."""
    if crop is None:
        return features[rows], targets[rows]
    frames, outs, ratio = crop
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + step * 101 + rank)
    last = min(features.shape[1] - frames, (targets.shape[1] - outs) // ratio)
    starts = torch.randint(0, last + 1, (len(rows),), generator=generator).tolist()
    x = torch.stack([features[r, s: s + frames] for r, s in zip(rows.tolist(), starts)])
    y = torch.stack([targets[r, s * ratio: s * ratio + outs] for r, s in zip(rows.tolist(), starts)])
    return x, y


def _digest(module: torch.nn.Module) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode() + tensor.detach().cpu().double().numpy().tobytes())
    return digest.hexdigest()


def validation_e_l1(mapper: RMSMapper, features: torch.Tensor, envelopes: torch.Tensor,
                    decoding: str = "argmax") -> float:
    if features.shape[0] == 0:
        return float("nan")
    was_training = mapper.training
    mapper.eval()
    with torch.no_grad():
        predicted = decode_logits(mapper(features, envelopes.shape[1]), decoding)
    mapper.train(was_training)
    return float(np.mean(np.abs(predicted - envelopes.numpy())))


def build_mapper(config: MapperTrainConfig, meta: dict[str, Any], features: torch.Tensor) -> RMSMapper:
    mapper = RMSMapper(RMSMapperConfig(
        feature_dim=int(features.shape[-1]), feature_rate=float(meta["feature_rate"]), channels=config.channels,
        kernel_size=config.kernel_size, lstm_hidden=config.lstm_hidden, lstm_layers=config.lstm_layers,
        dropout=config.dropout, flow=meta["flow"], feature_version=meta["feature_version"]))
    mapper.set_feature_statistics(features)
    return mapper


def train_mapper(feature_dir: str | Path, config: Optional[MapperTrainConfig], run_dir: str | Path, *,
                 resume: bool = False, stop_at_epoch: Optional[int] = None, device: str = "auto",
                 report: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or continue) a mapper; returns the summary written to RUN/final.json."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    state, config, ctx = prepare_run(run_dir, config if resume else config or MapperTrainConfig(),
                                     MapperTrainConfig, resume=resume, device=device,
                                     mismatch="--resume: the given settings differ from the run's; omit them")
    if state is not None and state.get("kind") != "rms_mapper":
        raise ValueError(f"{ckpt_path} is not an RMS-Mapper run")

    features, envelopes, meta = load_features(feature_dir)
    n_val = min(config.val_clips, max(0, features.shape[0] - config.batch_size * ctx.world_size))
    n_train = features.shape[0] - n_val
    train_x, train_y = features[:n_train], envelopes[:n_train]
    val_x, val_y = features[n_train:], envelopes[n_train:]
    torch.manual_seed(config.seed)  # same initial weights on every rank
    mapper = build_mapper(config, meta, train_x)
    targets = targets_for(train_y, mapper.config.n_classes, config.sigma)
    if state is not None:
        mapper.load_state_dict(state["model"])
    mapper.to(ctx.device).train()
    model = (DistributedDataParallel(mapper, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
             if ctx.distributed else mapper)
    # Adam with L2 weight decay 1e-3, constant lr 1e-3 (the paper's settings).
    optimizer = torch.optim.Adam(mapper.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    epoch = step = 0
    window = [0.0, 0]  # running sum and count of the loss since the last log line
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        epoch, step = int(state["epoch"]), int(state["step"])
        window = list(state.get("loss_window", window))  # absent in checkpoints written before it was kept
        restore_rng_state(state["rng"][ctx.rank])
        if ctx.is_main:
            truncate_log(run_dir / LOG_NAME, step)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
            (run_dir / LOG_NAME).write_text("")
    del state
    if len(epoch_batches(n_train, ctx, config, 0)) == 0:
        raise ValueError(f"{n_train} training clips are fewer than batch_size × processes")
    n_out = train_y.shape[1]
    crop = crop_plan(config, mapper.config, train_x.shape[1], n_out)
    end = config.epochs if stop_at_epoch is None else min(config.epochs, stop_at_epoch)
    started = time.time()

    def save() -> None:
        rng = all_gather(ctx, capture_rng_state())
        if ctx.is_main:
            val = validation_e_l1(mapper, val_x.to(ctx.device), val_y)
            save_checkpoint(ckpt_path, {
                "config": config.to_dict(), "kind": "rms_mapper", "epoch": epoch, "step": step,
                "world_size": ctx.world_size, "model": mapper.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": rng, "mapper_config": json.dumps(mapper.config.to_dict()),
                "features": json.dumps({k: v for k, v in meta.items() if k not in ("clips", "seeds")}),
                "train_clips": n_train, "val_clips": n_val, "val_e_l1": val, "loss_window": window})
            with open(run_dir / LOG_NAME, "a") as log:
                log.write(json.dumps({"epoch": epoch, "step": step, "val_e_l1": val,
                                      "elapsed_s": round(time.time() - started, 1)}) + "\n")
            report(f"epoch {epoch}: held-out E-L1 {val:.4f} ({n_val} clips), {time.time() - started:.0f} s")
        if ctx.distributed:
            dist.barrier()

    while epoch < end:
        order = epoch_batches(n_train, ctx, config, epoch)
        for first in range(0, len(order), config.batch_size):
            rows = torch.tensor(order[first: first + config.batch_size])
            x, y = cropped_batch(train_x, targets, rows, crop, config.seed, step, ctx.rank)
            loss = soft_cross_entropy(model(x.to(ctx.device), y.shape[1]), y.to(ctx.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            reported = loss.detach()
            if ctx.distributed:
                dist.all_reduce(reported)
                reported /= ctx.world_size
            window = [window[0] + reported.item(), window[1] + 1]
            if step % config.log_every == 0:
                if ctx.is_main:
                    with open(run_dir / LOG_NAME, "a") as log:
                        log.write(json.dumps({"step": step, "epoch": epoch, "loss": window[0] / window[1],
                                              "elapsed_s": round(time.time() - started, 1)}) + "\n")
                window = [0.0, 0]
        epoch += 1
        if epoch % config.checkpoint_every == 0 or epoch == end:
            save()

    if ctx.distributed:  # BatchNorm running stats update per rank; DDP treats rank 0's as the truth
        for buffer in mapper.buffers():
            dist.broadcast(buffer, 0)
    digests = all_gather(ctx, _digest(mapper))
    summary = {"epoch": epoch, "step": step, "world_size": ctx.world_size, "rank_digests": digests,
               "train_clips": n_train, "val_clips": n_val}
    if ctx.is_main:
        (run_dir / FINAL_NAME).write_text(json.dumps(summary, indent=1))
    if ctx.distributed:
        dist.barrier()
        del model  # before the group goes: see driver.end_process_group
        end_process_group()
    return summary


def export_mapper(run_dir: str | Path, out_file: str | Path) -> Path:
    """Write the run's mapper as .safetensors with kind "foley_rms_mapper" and a training summary."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    if ckpt.get("kind") != "rms_mapper":
        raise ValueError(f"{run_dir} is not an RMS-Mapper run")
    mapper = RMSMapper(RMSMapperConfig.from_dict(json.loads(ckpt["mapper_config"])))
    mapper.load_state_dict(ckpt["model"])
    config = MapperTrainConfig.from_dict(ckpt["config"])
    training = {"epoch": int(ckpt["epoch"]), "step": int(ckpt["step"]), "train_clips": int(ckpt["train_clips"]),
                "val_clips": int(ckpt["val_clips"]), "val_e_l1": float(ckpt["val_e_l1"]),
                "batch_size": config.batch_size, "lr": config.lr, "weight_decay": config.weight_decay,
                "sigma": config.sigma, "features": json.loads(ckpt["features"])}
    return save_mapper(mapper, out_file, training)


# ------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m foley_core.training rms-mapper",
                                     description="Train Stable-V2A's RMS-Mapper (video → RMS envelope).")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="video features + target envelopes of a folder of clips")
    ex.add_argument("--clips", required=True, help="folder of videos (+ same-stem .wav, optional)")
    ex.add_argument("--out", required=True, help="feature folder to write")
    ex.add_argument("--duration", type=float, default=4.0, help="seconds per clip (longer are cut, shorter skipped)")
    ex.add_argument("--raft", help="torchvision RAFT weights (raft_small/raft_large); default: block-matching flow")
    ex.add_argument("--limit", type=int, help="use only the first N videos")
    tr = sub.add_parser("train", help="train (plain, or under torchrun)")
    tr.add_argument("--features", required=True)
    tr.add_argument("--out", required=True, help="run folder (config.json, log.jsonl, checkpoint.pt)")
    tr.add_argument("--resume", action="store_true")
    tr.add_argument("--stop-at-epoch", type=int, help="stop (with a checkpoint) after this epoch")
    tr.add_argument("--device", default="auto")
    for f in fields(MapperTrainConfig):
        if f.name != "deterministic":
            tr.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None)
    exp = sub.add_parser("export", help="write the mapper for ComfyUI/models/foley_rms_mapper/")
    exp.add_argument("--run", required=True)
    exp.add_argument("--out", required=True, help="output .safetensors file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "extract":
        torch.set_num_threads(1)  # per-clip work is small; extra threads only contend on a shared CPU
        extract_features(args.clips, args.out, duration_s=args.duration, raft=args.raft, limit=args.limit)
    elif args.command == "train":
        given = {f.name: getattr(args, f.name) for f in fields(MapperTrainConfig)
                 if getattr(args, f.name, None) is not None}
        config = MapperTrainConfig(**given) if (given or not args.resume) else None
        summary = train_mapper(args.features, config, args.out, resume=args.resume,
                               stop_at_epoch=args.stop_at_epoch, device=args.device)
        if os.environ.get("RANK", "0") == "0":
            print(f"stopped after epoch {summary['epoch']} (step {summary['step']}); run folder {args.out}")
    else:
        print(f"wrote {export_mapper(args.run, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
