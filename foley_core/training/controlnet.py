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
too. The shared machinery (DDP, per-(seed, step, rank) noise, DistributedSampler order, EMA,
checkpoints, exact resume) is training/driver.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F

from ..controls.controlnet import (SUBFRAMES, ControlNetConfig, EnvelopeControlNet, envelope_tokens,
                                   save_controlnet)
from ..controls.envelope import ENVELOPE_HOP, ENVELOPE_SAMPLE_RATE, rms_envelope
from ..models.mmaudio.sequence import audio_mode_settings
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .clip_targets import read_clip_targets, write_clip_targets
from .config import OptimRunConfig
from .driver import TrainingTask, prepare_run, run_training
from .flow_loss import FLOW_INPUTS, FlowMatchingObjective, flow_target
from .frozen_backbone import draw_control_step, load_frozen_backbone
from .shards import ShardDataset

ENVELOPES_NAME = "envelopes.safetensors"


# ------------------------------------------------------------------------------- envelopes
def extract_envelopes(feature_dir: str | Path, report: Callable[[str], None] = print) -> dict[str, Any]:
    """Write FEATURES/envelopes.safetensors (see the module doc); returns its metadata."""
    return write_clip_targets(feature_dir, ENVELOPES_NAME, "envelope",
                              lambda audio, rate: rms_envelope(audio, rate).values,
                              {"frame_rate": ENVELOPE_SAMPLE_RATE / ENVELOPE_HOP}, report)


def load_envelopes(feature_dir: str | Path) -> tuple[torch.Tensor, dict[str, Any]]:
    return read_clip_targets(feature_dir, ENVELOPES_NAME, "envelope", "envelopes")


def control_features(envelopes: torch.Tensor, frame_rate: float, n_tokens: int, latent_rate: float,
                     subframes: int) -> torch.Tensor:
    """(clips, N, 2·subframes) control features of whole training clips (controls/controlnet.py)."""
    return torch.stack([torch.from_numpy(envelope_tokens(e.numpy(), n_tokens, latent_rate, frame_rate=frame_rate,
                                                         subframes=subframes)[0]) for e in envelopes])


# ---------------------------------------------------------------------------------- config
@dataclass
class ControlNetTrainConfig(OptimRunConfig):
    config_name = "ControlNet config"

    backbone: str = ""  # flow-network file (frozen)
    blocks: Optional[int] = None  # copied blocks; None = max(1, ⌊0.2·depth⌋)
    subframes: int = SUBFRAMES
    envelope_dropout: float = 0.1
    video_dropout: float = 0.1
    text_dropout: float = 0.1
    uncond_dropout: float = 0.1  # envelope, video and text dropped together (CFG's unconditional branch)
    # shared fields (OptimRunConfig) with this trainer's defaults
    lr: float = 5e-4
    steps: int = 2000
    ema_decay: float = 0.995

    probabilities = ("envelope_dropout", "video_dropout", "text_dropout", "uncond_dropout")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.backbone:
            raise ValueError("set 'backbone': the flow-network file the ControlNet is trained against")
        if self.subframes < 1:
            raise ValueError("subframes must be >= 1")


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
    state, config, ctx = prepare_run(run_dir, config, ControlNetTrainConfig, resume=resume, device=device,
                                     label="ControlNet run")
    dataset = ShardDataset(feature_dir)
    envelopes, meta = load_envelopes(feature_dir)
    if meta["clips"] != [c["name"] for c in dataset.clips]:
        raise ValueError("envelopes.safetensors does not belong to this feature folder; re-run `envelopes`")
    backbone_path, built, net, seq = load_frozen_backbone(config.backbone, dataset)
    sample_rate, hop = audio_mode_settings(dataset.mode)
    latent_rate = sample_rate / hop / 2
    features = control_features(envelopes, meta["frame_rate"], seq["latent"], latent_rate, config.subframes)

    info = backbone_info(backbone_path, built)
    info["mode"] = info["mode"] or dataset.mode
    cn_config = ControlNetConfig.for_backbone(net.config, info, config.blocks, config.subframes)
    torch.manual_seed(config.seed)  # identical initialisation on every rank
    controlnet = EnvelopeControlNet(cn_config)
    controlnet.copy_backbone_blocks(net)
    controlnet.requires_grad_(True).train()
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    row_of = {c["name"]: i for i, c in enumerate(dataset.clips)}

    def step_loss(model, batch, generator, step) -> torch.Tensor:
        noise, keep, _ = draw_control_step(generator, config, batch["has_text"], seq["latent"], net.config.latent_dim,
                                           config.envelope_dropout)
        rows = torch.tensor([row_of[name] for name in batch["name"]])
        noise = noise.to(ctx.device)
        inputs = [batch[k].to(ctx.device) for k in FLOW_INPUTS]
        return model(*inputs, noise, features[rows].to(ctx.device), keep.to(ctx.device))

    task = TrainingTask(kind="controlnet", config=config, trained=controlnet,
                        objective=ControlNetObjective(net, controlnet), num_samples=len(dataset),
                        step_loss=step_loss, dataset=dataset, weights_key="controlnet",
                        checkpoint_extra={"controlnet_config": json.dumps(cn_config.to_dict())})
    return run_training(task, ctx, run_dir, state=state, stop_at=stop_at)


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
