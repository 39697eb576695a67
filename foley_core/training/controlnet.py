"""Envelope ControlNet training (controls/controlnet.py) on a frozen backbone.

    python -m foley_core.training envelopes --features F
    python -m foley_core.training train-controlnet --features F --config controlnet.json --out RUN
    python -m foley_core.training export-controlnet --run RUN --out controlnet.safetensors [--fp16]

`envelopes` computes the Stable-V2A RMS envelope (controls/envelope.py) of every clip's own audio —
decoded, mono, resampled and cut exactly as `extract` prepared the audio the latents were encoded
from — into F/envelopes.safetensors (one row per clip, 125 frames/s).

Training: the backbone (a flow-network file) is frozen; the ControlNet copy starts from its first
blocks, and the unchanged flow-matching loss trains only the ControlNet. Per sample, the envelope
is dropped with `envelope_dropout` (control embedding masked to zero), the usual video/text
dropouts apply, and `uncond_dropout` drops all three together: that is exactly the unconditional
branch of CFG in the default "conditional" mode (empty video/text, no envelope), so it is trained
too. Same machinery as the other trainers: per-(seed, step, rank) noise, DistributedSampler order,
EMA, exact resume.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from ..controls.controlnet import (SUBFRAMES, ControlNetConfig, EnvelopeControlNet, envelope_tokens,
                                   save_controlnet)
from ..controls.envelope import ENVELOPE_HOP, ENVELOPE_SAMPLE_RATE, rms_envelope
from ..errors import FoleyError
from ..models import builders
from ..models.mmaudio.sequence import audio_mode_settings, sequence_lengths
from .checkpoint import CHECKPOINT_NAME, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .ema import EMA
from .flow_loss import FlowMatchingObjective, draw_step_noise, flow_target, step_generator
from .loop import FINAL_NAME, LOG_NAME, _all_gather, _truncate_log, epoch_batches, lr_factor, setup_context, \
    weights_digest
from .shards import ShardDataset

ENVELOPES_NAME = "envelopes.safetensors"


# ------------------------------------------------------------------------------- envelopes
def clip_audio(source: str | Path, duration_s: float, mode: str) -> torch.Tensor:
    """The clip's mono audio at the mode's rate, exactly as `extract` fed it to the VAE."""
    from ..media.audio import decode_audio_stream, fit_to_length, resample, to_mono

    seq = sequence_lengths(duration_s, mode)
    decoded = decode_audio_stream(Path(source), 0.0, duration_s)
    if decoded is None:
        raise FoleyError(f"{source}: no audio stream to take the envelope from")
    waveform, rate = decoded
    return fit_to_length(resample(to_mono(waveform), rate, seq.sample_rate)[0], seq.samples)


def extract_envelopes(feature_dir: str | Path, report: Callable[[str], None] = print) -> dict[str, Any]:
    """Write FEATURES/envelopes.safetensors (see the module doc); returns its metadata."""
    feature_dir = Path(feature_dir)
    dataset = ShardDataset(feature_dir)
    seq = sequence_lengths(dataset.duration_s, dataset.mode)
    rows = []
    for number, clip in enumerate(dataset.clips):
        audio = clip_audio(clip["source"], dataset.duration_s, dataset.mode)
        rows.append(torch.from_numpy(rms_envelope(audio.numpy(), seq.sample_rate).values))
        if (number + 1) % 100 == 0:
            report(f"envelopes: {number + 1}/{len(dataset)} clips")
    meta = {"frame_rate": ENVELOPE_SAMPLE_RATE / ENVELOPE_HOP, "duration_s": dataset.duration_s,
            "clips": [c["name"] for c in dataset.clips]}
    tmp = feature_dir / (ENVELOPES_NAME + ".tmp")
    save_file({"envelope": torch.stack(rows).contiguous()}, str(tmp), metadata={"envelopes": json.dumps(meta)})
    tmp.replace(feature_dir / ENVELOPES_NAME)
    report(f"wrote {ENVELOPES_NAME}: {len(rows)} envelopes of {rows[0].numel()} frames")
    return meta


def load_envelopes(feature_dir: str | Path) -> tuple[torch.Tensor, dict[str, Any]]:
    path = Path(feature_dir) / ENVELOPES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m foley_core.training envelopes` first")
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return handle.get_tensor("envelope"), json.loads(handle.metadata()["envelopes"])


def control_features(envelopes: torch.Tensor, frame_rate: float, n_tokens: int, latent_rate: float,
                     subframes: int) -> torch.Tensor:
    """(clips, N, 2·subframes) control features of whole training clips (controls/controlnet.py)."""
    return torch.stack([torch.from_numpy(envelope_tokens(e.numpy(), n_tokens, latent_rate, frame_rate=frame_rate,
                                                         subframes=subframes)[0]) for e in envelopes])


# ---------------------------------------------------------------------------------- config
@dataclass
class ControlNetTrainConfig:
    backbone: str = ""  # flow-network file (frozen)
    blocks: Optional[int] = None  # copied blocks; None = max(1, ⌊0.2·depth⌋)
    subframes: int = SUBFRAMES
    batch_size: int = 12
    lr: float = 5e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 50
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    steps: int = 2000
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    envelope_dropout: float = 0.1
    video_dropout: float = 0.1
    text_dropout: float = 0.1
    uncond_dropout: float = 0.1  # envelope, video and text dropped together (CFG's unconditional branch)
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25
    num_workers: int = 0
    deterministic: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if not self.backbone:
            raise ValueError("set 'backbone': the flow-network file the ControlNet is trained against")
        for name in ("envelope_dropout", "video_dropout", "text_dropout", "uncond_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        if min(self.steps, self.batch_size, self.checkpoint_every, self.log_every, self.subframes) < 1:
            raise ValueError("steps, batch_size, checkpoint_every, log_every and subframes must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ControlNetTrainConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown ControlNet config fields: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> "ControlNetTrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


# ------------------------------------------------------------------------------- objective
class ControlNetObjective(nn.Module):
    """Flow-matching loss of the frozen backbone with the ControlNet's residuals."""

    def __init__(self, net, controlnet: EnvelopeControlNet):
        super().__init__()
        self.net = net
        self.controlnet = controlnet
        self._dropper = FlowMatchingObjective(net)

    def forward(self, latent_mean, latent_std, clip_f, sync_f, text_f, noise, features, keep) -> torch.Tensor:
        """features (B, N, F); keep (B,) bool: False drops the envelope for that sample."""
        net = self.net
        x1 = net.normalize(latent_mean + latent_std * noise.posterior_eps)
        x_t, target = flow_target(noise.x0, x1, noise.t)
        clip_f, sync_f, text_f = self._dropper.dropped_conditions(clip_f, sync_f, text_f,
                                                                  noise.drop_video, noise.drop_text)
        mask = keep.to(features.dtype).view(-1, 1, 1).expand(-1, features.shape[1], 1)

        def residuals(x, clip, text, global_c, extended_c, latent_rot, clip_rot):
            return self.controlnet(features, mask, x, clip, text, global_c, extended_c, latent_rot, clip_rot)

        velocity = net.predict_flow(x_t, noise.t, net.preprocess_conditions(clip_f, sync_f, text_f),
                                    control=residuals)
        return F.mse_loss(velocity.float(), target.float())


def backbone_info(path: Path, built) -> dict[str, Any]:
    return {"file": path.name, "variant": built.variant, "mode": built.mode, "duration_s": built.trained_window_s}


def train_controlnet(feature_dir: str | Path, config: Optional[ControlNetTrainConfig], run_dir: str | Path, *,
                     resume: bool = False, stop_at: Optional[int] = None, device: str = "auto") -> dict[str, Any]:
    """Train (or continue) a ControlNet; returns the summary written to RUNDIR/final.json."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    state = load_checkpoint(ckpt_path) if resume else None
    if state is not None:
        saved = ControlNetTrainConfig.from_dict(state["config"])
        if config is not None and config.to_dict() != saved.to_dict():
            raise ValueError("--resume: the given config differs from the run's; omit --config")
        config = saved
    elif config is None:
        raise ValueError("a new ControlNet run needs --config")
    ctx = setup_context(device, deterministic=config.deterministic)
    if state is not None and state["world_size"] != ctx.world_size:
        raise ValueError(f"the run was made with {state['world_size']} processes; resume with the same")

    dataset = ShardDataset(feature_dir)
    envelopes, meta = load_envelopes(feature_dir)
    if meta["clips"] != [c["name"] for c in dataset.clips]:
        raise ValueError("envelopes.safetensors does not belong to this feature folder; re-run `envelopes`")
    backbone_path = Path(config.backbone)
    built = builders.build_network(backbone_path)
    net = built.network.eval().requires_grad_(False)
    seq = dataset.index["seq"]
    if dataset.shapes["latent_mean"][1] != net.config.latent_dim:
        raise FoleyError(f"the features have {dataset.shapes['latent_mean'][1]} latent channels, the backbone "
                         f"{backbone_path.name} {net.config.latent_dim}")
    if built.mode not in (None, dataset.mode):
        raise FoleyError(f"the features are {dataset.mode} audio, the backbone {backbone_path.name} makes {built.mode}")
    net.update_seq_lengths(seq["latent"], seq["clip"], seq["sync"])
    sample_rate, hop = audio_mode_settings(dataset.mode)
    latent_rate = sample_rate / hop / 2
    features = control_features(envelopes, meta["frame_rate"], seq["latent"], latent_rate, config.subframes)

    info = backbone_info(backbone_path, built)
    info["mode"] = info["mode"] or dataset.mode
    cn_config = ControlNetConfig.for_backbone(net.config, info, config.blocks, config.subframes)
    torch.manual_seed(config.seed)  # identical initialisation on every rank
    controlnet = EnvelopeControlNet(cn_config)
    controlnet.copy_backbone_blocks(net)
    if state is not None:
        controlnet.load_state_dict(state["controlnet"])
    controlnet.requires_grad_(True).train()
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    net.to(ctx.device)
    controlnet.to(ctx.device)
    ema = EMA(controlnet, config.ema_decay)
    objective = ControlNetObjective(net, controlnet)
    model = (DistributedDataParallel(objective, device_ids=[ctx.device] if ctx.device.type == "cuda" else None,
                                     broadcast_buffers=False) if ctx.distributed else objective)
    trainable = list(controlnet.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config, s))

    step = epoch = position = 0
    window = [0.0, 0]
    if state is not None:
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, position = state["step"], state["epoch"], state["position"]
        window = list(state["loss_window"])
        restore_rng_state(state["rng"][ctx.rank])
        if ctx.is_main:
            _truncate_log(run_dir / LOG_NAME, step)
    elif ctx.is_main:
        (run_dir / LOG_NAME).write_text("")
    del state

    end = config.steps if stop_at is None else min(config.steps, stop_at)
    batches_per_epoch = len(epoch_batches(len(dataset), ctx, config, 0)) // config.batch_size
    if batches_per_epoch == 0:
        raise ValueError(f"{len(dataset)} clips are fewer than batch_size × processes")

    def save() -> None:
        rng = _all_gather(ctx, capture_rng_state())
        if ctx.is_main:
            save_checkpoint(ckpt_path, {
                "config": config.to_dict(), "kind": "controlnet", "step": step, "epoch": epoch,
                "position": position, "world_size": ctx.world_size, "controlnet": controlnet.state_dict(),
                "controlnet_config": json.dumps(cn_config.to_dict()), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "loss_window": window, "rng": rng})
        if ctx.distributed:
            dist.barrier()

    started = time.time()
    row_of = {c["name"]: i for i, c in enumerate(dataset.clips)}
    while step < end:
        indices = epoch_batches(len(dataset), ctx, config, epoch)[position * config.batch_size:]
        loader = DataLoader(Subset(dataset, indices), batch_size=config.batch_size, shuffle=False,
                            num_workers=config.num_workers)
        for batch in loader:
            generator = step_generator(config.seed, step, ctx.rank)
            noise = draw_step_noise(generator, config.batch_size, seq["latent"], net.config.latent_dim,
                                    config.video_dropout, config.text_dropout)
            # ControlNet-only draws come after the network trainer's, in a fixed order.
            coins = torch.rand(config.batch_size, 2, generator=generator)
            uncond = coins[:, 1] < config.uncond_dropout
            noise.drop_text |= ~batch["has_text"] | uncond
            noise.drop_video |= uncond
            keep = (coins[:, 0] >= config.envelope_dropout) & ~uncond
            rows = torch.tensor([row_of[name] for name in batch["name"]])
            noise = noise.to(ctx.device)
            inputs = [batch[k].to(ctx.device) for k in ("latent_mean", "latent_std", "clip_f", "sync_f", "text_f")]
            loss = model(*inputs, noise, features[rows].to(ctx.device), keep.to(ctx.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
            optimizer.step()
            scheduler.step()
            ema.update(controlnet)
            step, position = step + 1, position + 1
            if position >= batches_per_epoch:
                epoch, position = epoch + 1, 0
            reported = loss.detach().float()
            if ctx.distributed:
                dist.all_reduce(reported)
                reported /= ctx.world_size
            window = [window[0] + reported.item(), window[1] + 1]
            if step % config.log_every == 0 and ctx.is_main:
                entry = {"step": step, "loss": window[0] / window[1], "last_loss": reported.item(),
                         "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm), "epoch": epoch,
                         "elapsed_s": round(time.time() - started, 3)}
                with open(run_dir / LOG_NAME, "a") as log:
                    log.write(json.dumps(entry) + "\n")
            if step % config.log_every == 0:
                window = [0.0, 0]
            if step % config.checkpoint_every == 0 or step == end:
                save()
            if step >= end or position == 0:
                break

    digests = _all_gather(ctx, {"controlnet": weights_digest(controlnet), "ema": weights_digest(ema.shadow)})
    summary = {"step": step, "epoch": epoch, "position": position, "world_size": ctx.world_size,
               "rank_digests": digests}
    if ctx.is_main:
        (run_dir / FINAL_NAME).write_text(json.dumps(summary, indent=1))
    if ctx.distributed:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def export_controlnet(run_dir: str | Path, out_file: str | Path, *, use_ema: bool = True,
                      fp16: bool = False) -> Path:
    """Write the run's (EMA) ControlNet as .safetensors + metadata (kind, backbone dims, blocks copied)."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    if ckpt.get("kind") != "controlnet":
        raise ValueError(f"{run_dir} is not a ControlNet run")
    config = ControlNetTrainConfig.from_dict(ckpt["config"])
    controlnet = EnvelopeControlNet(ControlNetConfig.from_dict(json.loads(ckpt["controlnet_config"])))
    controlnet.load_state_dict(ckpt["ema"] if use_ema else ckpt["controlnet"])
    training = {"step": ckpt["step"], "weights": "ema" if use_ema else "model",
                **{k: getattr(config, k) for k in ("envelope_dropout", "video_dropout", "text_dropout",
                                                    "uncond_dropout", "lr", "batch_size", "seed")}}
    return save_controlnet(controlnet, out_file, training, fp16=fp16)
