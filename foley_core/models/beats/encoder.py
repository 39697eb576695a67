"""BEATs transformer encoder: conv positional embedding + post-LN deep-norm layers (§6)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .attention import GatedRelativeAttention, relative_position_bias
from .config import BEATsConfig

LN_EPS = 1e-5


class WeightNormConv1d(nn.Module):
    """Grouped Conv1d stored as weight-norm factors (weight_g, weight_v), norm per kernel tap.

    Kept as explicit parameters so the official key names load without torch's weight-norm hooks.
    """

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.groups = groups
        self.padding = kernel // 2
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))

    def weight(self) -> torch.Tensor:
        # dim=2 weight norm: one norm per tap over the (out, in) channel axes
        norm = self.weight_v.norm(dim=(0, 1), keepdim=True)
        return self.weight_g * self.weight_v / norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight(), self.bias, padding=self.padding, groups=self.groups)


class EncoderLayer(nn.Module):
    """Post-LN layer; deep norm scales the residual branch input by alpha."""

    def __init__(self, cfg: BEATsConfig, shared_bias: Optional[nn.Embedding]):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.alpha = cfg.deep_norm_alpha
        self.self_attn = GatedRelativeAttention(dim, cfg.encoder_attention_heads,
                                                cfg.gru_rel_pos, shared_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x, position_bias, key_padding_mask):
        x = self.self_attn_layer_norm(self.alpha * x + self.self_attn(x, position_bias, key_padding_mask))
        return self.final_layer_norm(self.alpha * x + self.fc2(F.gelu(self.fc1(x))))


class BEATsTransformer(nn.Module):
    """`encoder.*` of the official state dict."""

    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.cfg = cfg
        # ModuleList so the keys read `encoder.pos_conv.0.*` as in the official files
        self.pos_conv = nn.ModuleList([
            WeightNormConv1d(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups)])
        self._even_kernel = cfg.conv_pos % 2 == 0
        shared = None
        if cfg.relative_position_embedding:
            shared = nn.Embedding(cfg.num_buckets, cfg.encoder_attention_heads)
        self.layers = nn.ModuleList(EncoderLayer(cfg, shared) for _ in range(cfg.encoder_layers))
        self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim, eps=LN_EPS)
        self._shared_bias = [shared]  # a list hides it from the module tree (no duplicate key)

    def positional(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pos_conv[0](x.transpose(1, 2))
        if self._even_kernel:
            y = y[:, :, :-1]  # even kernel, padding k/2 -> L + 1 outputs; the official model drops the last
        return F.gelu(y).transpose(1, 2)

    def position_bias(self, length: int) -> Optional[torch.Tensor]:
        table = self._shared_bias[0]
        if table is None:
            return None
        return relative_position_bias(table, length, self.cfg.num_buckets, self.cfg.max_distance)

    def forward(self, x: torch.Tensor, token_mask: Optional[torch.Tensor] = None,
                hidden_states: Optional[list] = None) -> torch.Tensor:
        """x (B, L, D) after projection; token_mask (B, L) True = padded. Returns the last layer."""
        if token_mask is not None:
            x = x.masked_fill(token_mask.unsqueeze(-1), 0.0)
        x = self.layer_norm(x + self.positional(x))
        if hidden_states is not None:
            hidden_states.append(x)
        bias = self.position_bias(x.shape[1])  # computed once, shared by every layer
        for layer in self.layers:
            x = layer(x, bias, token_mask)
            if hidden_states is not None:
                hidden_states.append(x)
        return x
