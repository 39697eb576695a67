"""The audio branch `afeat_extractor` (spec §3): AST ViT-B over one 0.64-s log-mel segment, then a
per-time-column attention pooling over frequency. Each segment → 6 tokens (one per 0.1 s).

Module names follow HuggingFace's ASTModel under `afeat_extractor.ast.`, so the official file loads
strictly. The frequency pooling layer is the same pre-norm layer as the visual branch's spatial
pooling (eps 1e-6, packed q|k|v, own CLS), so that module is reused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..synchformer import SpatialAggregation, SynchformerConfig

AST_LN_EPS = 1e-12
MEL_BINS, SPEC_FRAMES, PATCH, STRIDE = 128, 66, 16, 10


@dataclass(frozen=True)
class AstConfig:
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    intermediate: int = 3072

    @property
    def grid(self) -> tuple[int, int]:
        """(frequency, time) patch counts: 12 × 6."""
        return (MEL_BINS - PATCH) // STRIDE + 1, (SPEC_FRAMES - PATCH) // STRIDE + 1


class _Linear(nn.Module):
    """A module holding one Linear as `.dense` (HF naming)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)


class AstSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape

        def split(t):  # heads = consecutive channel slices
            return t.reshape(n, length, self.heads, dim // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)))
        return out.transpose(1, 2).reshape(n, length, dim)


class AstAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attention = AstSelfAttention(dim, heads)
        self.output = _Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.dense(self.attention(x))


class AstLayer(nn.Module):
    def __init__(self, cfg: AstConfig):
        super().__init__()
        d = cfg.hidden
        self.attention = AstAttention(d, cfg.heads)
        self.intermediate = _Linear(d, cfg.intermediate)
        self.output = _Linear(cfg.intermediate, d)
        self.layernorm_before = nn.LayerNorm(d, eps=AST_LN_EPS)
        self.layernorm_after = nn.LayerNorm(d, eps=AST_LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class AstPatchEmbeddings(nn.Module):
    def __init__(self, cfg: AstConfig):
        super().__init__()
        self.projection = nn.Conv2d(1, cfg.hidden, PATCH, STRIDE)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(N, 128 mel, 66 time) → (N, 72, D), mel-major (token = 6·f + t)."""
        return self.projection(spec.unsqueeze(1)).flatten(2).transpose(1, 2)


class AstEmbeddings(nn.Module):
    def __init__(self, cfg: AstConfig):
        super().__init__()
        d = cfg.hidden
        f, t = cfg.grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, d))
        self.position_embeddings = nn.Parameter(torch.zeros(1, f * t + 2, d))  # a plain 74-row table
        self.patch_embeddings = AstPatchEmbeddings(cfg)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.patch_embeddings(spec)
        n = x.shape[0]
        lead = torch.cat([self.cls_token, self.distillation_token], dim=1).to(x.dtype).expand(n, -1, -1)
        return torch.cat([lead, x], dim=1) + self.position_embeddings.to(x.dtype)


class AstEncoder(nn.Module):
    def __init__(self, cfg: AstConfig):
        super().__init__()
        self.layer = nn.ModuleList(AstLayer(cfg) for _ in range(cfg.layers))


class AstModel(nn.Module):
    def __init__(self, cfg: AstConfig):
        super().__init__()
        self.embeddings = AstEmbeddings(cfg)
        self.encoder = AstEncoder(cfg)
        self.layernorm = nn.LayerNorm(cfg.hidden, eps=AST_LN_EPS)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(N, 128, 66) → last hidden state (N, 74, D)."""
        x = self.embeddings(spec)
        for layer in self.encoder.layer:
            x = layer(x)
        return self.layernorm(x)


class AudioFeatureExtractor(nn.Module):
    """(N, 128, 66) log-mel segments → (N, 6, D): AST, then pool each time column over frequency."""

    def __init__(self, cfg: AstConfig):
        super().__init__()
        self.cfg = cfg
        self.ast = AstModel(cfg)
        pool = SynchformerConfig(embed_dim=cfg.hidden, num_heads=cfg.heads,
                                 mlp_ratio=cfg.intermediate / cfg.hidden)
        self.freq_attn_agg = SpatialAggregation(pool)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        f, t = self.cfg.grid
        patches = self.ast(spec)[:, 2:].unflatten(1, (f, t))  # (N, f, t, D)
        return self.freq_attn_agg(patches.transpose(1, 2))  # per time column, f ascending
