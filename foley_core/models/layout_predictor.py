"""TiVA's audio-layout predictor 𝒯 (Wang et al., MM '24, §3.2.1, Eq. 3-4): video → layout [M, C].

From the paper: CLIP's CLS and patch features of layers 4, 8 and 11 (ViT-B) per frame; the encoder
takes the concatenated, pooled patch features and runs windowed self-attention among adjacent
frames (Table 4: global + windowed self-attention is best); the decoder's queries are the pooled,
concatenated CLS features plus learned query tokens; each decoder block has a self-attention, a
cross-attention (queries → encoded patches) and a windowed self-attention layer; a linear output
layer; L2 loss against the true layout (Eq. 8).

Chosen here (the paper does not say, or says it for a fixed 10 s clip only):
- CLIP layers for a CLIP of L vision blocks: round(L · 4/12), round(L · 8/12), round(L · 11/12)
  (the paper's fractions; duplicates dropped; layer 0 = the embedded input), recorded in the
  config with the CLIP it was trained on (shape + a weight probe), and a mismatch is refused;
- frames: FoleyLoadVideo's CLIP stream (8 fps, 384 px squash — the frames MMAudio's CLIP sees);
- patch pooling: area average onto a `grid` × `grid` layout of cells per frame (the cells stay
  separate tokens); inputs standardised with the training set's per-dimension mean / std;
- duration-free decoding: one query per layout frame, at the frame's centre time; a query is a
  learned token + a sinusoidal embedding of its time + the projected CLS features interpolated to
  that time (TiVA pairs query i with frame i; its single linear over all queries fixes the clip
  length, so the output layer here is per query: Linear(width → C));
- windowed attention: tokens attend to tokens within `window_s` seconds; long videos are predicted
  in `context_s` windows (the training clip length) and stitched;
- optional `frame_deltas` (not in TiVA): each frame's standardised features are fed together with
  their change from the previous frame, an explicit motion cue for the sound events;
- widths (64, 4 heads, 1 encoder and 2 decoder blocks) small enough to train on a CPU.

Files: weights-only .safetensors, metadata kind "foley_layout_predictor" (models/add_on_files.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..controls.layout import LAYOUT_BANDS, LAYOUT_FRAME_RATE, Layout, layout_frames
from ..errors import CheckpointError, FoleyError

KIND = "foley_layout_predictor"
FORMAT_VERSION = "1"
FEATURE_VERSION = "clip-layers-grid-v1"  # bump when the feature recipe changes
TIVA_LAYERS = (4, 8, 11)  # of a 12-block ViT-B
TIVA_DEPTH = 12
FRAME_RATE = 8.0  # FoleyLoadVideo's CLIP stream
PROBE_VALUES = 16  # weights per probed tensor (recognises the CLIP a predictor was trained on)


def tiva_layers(depth: int) -> tuple[int, ...]:
    """TiVA's layers 4/8/11 of 12 as the same fractions of a CLIP with `depth` vision blocks."""
    if depth < 1:
        raise FoleyError(f"a CLIP with {depth} vision blocks has no layers to read")
    return tuple(sorted({min(depth, max(0, round(depth * layer / TIVA_DEPTH))) for layer in TIVA_LAYERS}))


def clip_signature(encoder) -> dict[str, Any]:
    """What identifies a CLIP for the predictor: its vision shapes and a probe of its weights."""
    visual = encoder.model.visual
    conv = visual.conv1.weight.detach().float().flatten()
    return {"blocks": int(len(visual.transformer.resblocks)), "width": int(visual.conv1.weight.shape[0]),
            "patch_size": int(visual.conv1.weight.shape[-1]),
            "tokens": int(visual.positional_embedding.shape[0]),
            "probe": [round(float(v), 5) for v in
                      torch.cat([visual.class_embedding.detach().float().flatten()[:PROBE_VALUES],
                                 conv[:: max(1, conv.numel() // PROBE_VALUES)][:PROBE_VALUES]]).cpu()]}


def signature_mismatch(trained: dict[str, Any], used: dict[str, Any]) -> Optional[str]:
    """None when `used` is the CLIP of `trained`, else what differs (tolerant to fp16 / bf16 loads)."""
    for key in ("blocks", "width", "patch_size", "tokens"):
        if int(trained.get(key, -1)) != int(used.get(key, -2)):
            return f"{key} {used.get(key)} instead of {trained.get(key)}"
    a, b = np.asarray(trained.get("probe", []), np.float64), np.asarray(used.get("probe", []), np.float64)
    scale = max(1e-6, float(np.abs(a).max(initial=0.0)))
    if a.shape != b.shape or float(np.abs(a - b).max(initial=0.0)) > 0.02 * scale:
        return "other weights (same shapes)"
    return None


@dataclass
class LayoutPredictorConfig:
    clip_file: str = ""  # the CLIP weights it was trained on (file name, for messages)
    clip_signature: dict = field(default_factory=dict)  # clip_signature() of that CLIP
    layers: tuple = (0, 1)
    clip_width: int = 64
    grid: int = 3
    frame_rate: float = FRAME_RATE
    bands: int = LAYOUT_BANDS
    layout_rate: float = LAYOUT_FRAME_RATE
    width: int = 64
    heads: int = 4
    encoder_blocks: int = 1
    decoder_blocks: int = 2
    ffn_mult: int = 2
    dropout: float = 0.1
    window_s: float = 0.5
    context_s: float = 4.0
    frame_deltas: bool = False  # also feed each frame's change from the previous frame (motion)
    feature_version: str = FEATURE_VERSION

    def __post_init__(self) -> None:
        self.layers = tuple(int(x) for x in self.layers)
        if not self.layers or self.grid < 1 or self.width % self.heads or self.bands < 1:
            raise ValueError("layout predictor: needs layers, grid >= 1, bands >= 1, width divisible by heads")
        if not (self.window_s > 0 and self.context_s > 0 and self.frame_rate > 0 and self.layout_rate > 0):
            raise ValueError("layout predictor: window_s, context_s and the rates must be positive")

    @property
    def feature_dim(self) -> int:
        return len(self.layers) * self.clip_width

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LayoutPredictorConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown layout predictor config fields: {sorted(unknown)}")
        return cls(**data)


# ------------------------------------------------------------------------------------ features
@torch.no_grad()
def clip_layer_features(encoder, frames_uint8: torch.Tensor, layers: Sequence[int], grid: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(cls [T, L·D], patches [T, grid², L·D]) float32 from CLIP-stream frames [T, 3, H, W] uint8:
    each layer's CLS token and its patch tokens area-pooled onto a grid, layers concatenated."""
    states = encoder.encode_image_layers(frames_uint8, layers)  # [T, L, 1 + P, D]
    t, n_layers, tokens, width = states.shape
    side = int(round(math.sqrt(tokens - 1)))
    if side * side != tokens - 1:
        raise FoleyError(f"CLIP patch tokens ({tokens - 1}) do not form a square grid")
    cls = states[:, :, 0].reshape(t, n_layers * width)
    patches = states[:, :, 1:].reshape(t * n_layers, side, side, width).permute(0, 3, 1, 2)
    pooled = F.adaptive_avg_pool2d(patches, grid).reshape(t, n_layers, width, grid * grid)
    return cls.cpu(), pooled.permute(0, 3, 1, 2).reshape(t, grid * grid, n_layers * width).cpu()


# ---------------------------------------------------------------------------------------- model
def time_embedding(times: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoids of time in seconds (periods 0.2 s … 40 s), [..., width]."""
    half = width // 2
    periods = torch.logspace(math.log10(0.2), math.log10(40.0), half, device=times.device)
    angles = times.float()[..., None] * (2 * math.pi / periods)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def window_mask(times_q: torch.Tensor, times_k: torch.Tensor, radius: float) -> torch.Tensor:
    """Bool [Q, K]: True where attention is NOT allowed (|t_q - t_k| > radius)."""
    return (times_q[:, None] - times_k[None, :]).abs() > radius + 1e-6


class _Block(nn.Module):
    """Pre-norm attention (self or cross) + residual; an optional feed-forward after it."""

    def __init__(self, width: int, heads: int, dropout: float, ffn_mult: int = 0):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.ffn = None
        if ffn_mult:
            self.ffn = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, ffn_mult * width), nn.GELU(),
                                     nn.Dropout(dropout), nn.Linear(ffn_mult * width, width))

    def forward(self, x, memory=None, mask=None):
        h = self.norm(x)
        kv = h if memory is None else memory
        x = x + self.attn(h, kv, kv, attn_mask=mask, need_weights=False)[0]
        return x + self.ffn(x) if self.ffn is not None else x


class LayoutPredictor(nn.Module):
    """(cls [B, T, F], patches [B, T, P, F], frame times [T], query times [M]) → layout [B, M, C]."""

    def __init__(self, config: Optional[LayoutPredictorConfig] = None):
        super().__init__()
        self.config = config = config or LayoutPredictorConfig()
        d, dim, cells = config.width, config.feature_dim, config.grid * config.grid
        for name in ("cls", "patch"):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        inputs = 2 * dim if config.frame_deltas else dim
        self.patch_in = nn.Linear(inputs, d)
        self.cls_in = nn.Linear(inputs, d)
        self.cell = nn.Parameter(torch.randn(cells, d) * 0.02)
        self.time_in = nn.Linear(d, d)
        self.query = nn.Parameter(torch.randn(d) * 0.02)
        # Encoder: global self-attention, then windowed self-attention (Table 4: SA + WA).
        self.encoder = nn.ModuleList()
        for _ in range(config.encoder_blocks):
            self.encoder.append(_Block(d, config.heads, config.dropout, config.ffn_mult))
            self.encoder.append(_Block(d, config.heads, config.dropout, config.ffn_mult))
        # Decoder block: self-attention, cross-attention, windowed self-attention (+ feed-forward).
        self.decoder = nn.ModuleList()
        for _ in range(config.decoder_blocks):
            self.decoder.append(nn.ModuleList([_Block(d, config.heads, config.dropout),
                                               _Block(d, config.heads, config.dropout),
                                               _Block(d, config.heads, config.dropout, config.ffn_mult)]))
        self.out_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.bands)

    def set_statistics(self, cls: torch.Tensor, patches: torch.Tensor, layouts: torch.Tensor) -> None:
        """Standardise inputs with the training features; start the output at the mean layout."""
        for name, data in (("cls", cls), ("patch", patches)):
            flat = data.reshape(-1, data.shape[-1]).float()
            std = flat.std(0)
            # A dimension constant over the training set (layer 0's CLS token is the same for every
            # frame) carries nothing; a huge scale keeps it at ~0 when the input differs by rounding.
            constant = std <= 1e-6 * max(1.0, float(std.median()))
            getattr(self, f"{name}_mean").copy_(flat.mean(0))
            getattr(self, f"{name}_std").copy_(torch.where(constant, torch.full_like(std, 1e6), std.clamp_min(1e-4)))
        with torch.no_grad():
            self.head.bias.copy_(layouts.reshape(-1, layouts.shape[-1]).float().mean(0))

    def forward(self, cls: torch.Tensor, patches: torch.Tensor, frame_times: torch.Tensor,
                query_times: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b, t, p, dim = patches.shape
        if cls.shape != (b, t, dim) or dim != cfg.feature_dim or p != cfg.grid ** 2:
            raise FoleyError(f"layout predictor input: cls [B, T, {cfg.feature_dim}] and patches "
                             f"[B, T, {cfg.grid ** 2}, {cfg.feature_dim}], got {tuple(cls.shape)} / "
                             f"{tuple(patches.shape)}")
        frame_times, query_times = frame_times.to(patches.device).float(), query_times.to(patches.device).float()
        frame_time = self.time_in(time_embedding(frame_times, cfg.width))  # [T, d]
        x = self.patch_in(self._with_deltas((patches - self.patch_mean) / self.patch_std))
        x = (x + self.cell + frame_time[:, None]).reshape(b, t * p, cfg.width)
        token_times = frame_times.repeat_interleave(p)
        local = window_mask(token_times, token_times, cfg.window_s)
        for index, block in enumerate(self.encoder):
            x = block(x, mask=local if index % 2 else None)
        # Queries: learned token + time + the CLS features interpolated to the query's time.
        c = self.cls_in(self._with_deltas((cls - self.cls_mean) / self.cls_std))  # [B, T, d]
        q = self.query + self.time_in(time_embedding(query_times, cfg.width)) + _interpolate(c, frame_times,
                                                                                           query_times)
        q_local = window_mask(query_times, query_times, cfg.window_s)
        for self_attn, cross, windowed in self.decoder:
            q = self_attn(q)
            q = cross(q, memory=x)
            q = windowed(q, mask=q_local)
        return self.head(self.out_norm(q))

    def _with_deltas(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, ...] with its frame-to-frame change appended (zero at the first frame), if enabled."""
        if not self.config.frame_deltas:
            return x
        delta = torch.zeros_like(x)
        delta[:, 1:] = x[:, 1:] - x[:, :-1]
        return torch.cat([x, delta], dim=-1)


def _interpolate(values: torch.Tensor, times: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """values [B, T, d] sampled at `times` → linear interpolation at `at` (edges held), [B, M, d]."""
    if values.shape[1] == 1:
        return values.expand(-1, at.shape[0], -1)
    pos = torch.searchsorted(times.contiguous(), at.contiguous()).clamp(1, times.shape[0] - 1)
    t0, t1 = times[pos - 1], times[pos]
    w = ((at - t0) / (t1 - t0).clamp_min(1e-6)).clamp(0, 1)[None, :, None]
    return values[:, pos - 1] * (1 - w) + values[:, pos] * w


def frame_times(count: int, rate: float) -> torch.Tensor:
    """Times (s) of frames k / rate, as FoleyLoadVideo samples its streams."""
    return torch.arange(count, dtype=torch.float32) / float(rate)


def query_times(count: int, rate: float) -> torch.Tensor:
    """Centre times (s) of layout frames (frame i covers [i / rate, (i + 1) / rate))."""
    return (torch.arange(count, dtype=torch.float32) + 0.5) / float(rate)


@torch.no_grad()
def predict_layout(predictor: LayoutPredictor, cls: torch.Tensor, patches: torch.Tensor,
                   duration_s: float) -> Layout:
    """The layout of one clip from its features (cls [T, F], patches [T, P, F] at the config's
    frame rate), predicted in context_s windows (the last one aligned to the end) and stitched."""
    cfg = predictor.config
    predictor.eval()
    if not duration_s > 0 or cls.shape[0] == 0:
        raise FoleyError("Layout prediction needs a video with frames and a positive duration.")
    m = layout_frames(duration_s, cfg.layout_rate)
    times_f, times_q = frame_times(cls.shape[0], cfg.frame_rate), query_times(m, cfg.layout_rate)
    device = next(predictor.parameters()).device
    out = torch.zeros(m, cfg.bands)
    starts = [0.0] if duration_s <= cfg.context_s else \
        [min(k * cfg.context_s, duration_s - cfg.context_s) for k in range(int(math.ceil(duration_s / cfg.context_s)))]
    for index, start in enumerate(starts):
        stop = start + cfg.context_s
        frames = (times_f >= start - 1e-6) & (times_f < stop - 1e-6)
        own_from = index * cfg.context_s if index else 0.0  # earlier windows keep their queries
        queries = (times_q >= own_from) & ((times_q < stop) if index < len(starts) - 1 else times_q >= 0)
        if not frames.any() or not queries.any():
            continue
        pred = predictor(cls[frames][None].float().to(device), patches[frames][None].float().to(device),
                         times_f[frames] - start, times_q[queries] - start)[0]
        out[queries] = pred.float().cpu()
    return Layout(values=out.clamp(0, 1).numpy().astype(np.float32), frame_rate=float(cfg.layout_rate))


def check_clip(predictor: LayoutPredictor, encoder, clip_name: str = "the connected CLIP") -> None:
    """Refuse a CLIP other than the one the predictor was trained on (its features would differ)."""
    cfg = predictor.config
    problem = signature_mismatch(cfg.clip_signature, clip_signature(encoder))
    if problem:
        raise FoleyError(
            f"The layout predictor was trained on CLIP {cfg.clip_file or '(unnamed)'} (layers "
            f"{list(cfg.layers)} of {cfg.clip_signature.get('blocks')} blocks, width "
            f"{cfg.clip_signature.get('width')}), but {clip_name} differs ({problem}); its features would "
            "not mean what the predictor learned. Use that CLIP (Foley Load Layout Predictor's `clip`, or "
            "the encoders it was trained with), or retrain the predictor on this CLIP "
            "(`python -m foley_core.training layout-predictor`).")


def video_layout(predictor: LayoutPredictor, encoder, clip_frames: torch.Tensor, fps: float,
                 duration_s: float, clip_name: str = "the connected CLIP") -> Layout:
    """The layout a predictor gives a video segment (CLIP-stream frames [T, 3, H, W] uint8 at `fps`)."""
    from ..controls.mapper_features import frames_at_rate

    check_clip(predictor, encoder, clip_name)
    cfg = predictor.config
    if abs(float(fps) - cfg.frame_rate) > 1e-6:
        clip_frames = frames_at_rate(clip_frames, np.arange(len(clip_frames)) / float(fps), duration_s,
                                     cfg.frame_rate)
    cls, patches = clip_layer_features(encoder, clip_frames, cfg.layers, cfg.grid)
    return predict_layout(predictor, cls, patches, duration_s)


# ---------------------------------------------------------------------------------------- files
def save_predictor(predictor: LayoutPredictor, path: str | Path, training: Optional[dict] = None) -> Path:
    from .add_on_files import save_add_on

    return save_add_on(predictor, path, kind=KIND, format_version=FORMAT_VERSION, label="a layout predictor",
                       training=training)


def load_predictor(path: str | Path) -> tuple[LayoutPredictor, dict[str, Any]]:
    """(predictor in eval mode on the CPU, {"config", "training"}) from a `save_predictor` file."""
    from .add_on_files import add_on_summary, load_matching_weights, parse_config, read_add_on_metadata

    hint = "export predictors with `python -m foley_core.training layout-predictor export`"
    path, metadata = read_add_on_metadata(
        path, kind=KIND, label="Layout predictor", noun="layout predictor", folder="foley_layout_predictor",
        made_by=hint, wrong_kind_hint=f"put it into the matching loader, and {hint}")
    config = parse_config(metadata, LayoutPredictorConfig.from_dict, "Layout predictor", path)
    if config.feature_version != FEATURE_VERSION:
        raise CheckpointError(f"Layout predictor {path.name} was trained on features {config.feature_version!r}; "
                              f"this plugin computes {FEATURE_VERSION!r}. Retrain it "
                              "(`python -m foley_core.training layout-predictor`).")
    predictor = LayoutPredictor(config)
    load_matching_weights(predictor, path, "Layout predictor")
    return predictor, add_on_summary(config, metadata)


def describe(predictor: LayoutPredictor) -> str:
    cfg = predictor.config
    params = sum(p.numel() for p in predictor.parameters())
    return (f"TiVA layout predictor ({params / 1e3:.0f}k parameters; CLIP {cfg.clip_file or '?'} layers "
            f"{list(cfg.layers)}, {cfg.grid}×{cfg.grid} patch cells at {cfg.frame_rate:g} fps → "
            f"{cfg.bands} bands at {cfg.layout_rate:g} frames/s)")
