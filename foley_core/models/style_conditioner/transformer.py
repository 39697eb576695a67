"""The conditioner's small transformer: sinusoidal positions + pre-LN layers without biases (§4)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-5
MAX_PERIOD = 10000.0


def sinusoidal_embedding(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(length, dim) = [cos | sin] of p / 10000^(j / (half - 1)) — cosine first, `half - 1`."""
    half = dim // 2
    positions = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    exponent = torch.arange(half, device=device, dtype=torch.float32) / (half - 1)
    phase = positions / (MAX_PERIOD ** exponent)
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1).to(dtype)


class PackedSelfAttention(nn.Module):
    """Full (non-causal) MHA with a packed [q|k|v] projection and no biases."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        qkv = F.linear(x, self.in_proj_weight)
        qkv = qkv.view(batch, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


class TransformerLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_dim: int):
        super().__init__()
        self.self_attn = PackedSelfAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.linear1 = nn.Linear(dim, ffn_dim, bias=False)
        self.linear2 = nn.Linear(ffn_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x))
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class StyleTransformer(nn.Module):
    """`transformer.*`: positions are added once at the input; no final LayerNorm."""

    def __init__(self, dim: int, num_heads: int, num_layers: int, ffn_dim: int):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(dim, num_heads, ffn_dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, trace: Optional[dict] = None) -> torch.Tensor:
        x = x + sinusoidal_embedding(x.shape[1], x.shape[2], x.device, x.dtype)
        if trace is not None:
            trace["transformer_in"] = x
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if trace is not None:
                trace[f"transformer.layer{i}"] = x
        return x
