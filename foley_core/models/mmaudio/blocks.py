"""Transformer blocks of the flow network: adaLN sub-layers, joint (MM-DiT) blocks, final layer.

Module and attribute names follow the official state-dict keys (`attn.qkv`, `adaLN_modulation.1`,
`linear1`, `ffn.w1`, ...), so official checkpoints load strictly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import ChannelLastConv1d, SwiGLU, modulate
from .rope import apply_rope

LAYER_NORM_EPS = 1e-5
QKV = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _plain_layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, elementwise_affine=False, eps=LAYER_NORM_EPS)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SDPA over (B, H, L, head_dim) inputs; heads merged back to (B, L, H*head_dim)."""
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).flatten(2)


class QKVProjection(nn.Module):
    """qkv Linear with the *interleaved* channel layout ((head*hd + d)*3 + j), QK RMSNorm, RoPE."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        # eps=None -> finfo(dtype).eps, as the reference (matters in fp16/bf16).
        self.q_norm = nn.RMSNorm(self.head_dim, eps=None)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=None)

    def forward(self, x: torch.Tensor, rotations: torch.Tensor | None = None) -> QKV:
        q, k, v = self.qkv(x).unflatten(-1, (self.num_heads, self.head_dim, 3)).unbind(-1)
        q, k, v = (t.transpose(1, 2) for t in (self.q_norm(q), self.k_norm(k), v))  # (B, H, L, hd)
        if rotations is not None:
            q, k = apply_rope(q, rotations), apply_rope(k, rotations)
        return q, k, v


class ModulatedBlock(nn.Module):
    """One stream's attention + MLP sub-layer with adaLN modulation.

    `conv_kernel` None gives Linear/MLP (text stream); otherwise token-axis convs (latent, clip,
    fused). A `pre_only` block (last joint block's clip/text) only produces q, k, v.
    """

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, conv_kernel: int | None = 3,
                 pre_only: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = _plain_layer_norm(dim)
        self.attn = QKVProjection(dim, num_heads)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, (2 if pre_only else 6) * dim))
        if not pre_only:
            self.linear1 = nn.Linear(dim, dim) if conv_kernel is None else ChannelLastConv1d(dim, dim, conv_kernel)
            self.norm2 = _plain_layer_norm(dim)
            self.ffn = SwiGLU(dim, mlp_hidden, conv_kernel)

    def pre_attention(self, x: torch.Tensor, c: torch.Tensor,
                      rotations: torch.Tensor | None) -> tuple[QKV, tuple[torch.Tensor, ...]]:
        # Chunk order: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
        mods = self.adaLN_modulation(c).chunk(2 if self.pre_only else 6, dim=-1)
        h = modulate(self.norm1(x), mods[0], mods[1])
        return self.attn(h, rotations), mods

    def post_attention(self, x: torch.Tensor, attn_out: torch.Tensor,
                       mods: tuple[torch.Tensor, ...]) -> torch.Tensor:
        _, _, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        x = x + self.linear1(attn_out) * gate_msa
        return x + self.ffn(modulate(self.norm2(x), shift_mlp, scale_mlp)) * gate_mlp

    def forward(self, x: torch.Tensor, c: torch.Tensor, rotations: torch.Tensor | None) -> torch.Tensor:
        """Self-attention use (the fused / single-stream blocks)."""
        (q, k, v), mods = self.pre_attention(x, c, rotations)
        return self.post_attention(x, attention(q, k, v), mods)


class JointBlock(nn.Module):
    """MM-DiT block: latent, clip and text streams attend jointly over [latent | clip | text]."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, pre_only: bool):
        super().__init__()
        self.latent_block = ModulatedBlock(dim, num_heads, mlp_hidden, 3, pre_only=False)
        self.clip_block = ModulatedBlock(dim, num_heads, mlp_hidden, 3, pre_only=pre_only)
        self.text_block = ModulatedBlock(dim, num_heads, mlp_hidden, None, pre_only=pre_only)

    def forward(self, latent: torch.Tensor, clip: torch.Tensor, text: torch.Tensor,
                global_c: torch.Tensor, extended_c: torch.Tensor,
                latent_rot: torch.Tensor, clip_rot: torch.Tensor):
        latent_qkv, latent_mods = self.latent_block.pre_attention(latent, extended_c, latent_rot)
        clip_qkv, clip_mods = self.clip_block.pre_attention(clip, global_c, clip_rot)
        text_qkv, text_mods = self.text_block.pre_attention(text, global_c, None)  # no RoPE on text
        q, k, v = (torch.cat(parts, dim=2) for parts in zip(latent_qkv, clip_qkv, text_qkv))
        out = attention(q, k, v)
        latent_out, clip_out, text_out = out.split([latent.shape[1], clip.shape[1], text.shape[1]], dim=1)
        latent = self.latent_block.post_attention(latent, latent_out, latent_mods)
        if not self.clip_block.pre_only:
            clip = self.clip_block.post_attention(clip, clip_out, clip_mods)
            text = self.text_block.post_attention(text, text_out, text_mods)
        return latent, clip, text


class FinalLayer(nn.Module):
    """adaLN (shift, scale) -> token conv k7 to the latent width."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = _plain_layer_norm(dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.conv = ChannelLastConv1d(dim, out_dim, 7)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.conv(modulate(self.norm(x), shift, scale))
