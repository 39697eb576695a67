"""Style-adapter training (the global style path, models/style_adapter.py) on a frozen backbone.

    python -m foley_core.training references --features F --vae VAE [--sources DIR] ...
    python -m foley_core.training train-adapter --features F --config adapter.json --out RUN
    python -m foley_core.training export-adapter --run RUN --out adapter.safetensors

`references` encodes reference segments of every clip once, into F/references.safetensors:
- stage 1 (AC-Foley's first stage): segments inside the training target (the clip's first
  `duration_s` seconds), so reference and target overlap;
- stage 2: segments of the same recording that do not overlap the target (after it), read from
  `--sources DIR/<clip stem>.wav|.mp4` when given (a longer recording of the clip), else from the
  clip's own file. Clips without room for such a segment have none (training stage 2 skips them).
Per segment: the AC-Foley acoustic vector (mean of the VAE posterior mean over the segment) and,
when their encoders are given, the BEATs timbre and style-conditioner tempo embeddings — the
exact functions Foley Style Encode uses (style.py), so training and use see the same inputs.

Training: the backbone (any flow-network file) is frozen; only the adapter learns, with the
unchanged flow-matching loss. Per sample the reference is dropped with `reference_dropout`
(F_style = 0: the backbone's own no-reference behaviour), and the usual video/text dropouts
apply, plus `clip_dropout` (CLIP features only → the learned empty ones, sync kept) so the adapter
can be trained where the picture and caption do not already give the sound away. The shared
machinery (DDP, per-(seed, step, rank) noise, DistributedSampler order, EMA, checkpoints, exact
resume) is training/driver.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from ..errors import FoleyError
from ..models.style_adapter import PARTS, StyleAdapter, StyleAdapterConfig, load_adapter, save_adapter
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .config import OptimRunConfig
from .driver import TrainingTask, prepare_run, run_training
from .flow_loss import FlowMatchingObjective, draw_step_noise, flow_target
from .frozen_backbone import load_frozen_backbone
from .shards import ShardDataset

REFERENCES_NAME = "references.safetensors"
STAGES = (1, 2)


# ------------------------------------------------------------------------------ references
def _segment_offsets(generator: torch.Generator, low: float, high: float, count: int) -> list[float]:
    """`count` offsets spread over [low, high]: one random point per equal sub-range."""
    if high < low:
        return []
    u = torch.rand(count, generator=generator).tolist()
    width = (high - low) / count
    return [round(low + width * (k + u[k]), 4) for k in range(count)]


def _stage2_source(clip: dict, sources_dir: Optional[Path]) -> Path:
    if sources_dir is not None:
        stem = Path(clip["name"]).stem
        for suffix in (".wav", ".flac", ".mp4", ".mov", ".mkv"):
            candidate = sources_dir / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return Path(clip["source"])


def extract_references(feature_dir: str | Path, vae, *, segment_s: float = 2.0, per_stage: int = 4,
                       sources_dir: str | Path | None = None, seed: int = 0, timbre_encoder=None,
                       tempo_conditioner=None, mert=None, vae_file: str = "",
                       report: Callable[[str], None] = print) -> dict[str, Any]:
    """Write FEATURES/references.safetensors (see the module doc); returns its metadata.

    Every segment is encoded on its own with `style.encode_reference` (+ `add_style_embeddings`),
    exactly as Foley Style Encode encodes a user's reference. A `--sources` recording must start
    where the clip starts (its first `duration_s` seconds are the target).
    """
    from ..media.audio import decode_audio_stream
    from ..style import add_style_embeddings, encode_reference

    feature_dir = Path(feature_dir)
    dataset = ShardDataset(feature_dir)
    duration, mode = dataset.duration_s, dataset.mode
    if segment_s > duration:
        raise FoleyError(f"reference segments of {segment_s} s do not fit the {duration} s targets")
    sources = Path(sources_dir) if sources_dir else None
    generator = torch.Generator("cpu").manual_seed(int(seed))
    embed = timbre_encoder is not None or tempo_conditioner is not None
    rows: dict[str, Any] = {}
    stage2_clips = 0
    for number, clip in enumerate(dataset.clips):
        path = _stage2_source(clip, sources)
        decoded = decode_audio_stream(path)
        if decoded is None:
            raise FoleyError(f"{clip['name']}: {path} has no audio to take reference segments from")
        wave, rate = decoded
        total = wave.shape[-1] / rate
        offsets = {1: _segment_offsets(generator, 0.0, duration - segment_s, per_stage),
                   2: _segment_offsets(generator, duration, total - segment_s, per_stage)}
        for stage in STAGES:
            values: dict[str, list[torch.Tensor]] = {}
            for offset in offsets[stage]:
                style = encode_reference(vae, wave, rate, mode, offset_s=offset, prompt_s=segment_s)
                if embed:
                    style = add_style_embeddings(style, wave, rate, timbre_encoder=timbre_encoder,
                                                 tempo_conditioner=tempo_conditioner, mert=mert)
                for part, value in (("acoustic", style.acoustic_vector), ("timbre", style.timbre_embedding),
                                    ("tempo", style.tempo_embedding)):
                    if value is not None:
                        values.setdefault(part, []).append(value.reshape(-1).float())
            count = len(offsets[stage])
            valid = torch.zeros(per_stage, dtype=torch.bool)
            valid[:count] = True
            stage2_clips += int(stage == 2 and count > 0)
            rows.setdefault(f"stage{stage}.valid", []).append(valid)
            rows.setdefault(f"stage{stage}.offset_s", []).append(
                torch.tensor(offsets[stage] + [-1.0] * (per_stage - count)))
            for part, vectors in values.items():
                rows.setdefault(f"stage{stage}.{part}", {})[number] = torch.stack(vectors)
        if (number + 1) % 50 == 0:
            report(f"references: {number + 1}/{len(dataset)} clips")
    tensors = {}
    for key, value in rows.items():
        if isinstance(value, dict):  # per-clip stacks; clips without segments get zero rows
            dim = next(iter(value.values())).shape[-1]
            full = torch.zeros(len(dataset), per_stage, dim)
            for number, vectors in value.items():
                full[number, :len(vectors)] = vectors
            tensors[key] = full
        else:
            tensors[key] = torch.stack(value).contiguous()
    parts = [p for p in PARTS if f"stage1.{p}" in tensors]
    meta = {"segment_s": segment_s, "per_stage": per_stage, "seed": seed, "parts": parts,
            "dims": {p: int(tensors[f"stage1.{p}"].shape[-1]) for p in parts}, "vae": vae_file,
            "sources": str(sources) if sources else None, "stage2_clips": stage2_clips,
            "clips": [c["name"] for c in dataset.clips]}
    tmp = feature_dir / (REFERENCES_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"references": json.dumps(meta)})
    tmp.replace(feature_dir / REFERENCES_NAME)
    report(f"wrote {REFERENCES_NAME}: {len(dataset)} clips, parts {parts}, "
           f"{stage2_clips} with non-overlapping (stage 2) segments")
    return meta


def load_references(feature_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(feature_dir) / REFERENCES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m foley_core.training references` first")
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        meta = json.loads(handle.metadata()["references"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    return tensors, meta


# ---------------------------------------------------------------------------------- config
@dataclass
class AdapterTrainConfig(OptimRunConfig):
    config_name = "adapter config"

    backbone: str = ""  # flow-network file (frozen)
    stage: int = 1  # 1: reference overlaps the target; 2: non-overlapping segments of the clip
    init_adapter: Optional[str] = None  # continue from an exported adapter (stage 2 after stage 1)
    parts: list[str] = field(default_factory=lambda: ["acoustic"])
    hidden_dim: int = 256
    reference_dropout: float = 0.1
    video_dropout: float = 0.0
    clip_dropout: float = 0.0
    text_dropout: float = 0.1
    # shared fields (OptimRunConfig) with this trainer's defaults
    checkpoint_every: int = 200

    probabilities = ("reference_dropout", "video_dropout", "clip_dropout", "text_dropout")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.parts = list(self.parts)
        if not self.backbone:
            raise ValueError("set 'backbone': the flow-network file the adapter is trained against")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be 1 or 2, not {self.stage}")
        unknown = set(self.parts) - set(PARTS)
        if not self.parts or unknown:
            raise ValueError(f"parts must be a non-empty subset of {PARTS}")


# ------------------------------------------------------------------------------- objective
class AdapterObjective(nn.Module):
    """Flow-matching loss of the frozen backbone with F_style added to its global condition."""

    def __init__(self, net, adapter: StyleAdapter):
        super().__init__()
        self.net = net
        self.adapter = adapter
        self._dropper = FlowMatchingObjective(net)

    def forward(self, latent_mean, latent_std, clip_f, sync_f, text_f, noise, drop_clip, keep_reference,
                **parts) -> torch.Tensor:
        net = self.net
        x1 = net.normalize(latent_mean + latent_std * noise.posterior_eps)
        x_t, target = flow_target(noise.x0, x1, noise.t)
        clip_f, sync_f, text_f = self._dropper.dropped_conditions(clip_f, sync_f, text_f,
                                                                  noise.drop_video, noise.drop_text)
        clip_f = torch.where(drop_clip.view(-1, 1, 1), net.empty_clip_feat.to(clip_f).expand_as(clip_f), clip_f)
        style = self.adapter(keep=keep_reference, **parts)
        velocity = net(x_t, noise.t, clip_f, sync_f, text_f, extra_global=style)
        return F.mse_loss(velocity.float(), target.float())


def _pick_references(tensors: dict[str, torch.Tensor], stage: int, parts: list[str], rows: torch.Tensor,
                     u: torch.Tensor) -> dict[str, torch.Tensor]:
    """One valid segment per row (u in [0, 1) picks among the row's valid segments)."""
    valid = tensors[f"stage{stage}.valid"][rows]  # (B, K)
    count = valid.sum(1)
    nth = torch.clamp((u * count).long(), max=(count - 1).clamp_min(0))
    # Index of the nth True in each row.
    ranks = valid.long().cumsum(1) - 1
    choice = ((ranks == nth.view(-1, 1)) & valid).float().argmax(1)
    return {p: tensors[f"stage{stage}.{p}"][rows, choice] for p in parts}


def backbone_info(path: Path, built) -> dict[str, Any]:
    cfg = built.network.config
    return {"file": path.name, "variant": built.variant, "mode": built.mode, "hidden_dim": cfg.hidden_dim,
            "latent_dim": cfg.latent_dim, "duration_s": built.trained_window_s}


def build_adapter(config: AdapterTrainConfig, built, references: tuple[dict, dict], backbone_path: Path
                  ) -> StyleAdapter:
    tensors, meta = references
    missing = [p for p in config.parts if p not in meta["parts"]]
    if missing:
        raise FoleyError(f"the references hold {meta['parts']} but the config asks for {config.parts}; "
                         "extract them with the encoders of the missing parts")
    dims = {f"{p}_dim": meta["dims"][p] for p in config.parts}
    adapter = StyleAdapter(StyleAdapterConfig(width=built.network.config.hidden_dim, hidden_dim=config.hidden_dim,
                                              backbone=backbone_info(backbone_path, built), **dims))
    if config.init_adapter:
        init, _ = load_adapter(config.init_adapter)
        if init.config.to_dict() != adapter.config.to_dict():
            raise FoleyError(f"init_adapter {config.init_adapter} has config {init.config.to_dict()}, "
                             f"this run builds {adapter.config.to_dict()}")
        adapter.load_state_dict(init.state_dict())
    else:
        for part in config.parts:  # standardise each input with the training references' statistics
            valid = tensors[f"stage{config.stage}.valid"]
            adapter.set_input_statistics(part, tensors[f"stage{config.stage}.{part}"][valid])
    return adapter.requires_grad_(True).train()


def train_adapter(feature_dir: str | Path, config: Optional[AdapterTrainConfig], run_dir: str | Path, *,
                  resume: bool = False, stop_at: Optional[int] = None, device: str = "auto") -> dict[str, Any]:
    """Train (or continue) an adapter; returns the summary written to RUNDIR/final.json."""
    run_dir = Path(run_dir)
    state, config, ctx = prepare_run(run_dir, config, AdapterTrainConfig, resume=resume, device=device,
                                     label="adapter run")
    dataset = ShardDataset(feature_dir)
    references = load_references(feature_dir)
    tensors, meta = references
    if meta["clips"] != [c["name"] for c in dataset.clips]:
        raise ValueError("references.safetensors does not belong to this feature folder; re-run `references`")
    backbone_path, built, net, seq = load_frozen_backbone(config.backbone, dataset, check_mode=False)
    # Stage 2 trains only on clips with a non-overlapping segment.
    usable = tensors[f"stage{config.stage}.valid"].any(1).nonzero().flatten().tolist()
    if not usable:
        raise FoleyError(f"no clip has stage-{config.stage} reference segments (stage 2 needs recordings "
                         "longer than the target: `references --sources`)")
    row_of = {name: i for i, name in enumerate(meta["clips"])}

    torch.manual_seed(config.seed)  # identical adapter initialisation on every rank
    adapter = build_adapter(config, built, references, backbone_path)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    lengths = (seq["latent"], net.config.latent_dim)

    def step_loss(model, batch, generator, step) -> torch.Tensor:
        noise = draw_step_noise(generator, config.batch_size, *lengths, config.video_dropout, config.text_dropout)
        # Adapter-only draws come after the network trainer's, in a fixed order.
        coins = torch.rand(config.batch_size, 3, generator=generator)
        noise.drop_text |= ~batch["has_text"]
        rows = torch.tensor([row_of[name] for name in batch["name"]])
        parts = _pick_references(tensors, config.stage, config.parts, rows, coins[:, 2])
        keep = coins[:, 0] >= config.reference_dropout
        drop_clip = coins[:, 1] < config.clip_dropout
        noise = noise.to(ctx.device)
        inputs = [batch[k].to(ctx.device) for k in ("latent_mean", "latent_std", "clip_f", "sync_f", "text_f")]
        return model(*inputs, noise, drop_clip.to(ctx.device), keep.to(ctx.device),
                     **{p: v.to(ctx.device) for p, v in parts.items()})

    task = TrainingTask(kind="adapter", config=config, trained=adapter, objective=AdapterObjective(net, adapter),
                        num_samples=len(usable), step_loss=step_loss, dataset=dataset, sample_ids=usable,
                        weights_key="adapter", samples_name="usable clips", checkpoint_extra={
                            "adapter_config": json.dumps(adapter.config.to_dict()),
                            "references": json.dumps({k: v for k, v in meta.items() if k != "clips"})})
    return run_training(task, ctx, run_dir, state=state, stop_at=stop_at)


def export_adapter(run_dir: str | Path, out_file: str | Path, *, use_ema: bool = True) -> Path:
    """Write the run's (EMA) adapter as .safetensors + metadata (kind, inputs, dims, backbone)."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    if ckpt.get("kind") != "adapter":
        raise ValueError(f"{run_dir} is not a style-adapter run (export networks with `export`)")
    config = AdapterTrainConfig.from_dict(ckpt["config"])
    adapter = StyleAdapter(StyleAdapterConfig.from_dict(json.loads(ckpt["adapter_config"])))
    adapter.load_state_dict(ckpt["ema"] if use_ema else ckpt["adapter"])
    training = {"stage": config.stage, "step": ckpt["step"], "weights": "ema" if use_ema else "model",
                "reference_dropout": config.reference_dropout, "clip_dropout": config.clip_dropout,
                "text_dropout": config.text_dropout, "video_dropout": config.video_dropout,
                "init_adapter": Path(config.init_adapter).name if config.init_adapter else None,
                "references": json.loads(ckpt["references"])}
    return save_adapter(adapter, out_file, training)
