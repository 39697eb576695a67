"""Stable-V2A's RMS-Mapper (Gramaccioni et al., §III-C, Fig. 4): video features → RMS envelope.

From the paper: per-frame RGB + optical-flow features concatenated along the feature axis; three
1-D convolutions, each followed by batch norm, ReLU and an Upsample layer whose output sizes are
[600, 1200, 1250] for 300 video frames → 1250 envelope frames (10 s); a 2-layer bidirectional
LSTM; a linear layer onto 64 μ-law classes; cross-entropy against Gaussian-smoothed targets
(σ = 1); Adam, lr 1e-3, weight decay 1e-3, batch 64; μ-law decoding of the prediction.

Chosen here (the paper does not say): conv width 128, kernel 5 (padding 2), LSTM hidden 32 per
direction with dropout 0.1 between the layers — small enough to train on a CPU in minutes (the
BiLSTM over 125 frames/s dominates the cost; the trainer also trains on 2 s windows); linear
upsampling (align_corners False); for other durations the upsample sizes keep the paper's
fractions of the output length (600/1250 = 0.48, 1200/1250 = 0.96, 1); the input features are
standardised with the training set's per-dimension mean/std (stored in the file). Features:
controls/mapper_features.py (cheap statistics instead of TC-CLIP, 25 fps instead of 30). Decoding:
"argmax" (the paper: the most likely class, μ-law decoded) or "mean" (the expected class under the
softmax, μ-law decoded: smoother, never snaps to silence between two plausible levels).

Files: weights-only .safetensors, metadata kind "foley_rms_mapper" with the config (including the
flow method and feature recipe it was trained with) and a training summary.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..controls.envelope import ENVELOPE_CLASSES, ENVELOPE_HOP, ENVELOPE_SAMPLE_RATE, Envelope, mu_law_decode
from ..controls.mapper_features import FEATURE_DIM, FEATURE_RATE, FEATURE_VERSION, FLOW_METHODS
from ..errors import CheckpointError, FoleyError

KIND = "foley_rms_mapper"
FORMAT_VERSION = "1"
PAPER_UPSAMPLE = (600 / 1250, 1200 / 1250, 1.0)
DECODINGS = ("argmax", "mean")


@dataclass
class RMSMapperConfig:
    feature_dim: int = FEATURE_DIM
    feature_rate: float = FEATURE_RATE
    envelope_rate: float = ENVELOPE_SAMPLE_RATE / ENVELOPE_HOP
    n_classes: int = ENVELOPE_CLASSES
    channels: int = 128
    kernel_size: int = 5
    lstm_hidden: int = 32
    lstm_layers: int = 2
    dropout: float = 0.1
    upsample_fractions: tuple = PAPER_UPSAMPLE
    flow: str = "block"  # the flow method of its training features (mapper_features.FLOW_METHODS)
    feature_version: str = FEATURE_VERSION

    def __post_init__(self) -> None:
        self.upsample_fractions = tuple(float(f) for f in self.upsample_fractions)
        if len(self.upsample_fractions) != 3 or self.upsample_fractions[-1] != 1.0:
            raise ValueError("upsample_fractions: three fractions of the output length, the last 1.0")
        if self.flow not in FLOW_METHODS:
            raise ValueError(f"flow must be one of {FLOW_METHODS}, not {self.flow!r}")
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd (same-length convolutions)")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["upsample_fractions"] = list(self.upsample_fractions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RMSMapperConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown RMS-Mapper config fields: {sorted(unknown)}")
        return cls(**data)


def envelope_frames(duration_s: float, rate: float = ENVELOPE_SAMPLE_RATE / ENVELOPE_HOP) -> int:
    """Envelope frames of a clip: ceil(duration · 125) (1250 for 10 s, as rms_envelope gives)."""
    return max(1, int(math.ceil(duration_s * rate - 1e-6)))


class RMSMapper(nn.Module):
    """features [B, T_video, D] → logits [B, n_out, n_classes]."""

    def __init__(self, config: Optional[RMSMapperConfig] = None):
        super().__init__()
        self.config = config = config or RMSMapperConfig()
        self.register_buffer("feature_mean", torch.zeros(config.feature_dim))
        self.register_buffer("feature_std", torch.ones(config.feature_dim))
        pad = config.kernel_size // 2
        width = [config.feature_dim, config.channels, config.channels, config.channels]
        self.convs = nn.ModuleList(nn.Conv1d(width[i], width[i + 1], config.kernel_size, padding=pad)
                                   for i in range(3))
        self.norms = nn.ModuleList(nn.BatchNorm1d(config.channels) for _ in range(3))
        self.lstm = nn.LSTM(config.channels, config.lstm_hidden, num_layers=config.lstm_layers,
                            batch_first=True, bidirectional=True,
                            dropout=config.dropout if config.lstm_layers > 1 else 0.0)
        self.head = nn.Linear(2 * config.lstm_hidden, config.n_classes)

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        """Standardise inputs with these features' statistics (features: [..., D])."""
        flat = features.reshape(-1, features.shape[-1]).float()
        self.feature_mean.copy_(flat.mean(0))
        self.feature_std.copy_(flat.std(0).clamp_min(1e-4))

    def upsample_sizes(self, n_out: int) -> list[int]:
        return [max(1, round(f * n_out)) for f in self.config.upsample_fractions[:-1]] + [int(n_out)]

    def forward(self, features: torch.Tensor, n_out: int) -> torch.Tensor:
        if features.ndim != 3 or features.shape[-1] != self.config.feature_dim:
            raise FoleyError(f"RMS-Mapper input must be [batch, frames, {self.config.feature_dim}], "
                             f"got {tuple(features.shape)}")
        x = ((features - self.feature_mean) / self.feature_std).transpose(1, 2)  # [B, D, T]
        for conv, norm, size in zip(self.convs, self.norms, self.upsample_sizes(n_out)):
            x = F.relu(norm(conv(x)))
            x = F.interpolate(x, size=size, mode="linear", align_corners=False)
        x, _ = self.lstm(x.transpose(1, 2))  # [B, n_out, 2·hidden]
        return self.head(x)


def decode_logits(logits: torch.Tensor, decoding: str = "argmax") -> np.ndarray:
    """Envelope values (float32, [..., n_out]) from class logits [..., n_out, n_classes]."""
    n_classes = logits.shape[-1]
    if decoding == "argmax":
        classes = logits.argmax(-1)
    elif decoding == "mean":
        probs = logits.float().softmax(-1)
        classes = (probs * torch.arange(n_classes, dtype=probs.dtype)).sum(-1)
    else:
        raise FoleyError(f"unknown decoding {decoding!r}; use one of {DECODINGS}")
    return mu_law_decode(classes.detach().cpu().numpy(), n_classes)


@torch.no_grad()
def predict_envelope(mapper: RMSMapper, features: torch.Tensor, duration_s: float,
                     decoding: str = "argmax") -> Envelope:
    """The mapper's envelope of one clip: features [T, D] at the feature rate → 125 frames/s."""
    mapper.eval()
    n_out = envelope_frames(duration_s, mapper.config.envelope_rate)
    logits = mapper(features.unsqueeze(0).float(), n_out)[0]
    return Envelope(values=decode_logits(logits, decoding), frame_rate=float(mapper.config.envelope_rate))


def save_mapper(mapper: RMSMapper, path: str | Path, training: Optional[dict] = None) -> Path:
    """Weights-only .safetensors; config and training summary as metadata."""
    from .add_on_files import save_add_on

    return save_add_on(mapper, path, kind=KIND, format_version=FORMAT_VERSION, label="an RMS-Mapper",
                       training=training, floating_only=True)


def load_mapper(path: str | Path) -> tuple[RMSMapper, dict[str, Any]]:
    """(mapper in eval mode on the CPU, {"config", "training"}) from a `save_mapper` file.

    Anything else — another kind of model, a pickle, weights that do not fit the config — is a
    CheckpointError naming the file and the fix.
    """
    from .add_on_files import add_on_summary, load_matching_weights, parse_config, read_add_on_metadata
    from .checkpoint_io import guess_checkpoint_kind, read_state_dict

    def guess(kind):  # an unlabelled file: say what its weights look like
        if kind is not None:
            return ""
        return f" — its weights look like a {guess_checkpoint_kind(read_state_dict(Path(path), 'RMS-Mapper'))} file"

    hint = "export mappers with `python -m foley_core.training rms-mapper export`"
    path, metadata = read_add_on_metadata(
        path, kind=KIND, label="RMS-Mapper", noun="RMS-Mapper", folder="foley_rms_mapper", made_by=hint,
        wrong_kind_hint=f"put it into the matching loader, and {hint}", wrong_kind_detail=guess)
    config = parse_config(metadata, RMSMapperConfig.from_dict, "RMS-Mapper", path)
    if config.feature_version != FEATURE_VERSION or config.feature_dim != FEATURE_DIM:
        raise CheckpointError(
            f"RMS-Mapper {path.name} was trained on video features {config.feature_version!r} "
            f"({config.feature_dim} dims); this plugin computes {FEATURE_VERSION!r} ({FEATURE_DIM} dims). "
            "Retrain it with this version (`python -m foley_core.training rms-mapper`).")
    mapper = RMSMapper(config)
    load_matching_weights(mapper, path, "RMS-Mapper", floating_only=True)
    return mapper, add_on_summary(config, metadata)


def describe(mapper: RMSMapper) -> str:
    cfg = mapper.config
    params = sum(p.numel() for p in mapper.parameters())
    return (f"RMS-Mapper ({params / 1e3:.0f}k parameters; {cfg.feature_version} features at "
            f"{cfg.feature_rate:g} fps, {cfg.flow} flow; {cfg.n_classes} μ-law classes at "
            f"{cfg.envelope_rate:g} frames/s)")


@dataclass
class MapperUse:
    """What ran: the method, the flow used vs trained with, and any mismatch note for the user."""

    flow_used: str
    flow_trained: str
    notes: list[str] = field(default_factory=list)

    @property
    def mismatch(self) -> bool:
        return self.flow_used != self.flow_trained


def flow_mismatch_note(trained: str, used: str) -> str:
    fix = ("connect the RAFT weights it was trained with" if trained.startswith("raft")
           else "disconnect the RAFT weights")
    return (f"RMS-Mapper was trained with {trained!r} optical flow but {used!r} flow is being used; "
            f"the features differ from training, so expect a worse envelope ({fix}).")


def mapper_envelope(mapper: RMSMapper, frames, fps: float, duration_s: float, flow="block",
                    decoding: str = "argmax") -> tuple[Envelope, MapperUse]:
    """The envelope a mapper predicts for a video segment (frames [T, 3, H, W] at `fps`).

    `flow` is "block" or a mapper_features.RaftFlow; using another flow than the mapper was trained
    with works but is reported in the returned MapperUse (and its notes).
    """
    from ..controls.mapper_features import flow_method, frames_at_rate, video_features

    if not fps > 0 or not duration_s > 0:
        raise FoleyError(f"RMS-Mapper needs a positive frame rate and duration (got {fps}, {duration_s}).")
    cfg = mapper.config
    if abs(float(fps) - cfg.feature_rate) > 1e-6:  # features are defined at the mapper's frame rate
        frames = frames_at_rate(frames, np.arange(len(frames)) / float(fps), duration_s, cfg.feature_rate)
    used = flow_method(flow)
    use = MapperUse(flow_used=used, flow_trained=cfg.flow)
    if use.mismatch:
        use.notes.append(flow_mismatch_note(cfg.flow, used))
    envelope = predict_envelope(mapper, video_features(frames, flow), duration_s, decoding)
    return envelope, use
