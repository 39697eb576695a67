"""The sync transformer `transformer` (spec §5): [OFF | visual | MOD | audio] + learned positions,
minGPT-style pre-LN blocks without a mask, and a 21-way offset head on the OFF token."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-5


@dataclass(frozen=True)
class SyncConfig:
    width: int = 768
    layers: int = 3
    heads: int = 8
    positions: int = 198  # 1 + 14·8 + 1 + 14·6
    classes: int = 21


class SyncAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.key, self.query, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape

        def split(t):
            return t.reshape(n, length, self.heads, dim // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)))
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class SyncBlock(nn.Module):
    def __init__(self, cfg: SyncConfig):
        super().__init__()
        d = cfg.width
        self.ln1 = nn.LayerNorm(d, eps=LN_EPS)
        self.ln2 = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = SyncAttention(d, cfg.heads)
        # indices 1 (GELU) and 3 (dropout) hold no weights; the Sequential keeps the file's names
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class PositionTable(nn.Module):
    def __init__(self, cfg: SyncConfig):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.positions, cfg.width))


class SyncTransformer(nn.Module):
    def __init__(self, cfg: SyncConfig):
        super().__init__()
        d = cfg.width
        self.cfg = cfg
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.vis_in_lnorm = nn.LayerNorm(d, eps=LN_EPS)
        self.aud_in_lnorm = nn.LayerNorm(d, eps=LN_EPS)
        self.pos_emb_cfg = PositionTable(cfg)
        self.blocks = nn.ModuleList(SyncBlock(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(d, eps=LN_EPS)
        self.off_head = nn.Linear(d, cfg.classes)

    def tokens(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """visual (B, Lv, d), audio (B, La, d) projected → (B, 198, d) with positions added."""
        n = visual.shape[0]
        off = self.OFF_tok.to(visual.dtype).expand(n, -1, -1)
        mod = self.MOD_tok.to(visual.dtype).expand(n, -1, -1)
        x = torch.cat([off, self.vis_in_lnorm(visual), mod, self.aud_in_lnorm(audio)], dim=1)
        return x + self.pos_emb_cfg.pos_emb.to(x.dtype)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        x = self.tokens(visual, audio)
        for block in self.blocks:
            x = block(x)
        return self.off_head(self.ln_f(x)[:, 0])
