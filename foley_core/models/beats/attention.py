"""BEATs self-attention with the gated relative position bias (spec beats.md §6.3)."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def relative_position_bucket(relative: torch.Tensor, num_buckets: int = 320,
                             max_distance: int = 800) -> torch.Tensor:
    """Bucket index of each relative offset r = key - query (int64 in, int64 out).

    Half the buckets per sign; the first quarter holds exact offsets, the rest grow
    logarithmically up to max_distance, beyond which everything shares the last bucket.
    """
    half = num_buckets // 2
    exact = half // 2
    base = (relative > 0).to(torch.long) * half
    distance = relative.abs()
    # clamp(min=1) only keeps log() finite for the small offsets that use the exact branch
    scaled = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = exact + (scaled * (half - exact)).to(torch.long)
    far = far.clamp(max=half - 1)
    return base + torch.where(distance < exact, distance, far)


def relative_position_bias(table: nn.Embedding, length: int, num_buckets: int,
                           max_distance: int) -> torch.Tensor:
    """Raw (ungated) bias (H, L, L) from the shared (num_buckets, H) table."""
    positions = torch.arange(length, device=table.weight.device)
    relative = positions[None, :] - positions[:, None]  # [query i, key j] = j - i
    buckets = relative_position_bucket(relative, num_buckets, max_distance)
    return table(buckets).permute(2, 0, 1)


class GatedRelativeAttention(nn.Module):
    """Multi-head attention whose relative bias is scaled by a per-query, per-head gate."""

    def __init__(self, dim: int, num_heads: int, gated: bool, shared_bias: Optional[nn.Embedding]):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gated = gated
        if gated:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, num_heads, 1, 1))
        if shared_bias is not None:
            # One module object in every layer: the state dict lists it per layer (strict
            # loading needs each key) but there is only one tensor, as in the official model.
            self.relative_attention_bias = shared_bias

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, position_bias: Optional[torch.Tensor],
                key_padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """x (B, L, D); position_bias (H, L, L) raw; key_padding_mask (B, L) True = padded."""
        batch, length, dim = x.shape
        q = self._heads(self.q_proj(x))
        k = self._heads(self.k_proj(x))
        v = self._heads(self.v_proj(x))
        bias = x.new_zeros(batch, self.num_heads, length, length)
        if position_bias is not None:
            if self.gated:
                # The gate reads the unscaled query (q_proj output incl. bias).
                groups = self.grep_linear(q).view(batch, self.num_heads, length, 2, 4).sum(-1)
                gate_a, gate_b = torch.sigmoid(groups).unbind(-1)
                gate = gate_a * (gate_b * self.grep_a.view(1, -1, 1) - 1.0) + 2.0
                bias = bias + gate.unsqueeze(-1) * position_bias.unsqueeze(0)
            else:
                bias = bias + position_bias.unsqueeze(0)
        if key_padding_mask is not None:
            bias = bias.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))
