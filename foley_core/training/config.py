"""One JSON-serialisable configuration per training run.

The run directory keeps a copy (`config.json`) and every checkpoint embeds it, so `--resume` and
`export` never depend on the file the run was started from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ..models.mmaudio import VARIANTS, NetworkConfig, sequence_lengths

LR_SCHEDULES = ("cosine", "constant")
PRECISIONS = ("fp32", "bf16")
# NetworkConfig fields that define the weights (mode and sequence lengths come from the run).
ARCHITECTURE_FIELDS = {f.name for f in fields(NetworkConfig)} - {
    "mode", "latent_seq_len", "clip_seq_len", "sync_seq_len"}


class JsonConfig:
    """to_dict / from_dict / load for a trainer's config dataclass. Tuples (betas) become lists so
    the dict is what JSON gives back; an unknown field is an error naming `config_name`."""

    config_name = "training config"

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.config_name} fields: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class OptimRunConfig(JsonConfig):
    """The optimiser/run fields every trainer shares, and their shared checks.

    A trainer config subclasses this, declares only its own fields, and redeclares a shared field
    to change its default (the field keeps its place here). `probabilities` names the trainer's
    dropout fields that must lie in [0, 1]."""

    probabilities: ClassVar[tuple[str, ...]] = ()

    batch_size: int = 12
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 50
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    steps: int = 1000
    grad_clip: float = 1.0
    ema_decay: float = 0.99
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25
    num_workers: int = 0
    deterministic: bool = True  # deterministic CUDA kernels: exact resume, somewhat slower

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON gives a list back
        for name in self.probabilities:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        if min(self.steps, self.batch_size, self.checkpoint_every, self.log_every) < 1:
            raise ValueError("steps, batch_size, checkpoint_every and log_every must be >= 1")


@dataclass
class TrainConfig(OptimRunConfig):
    """Hyper-parameters of one run. `network` holds NetworkConfig architecture fields
    (latent_dim, hidden_dim, depth, fused_depth, num_heads, clip_dim, sync_dim, text_dim,
    text_seq_len, mlp_ratio, v2); `variant` names an official architecture instead."""

    network: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    init_weights: str | None = None  # fine-tune from an existing net file (keeps its latent stats)
    mode: str = "44k"
    duration_s: float = 8.0
    # shared fields with this trainer's defaults
    batch_size: int = 8  # per process
    lr: float = 1e-4
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.0
    steps: int = 100_000
    ema_decay: float = 0.999
    checkpoint_every: int = 1000
    log_every: int = 50
    # own fields
    video_dropout: float = 0.1
    text_dropout: float = 0.1
    precision: str = "fp32"  # "bf16": autocast on CUDA (weights and optimizer stay fp32)

    probabilities: ClassVar[tuple[str, ...]] = ("video_dropout", "text_dropout")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant is None and not self.network:
            raise ValueError("set either 'variant' (e.g. small_16k) or the 'network' fields")
        if self.variant is not None and self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {sorted(VARIANTS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in [0, 1)")
        sequence_lengths(self.duration_s, self.mode)  # validates mode and duration

    # ------------------------------------------------------------------------------- network
    def network_config(self) -> NetworkConfig:
        """The architecture with this run's mode and the sequence lengths of `duration_s`."""
        if self.variant is not None:
            arch = VARIANTS[self.variant].architecture()
        else:
            arch = dict(self.network)
            unknown = set(arch) - ARCHITECTURE_FIELDS
            if unknown:
                raise ValueError(f"unknown network fields in the config: {sorted(unknown)}")
        seq = sequence_lengths(self.duration_s, self.mode)
        return NetworkConfig(**arch, mode=self.mode, latent_seq_len=seq.latent, clip_seq_len=seq.clip,
                             sync_seq_len=seq.sync)

    # --------------------------------------------------------------------------------- JSON
    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")
