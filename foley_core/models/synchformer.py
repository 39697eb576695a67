"""Synchformer visual encoder: the sync-feature extractor of MMAudio (spec §5.3).

A divided space-time ViT-B (MotionFormer, config `divided_224_16x4`) run on 16-frame segments
taken every 8 frames of the 25-fps stream, followed by a per-time-step attention pooling. Each
segment yields 8 tokens, so the output is (B, 8·S, D) at 12.5 Hz with half-overlapping segments.

Module and parameter names follow the official `synchformer_state_dict.pth` under the
`vfeat_extractor.` prefix, so official and kijai files load with `strict=True`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, MediaError

VISUAL_PREFIX = "vfeat_extractor."
SEGMENT_FRAMES = 16
SEGMENT_STRIDE = 8
LN_EPS = 1e-6


@dataclass(frozen=True)
class SynchformerConfig:
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    patch_size_temporal: int = 2
    image_size: int = 224
    num_frames: int = SEGMENT_FRAMES

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def time_steps(self) -> int:
        return self.num_frames // self.patch_size_temporal


def _layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LN_EPS)


class PatchEmbed2d(nn.Module):
    """Image patch conv. Present in the checkpoint but unused: kept so strict loading works."""

    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, cfg.patch_size, cfg.patch_size)


class PatchEmbed3d(nn.Module):
    """Tubelet embedding: (N, 3, 16, H, W) → (N, 8·14·14, D), t-major, then row, then column."""

    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        k = (cfg.patch_size_temporal, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(3, cfg.embed_dim, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DividedAttention(nn.Module):
    """Attention along one axis of the (time, space) token grid, with a shared CLS token.

    The CLS query attends to every token. Each patch query attends only to the CLS token plus
    the patches of its group: the same spatial position (axis="time") or the same time step
    (axis="space").
    """

    def __init__(self, dim: int, num_heads: int, axis: str):
        super().__init__()
        assert axis in ("time", "space")
        self.axis = axis
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, time_steps: int, space: int) -> torch.Tensor:
        n, length, dim = x.shape
        h = self.num_heads
        # [q | k | v], each split into heads → (3, N, H, L, hd)
        qkv = self.qkv(x).reshape(n, length, 3, h, dim // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]

        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (N, H, 1, hd)

        def grid(t: torch.Tensor) -> torch.Tensor:
            # patches → (N, H, groups, group_len, hd)
            g = t[:, :, 1:].unflatten(2, (time_steps, space))
            return g.transpose(2, 3) if self.axis == "time" else g

        qg, kg, vg = grid(q), grid(k), grid(v)
        groups = qg.shape[2]
        cls_k = k[:, :, None, :1].expand(-1, -1, groups, -1, -1)
        cls_v = v[:, :, None, :1].expand(-1, -1, groups, -1, -1)
        # Heads and groups merged into one batch dim: fused SDPA kernels want 4-D inputs.
        out = F.scaled_dot_product_attention(
            qg.flatten(1, 2),
            torch.cat([cls_k, kg], dim=3).flatten(1, 2),
            torch.cat([cls_v, vg], dim=3).flatten(1, 2),
        ).unflatten(1, (h, groups))
        if self.axis == "time":
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.flatten(2, 3)], dim=2)  # back to CLS + t-major patches
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DividedBlock(nn.Module):
    """Temporal attention, then spatial attention, then MLP; all pre-norm residual."""

    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = _layer_norm(d)
        self.attn = DividedAttention(d, cfg.num_heads, axis="space")
        self.timeattn = DividedAttention(d, cfg.num_heads, axis="time")
        self.norm2 = _layer_norm(d)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))
        self.norm3 = _layer_norm(d)

    def forward(self, x: torch.Tensor, time_steps: int, space: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), time_steps, space)
        x = x + self.attn(self.norm1(x), time_steps, space)
        return x + self.mlp(self.norm2(x))


class PackedSelfAttention(nn.Module):
    """Multi-head self-attention with one packed [q|k|v] projection (nn.MultiheadAttention names)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.reshape(n, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.out_proj(out.transpose(1, 2).reshape(n, length, dim))


class SpatialAggregation(nn.Module):
    """Pools the 196 patch tokens of each time step into one token via a learned CLS query.

    One pre-norm transformer encoder layer (exact GELU, feed-forward 4·D); the CLS output is kept.
    """

    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        d = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.self_attn = PackedSelfAttention(d, cfg.num_heads)
        self.linear1 = nn.Linear(d, int(d * cfg.mlp_ratio))
        self.linear2 = nn.Linear(int(d * cfg.mlp_ratio), d)
        self.norm1 = _layer_norm(d)
        self.norm2 = _layer_norm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, S, D) patch tokens → (N, T, D)."""
        n, t, s, d = x.shape
        x = x.reshape(n * t, s, d)
        x = torch.cat([self.cls_token.to(x.dtype).expand(n * t, -1, -1), x], dim=1)
        x = x + self.self_attn(self.norm1(x))
        x = x + self.linear2(F.gelu(self.linear1(self.norm2(x))))
        return x[:, 0].reshape(n, t, d)


class MotionFormerVisual(nn.Module):
    """The per-segment encoder: (N, 3, 16, 224, 224) in [−1, 1] → (N, 8, D)."""

    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid**2 + 1, d))
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.time_steps, d))
        self.patch_embed = PatchEmbed2d(cfg)
        self.patch_embed_3d = PatchEmbed3d(cfg)
        self.blocks = nn.ModuleList(DividedBlock(cfg) for _ in range(cfg.depth))
        self.norm = _layer_norm(d)
        self.spatial_attn_agg = SpatialAggregation(cfg)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens + CLS with "separate" space/time position embeddings → (N, 1+T·S, D)."""
        tokens = self.patch_embed_3d(x)
        n, _, d = tokens.shape
        t, s = self.cfg.time_steps, self.cfg.grid**2
        pos = self.pos_embed[:, 1:].unsqueeze(1) + self.temp_embed.unsqueeze(2)  # (1, T, S, D)
        tokens = tokens + pos.reshape(1, t * s, d).to(tokens.dtype)
        cls = (self.cls_token + self.pos_embed[:, :1]).to(tokens.dtype).expand(n, -1, -1)
        return torch.cat([cls, tokens], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, s = self.cfg.time_steps, self.cfg.grid**2
        x = self.embed(x)
        for block in self.blocks:
            x = block(x, t, s)
        x = self.norm(x)[:, 1:]
        return self.spatial_attn_agg(x.unflatten(1, (t, s)))


def num_segments(num_frames: int) -> int:
    """Number of 16-frame segments at stride 8; trailing frames that do not fill one are dropped."""
    if num_frames < SEGMENT_FRAMES:
        return 0
    return (num_frames - SEGMENT_FRAMES) // SEGMENT_STRIDE + 1


def visual_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Keep only the visual encoder from a full Synchformer state dict, under `vfeat_extractor.`.

    Accepts the official full file (audio branch and sync transformer are dropped), a file with
    only the prefixed visual keys (kijai), or a bare visual state dict (prefix added).
    """
    visual = {k: v for k, v in state_dict.items() if k.startswith(VISUAL_PREFIX)}
    if not visual and "patch_embed_3d.proj.weight" in state_dict:
        visual = {VISUAL_PREFIX + k: v for k, v in state_dict.items()}
    if not visual:
        raise CheckpointError(
            "Not a Synchformer checkpoint: no 'vfeat_extractor.*' keys. Expected "
            "synchformer_state_dict.pth or mmaudio_synchformer_fp16.safetensors."
        )
    return visual


def synchformer_config_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], num_heads: Optional[int] = None
) -> SynchformerConfig:
    """Infer widths/depth from shapes (keys with or without the prefix).

    The head count is not visible in the shapes; default is head width 64 (the real model).
    """
    sd = {k[len(VISUAL_PREFIX):] if k.startswith(VISUAL_PREFIX) else k: v for k, v in state_dict.items()}
    try:
        conv = sd["patch_embed_3d.proj.weight"]
        fc1 = sd["blocks.0.mlp.fc1.weight"]
        pos = sd["pos_embed"]
    except KeyError as e:
        raise CheckpointError(f"Synchformer visual weights incomplete: missing {e.args[0]!r}.") from None
    d = int(conv.shape[0])
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
    if num_heads is None:
        if d % 64:
            raise CheckpointError(f"Cannot infer Synchformer head count for width {d}; pass num_heads.")
        num_heads = d // 64
    grid = int(round((pos.shape[1] - 1) ** 0.5))
    return SynchformerConfig(
        embed_dim=d,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=fc1.shape[0] / d,
        patch_size=int(conv.shape[-1]),
        patch_size_temporal=int(conv.shape[2]),
        image_size=grid * int(conv.shape[-1]),
        num_frames=int(conv.shape[2]) * int(sd["temp_embed"].shape[1]),
    )


class SynchformerVisualEncoder(nn.Module):
    """Frames (B, T, 3, 224, 224) uint8 at 25 fps → sync features (B, 8·S, D)."""

    def __init__(self, cfg: Optional[SynchformerConfig] = None, segment_chunk: int = 16):
        super().__init__()
        self.vfeat_extractor = MotionFormerVisual(cfg or SynchformerConfig())
        self.segment_chunk = segment_chunk

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        num_heads: Optional[int] = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        segment_chunk: int = 16,
    ) -> "SynchformerVisualEncoder":
        """Strict load of the visual part of a Synchformer checkpoint (built on meta, no init)."""
        sd = visual_state_dict(state_dict)
        cfg = synchformer_config_from_state_dict(sd, num_heads=num_heads)
        with torch.device("meta"):
            model = cls(cfg, segment_chunk=segment_chunk)
        try:
            model.load_state_dict(sd, strict=True, assign=True)
        except RuntimeError as e:
            raise CheckpointError(f"Synchformer visual weights do not match: {str(e)[:500]}") from None
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)

    @property
    def dtype(self) -> torch.dtype:
        return self.vfeat_extractor.cls_token.dtype

    @property
    def device(self) -> torch.device:
        return self.vfeat_extractor.cls_token.device

    @staticmethod
    def to_model_input(frames_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 (…, 3, H, W) → float32 in [−1, 1]: (u8/255 − 0.5)/0.5."""
        return (frames_uint8.float() / 255.0 - 0.5) / 0.5

    def segments(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) → (B, S, 16, 3, H, W) view of the overlapping segments (no copy)."""
        s = num_segments(frames_uint8.shape[1])
        if s == 0:
            raise MediaError(
                f"Synchformer needs at least {SEGMENT_FRAMES} frames at 25 fps (0.64 s); "
                f"got {frames_uint8.shape[1]}."
            )
        seg = frames_uint8.unfold(1, SEGMENT_FRAMES, SEGMENT_STRIDE)  # (B, S, 3, H, W, 16)
        return seg.permute(0, 1, 5, 2, 3, 4)

    @torch.inference_mode()
    def encode_segments(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) uint8 → (B, S, 8, D) float32, segments batched in chunks."""
        if frames_uint8.ndim != 5 or frames_uint8.shape[2] != 3:
            raise MediaError(f"Sync frames must be (B, T, 3, H, W); got {tuple(frames_uint8.shape)}.")
        if frames_uint8.dtype != torch.uint8:
            raise MediaError(f"Sync frames must be uint8, got {frames_uint8.dtype}.")
        size = self.vfeat_extractor.cfg.image_size
        if frames_uint8.shape[-2:] != (size, size):
            raise MediaError(
                f"Sync frames must be {size}×{size}; got {tuple(frames_uint8.shape[-2:])}."
            )
        seg = self.segments(frames_uint8)
        b, s = seg.shape[:2]
        flat = seg.reshape(b * s, *seg.shape[2:])  # copies only the uint8 frames
        out = []
        for chunk in flat.split(max(1, self.segment_chunk)):
            x = self.to_model_input(chunk.to(self.device)).to(self.dtype)
            x = x.permute(0, 2, 1, 3, 4)  # (N, 3, 16, H, W) for the Conv3d
            out.append(self.vfeat_extractor(x).float())
        return torch.cat(out).reshape(b, s, *out[0].shape[1:])

    def forward(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, 224, 224) uint8 → (B, 8·S, D) float32, segment-major."""
        return self.encode_segments(frames_uint8).flatten(1, 2)
