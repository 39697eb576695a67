"""The MMAudio flow network (spec §3): multimodal DiT predicting the flow velocity of audio latents.

Build cheaply for shape checks with `with torch.device("meta"): MMAudioNetwork(config)`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import FinalLayer, JointBlock, ModulatedBlock
from .config import NetworkConfig
from .layers import ChannelLastConv1d, SwiGLU, TimestepEmbedder
from .rope import rope_rotations
from .sequence import SYNC_TOKENS_PER_SEGMENT

# Keys that are non-persistent buffers here but may be present in official checkpoints.
NON_PERSISTENT_KEYS = ("latent_rot", "clip_rot", "t_embed.freqs")


@dataclass
class FlowConditions:
    """Preprocessed conditions (computed once per sampling run; independent of t and x)."""

    clip_f: torch.Tensor  # (B, Nc, D) projected clip stream
    sync_f: torch.Tensor  # (B, N, D) projected sync stream, upsampled to the latent rate
    text_f: torch.Tensor  # (B, T, D) projected text stream
    clip_f_c: torch.Tensor  # (B, D) pooled clip condition
    text_f_c: torch.Tensor  # (B, D) pooled text condition
    # (B, D) added to global_c after the global MLP (a style adapter's output); None = nothing.
    # Not a network weight, so the official key layout is untouched.
    extra_global: Optional[torch.Tensor] = None
    # (B, N, D) added to the latent stream's input embedding (a prompt channel's output,
    # models/prompt_channel.py); None = nothing. Not a network weight either.
    extra_input: Optional[torch.Tensor] = None

    @property
    def batch_size(self) -> int:
        return self.clip_f.shape[0]

    def expand(self, batch_size: int) -> "FlowConditions":
        """Broadcast batch-1 conditions to `batch_size` (views, no copy)."""
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot broadcast conditions of batch {self.batch_size} to {batch_size}")
        return FlowConditions(**{f.name: _broadcast_batch(getattr(self, f.name), batch_size) for f in fields(self)})

    def with_extra_global(self, extra: Optional[torch.Tensor]) -> "FlowConditions":
        """A copy with `extra` (1 or B, D) as extra_global (None removes it)."""
        if extra is not None:
            extra = extra.to(device=self.clip_f_c.device, dtype=self.clip_f_c.dtype)
            if extra.shape[0] != self.batch_size:
                extra = _broadcast_batch(extra, self.batch_size) if extra.shape[0] == 1 else extra
        return FlowConditions(**{**{f.name: getattr(self, f.name) for f in fields(self)}, "extra_global": extra})

    def with_extra_input(self, extra: Optional[torch.Tensor]) -> "FlowConditions":
        """A copy (same class, so wrappers' subclasses survive) with `extra` (1 or B, N, D) as extra_input."""
        if extra is not None:
            extra = extra.to(device=self.clip_f_c.device, dtype=self.clip_f_c.dtype)
            if extra.shape[0] == 1 and self.batch_size != 1:
                extra = _broadcast_batch(extra, self.batch_size)
        return replace(self, extra_input=extra)

    @staticmethod
    def concat(parts: list["FlowConditions"]) -> "FlowConditions":
        """Stack several condition sets along the batch (e.g. conditional + unconditional)."""
        out = {f.name: torch.cat([getattr(p, f.name) for p in parts], dim=0)
               for f in fields(FlowConditions) if f.name not in ("extra_global", "extra_input")}
        extras = [p.extra_global for p in parts]
        # A part without an extra (e.g. CFG's unconditional branch: no style) adds exact zeros.
        out["extra_global"] = None if all(e is None for e in extras) else torch.cat(
            [torch.zeros_like(p.clip_f_c) if e is None else e for p, e in zip(parts, extras)], dim=0)
        inputs = [p.extra_input for p in parts]
        # Likewise a part without a prompt channel (CFG's unconditional branch: prompt dropped) adds zeros.
        out["extra_input"] = None if all(e is None for e in inputs) else torch.cat(
            [torch.zeros_like(p.sync_f) if e is None else e.expand_as(p.sync_f) for p, e in zip(parts, inputs)], dim=0)
        return FlowConditions(**out)


def _broadcast_batch(tensor: Optional[torch.Tensor], batch_size: int) -> Optional[torch.Tensor]:
    return None if tensor is None else tensor.expand(batch_size, *tensor.shape[1:])


def _time_vector(t: float | torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Flow time as a (B,) fp32 vector (scalars and length-1 tensors are broadcast)."""
    t = torch.as_tensor(t, dtype=torch.float32, device=device).reshape(-1)
    return t.expand(batch_size) if t.numel() == 1 else t


class MMAudioNetwork(nn.Module):
    """Flow network of MMAudio, v1 (`small_16k` ... `large_44k`) and v2 (`large_44k_v2`) layouts."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        dim, hidden = config.hidden_dim, config.mlp_hidden_dim
        # v2 puts SiLU after every first projection layer; v1 uses SELU on audio/sync and nothing on
        # clip/text (so their MLP sits at index 1 instead of 2).
        act = nn.SiLU if config.v2 else nn.SELU

        self.audio_input_proj = nn.Sequential(
            ChannelLastConv1d(config.latent_dim, dim, 7), act(), SwiGLU(dim, hidden, kernel_size=7))
        self.clip_input_proj = nn.Sequential(
            nn.Linear(config.clip_dim, dim), *([nn.SiLU()] if config.v2 else []),
            SwiGLU(dim, hidden, kernel_size=3))
        self.sync_input_proj = nn.Sequential(
            ChannelLastConv1d(config.sync_dim, dim, 7), act(), SwiGLU(dim, hidden, kernel_size=3))
        self.text_input_proj = nn.Sequential(
            nn.Linear(config.text_dim, dim), *([nn.SiLU()] if config.v2 else []), SwiGLU(dim, hidden))

        self.clip_cond_proj = nn.Linear(dim, dim)
        self.text_cond_proj = nn.Linear(dim, dim)
        self.global_cond_mlp = SwiGLU(dim, hidden)
        self.t_embed = TimestepEmbedder(dim, config.timestep_freq_dim, max_period=1.0 if config.v2 else 10000.0)

        last = config.joint_depth - 1
        self.joint_blocks = nn.ModuleList(
            JointBlock(dim, config.num_heads, hidden, pre_only=(i == last)) for i in range(config.joint_depth))
        self.fused_blocks = nn.ModuleList(
            ModulatedBlock(dim, config.num_heads, hidden, 3) for _ in range(config.fused_depth))
        self.final_layer = FinalLayer(dim, config.latent_dim)

        self.sync_pos_emb = nn.Parameter(torch.zeros(1, 1, SYNC_TOKENS_PER_SEGMENT, config.sync_dim))
        # Stored statistics and frozen features: part of the checkpoint, never trained.
        self.latent_mean = nn.Parameter(torch.zeros(1, 1, config.latent_dim), requires_grad=False)
        self.latent_std = nn.Parameter(torch.ones(1, 1, config.latent_dim), requires_grad=False)
        self.empty_string_feat = nn.Parameter(torch.zeros(config.text_seq_len, config.text_dim),
                                              requires_grad=False)
        self.empty_clip_feat = nn.Parameter(torch.zeros(1, config.clip_dim))
        self.empty_sync_feat = nn.Parameter(torch.zeros(1, config.sync_dim))

        self.latent_seq_len = self.clip_seq_len = self.sync_seq_len = 0
        self.register_buffer("latent_rot", torch.empty(0), persistent=False)
        self.register_buffer("clip_rot", torch.empty(0), persistent=False)
        self.update_seq_lengths(config.latent_seq_len, config.clip_seq_len, config.sync_seq_len)

    # ----------------------------------------------------------------------------- buffers
    def update_seq_lengths(self, latent_len: int, clip_len: int, sync_len: int) -> None:
        """Set the stream lengths for a new duration and recompute the RoPE tables."""
        if sync_len % SYNC_TOKENS_PER_SEGMENT:
            raise ValueError(f"sync length {sync_len} is not a multiple of {SYNC_TOKENS_PER_SEGMENT}")
        self.latent_seq_len, self.clip_seq_len, self.sync_seq_len = int(latent_len), int(clip_len), int(sync_len)
        self.reset_buffers()

    def reset_buffers(self) -> None:
        """Recompute the fp32 non-persistent tables (RoPE, timestep freqs) on the weights' device."""
        device = self.latent_mean.device
        head_dim = self.config.head_dim
        tables = {
            "latent_rot": rope_rotations(self.latent_seq_len, head_dim),
            "clip_rot": rope_rotations(self.clip_seq_len, head_dim, self.latent_seq_len / self.clip_seq_len),
        }
        for name, table in tables.items():
            on_meta = device.type == "meta"
            setattr(self, name, torch.empty_like(table, device=device) if on_meta else table.to(device))
        self.t_embed.reset_frequencies()

    def _apply(self, fn, *args, **kwargs):
        # .to(dtype) would cast the tables too; they must stay fp32 (spec), so rebuild them.
        result = super()._apply(fn, *args, **kwargs)
        self.reset_buffers()
        return result

    # ------------------------------------------------------------------------ normalisation
    def normalize(self, latent: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std with the stored statistics (computed in fp32)."""
        out = (latent.float() - self.latent_mean.float()) / self.latent_std.float()
        return out.to(latent.dtype)

    def unnormalize(self, latent: torch.Tensor) -> torch.Tensor:
        """x * std + mean: sampler output -> VAE latent (computed in fp32)."""
        out = latent.float() * self.latent_std.float() + self.latent_mean.float()
        return out.to(latent.dtype)

    # --------------------------------------------------------------------------- conditions
    @property
    def weight_dtype(self) -> torch.dtype:
        return self.clip_cond_proj.weight.dtype

    def _check_length(self, what: str, got: int, expected: int) -> None:
        if got != expected:
            raise ValueError(f"{what} has {got} tokens but the network is set to {expected}; "
                             "call update_seq_lengths() for this duration first")

    def preprocess_conditions(self, clip_f: torch.Tensor | None, sync_f: torch.Tensor | None,
                              text_f: torch.Tensor | None, extra_global: torch.Tensor | None = None) -> FlowConditions:
        """Project clip (B,Nc,clip_dim), sync (B,Ns,sync_dim), text (B,T,text_dim) features.

        A None stream is replaced by the learned empty feature (text: `empty_string_feat`).
        `extra_global` (1 or B, hidden_dim), e.g. a style adapter's output, is added to global_c.
        """
        given = [f for f in (clip_f, sync_f, text_f) if f is not None]
        batch = max((f.shape[0] for f in given), default=1)
        dtype = self.weight_dtype
        if clip_f is None:
            clip_f = self.empty_clip_feat.expand(batch, self.clip_seq_len, -1)
        if sync_f is None:
            sync_f = self.empty_sync_feat.expand(batch, self.sync_seq_len, -1)
        if text_f is None:
            text_f = self.empty_string_feat.expand(batch, -1, -1)
        self._check_length("clip features", clip_f.shape[1], self.clip_seq_len)
        self._check_length("sync features", sync_f.shape[1], self.sync_seq_len)

        # Position within each 8-token sync segment.
        sync = sync_f.to(dtype).unflatten(1, (-1, SYNC_TOKENS_PER_SEGMENT)) + self.sync_pos_emb
        clip_h = self.clip_input_proj(clip_f.to(dtype))
        sync_h = self.sync_input_proj(sync.flatten(1, 2))
        text_h = self.text_input_proj(text_f.to(dtype))
        # Upsample sync to the latent rate with PyTorch's float32 nearest-exact indexing.
        sync_up = F.interpolate(sync_h.transpose(1, 2), size=self.latent_seq_len, mode="nearest-exact")
        return FlowConditions(
            clip_f=clip_h,
            sync_f=sync_up.transpose(1, 2),
            text_f=text_h,
            clip_f_c=self.clip_cond_proj(clip_h.mean(dim=1)),
            text_f_c=self.text_cond_proj(text_h.mean(dim=1)),  # padding tokens included
        ).with_extra_global(extra_global)

    def empty_conditions(self, batch_size: int, negative_text_f: torch.Tensor | None = None) -> FlowConditions:
        """Unconditional branch: empty clip/sync features, empty-string or negative-prompt text."""
        text = self.empty_string_feat.unsqueeze(0) if negative_text_f is None else negative_text_f
        n = text.shape[0]
        clip = self.empty_clip_feat.expand(n, self.clip_seq_len, -1)
        sync = self.empty_sync_feat.expand(n, self.sync_seq_len, -1)
        return self.preprocess_conditions(clip, sync, text).expand(batch_size)

    # ------------------------------------------------------------------------------ network
    def modulation_signals(self, t: torch.Tensor,
                           conditions: FlowConditions) -> tuple[torch.Tensor, torch.Tensor]:
        """global_c (B,1,D) = t_embed(t) + global_cond_mlp(clip_c + text_c); extended_c = global_c + sync."""
        global_c = self.t_embed(t) + self.global_cond_mlp(conditions.clip_f_c + conditions.text_f_c)
        if conditions.extra_global is not None:
            global_c = global_c + conditions.extra_global
        global_c = global_c.unsqueeze(1)
        return global_c, global_c + conditions.sync_f

    def predict_flow(self, latent: torch.Tensor, t: float | torch.Tensor, conditions: FlowConditions,
                     control: Optional[Callable[..., list[torch.Tensor]]] = None) -> torch.Tensor:
        """Velocity (B, N, latent_dim) at normalised latent (B, N, latent_dim) and flow time t.

        `control` (a ControlNet, controls/controlnet.py) is called once with the blocks' inputs
        (x, clip, text, global_c, extended_c, latent_rot, clip_rot) and returns latent-stream
        residuals, the i-th added after block i (joint blocks first, then fused). None = the
        plain network, same code path; the weights and their keys are untouched either way.
        """
        batch = latent.shape[0]
        self._check_length("latent", latent.shape[1], self.latent_seq_len)
        conditions = conditions.expand(batch)
        t = _time_vector(t, batch, latent.device)

        x = self.audio_input_proj(latent.to(self.weight_dtype))
        if conditions.extra_input is not None:  # a prompt channel; None = the plain code path
            x = x + conditions.extra_input.to(x.dtype)
        global_c, extended_c = self.modulation_signals(t, conditions)
        clip, text = conditions.clip_f, conditions.text_f
        residuals = [] if control is None else control(
            x, clip, text, global_c, extended_c, self.latent_rot, self.clip_rot)
        for i, block in enumerate(self.joint_blocks):
            x, clip, text = block(x, clip, text, global_c, extended_c, self.latent_rot, self.clip_rot)
            if i < len(residuals):
                x = x + residuals[i]
        for i, block in enumerate(self.fused_blocks, start=len(self.joint_blocks)):
            x = block(x, extended_c, self.latent_rot)
            if i < len(residuals):
                x = x + residuals[i]
        # The final layer is modulated by global_c, not extended_c: the weights were trained so.
        return self.final_layer(x, global_c).to(latent.dtype)

    def forward(self, latent: torch.Tensor, t: float | torch.Tensor, clip_f: torch.Tensor | None,
                sync_f: torch.Tensor | None, text_f: torch.Tensor | None,
                extra_global: torch.Tensor | None = None) -> torch.Tensor:
        """Convenience: preprocess the conditions and predict the velocity in one call."""
        return self.predict_flow(latent, t, self.preprocess_conditions(clip_f, sync_f, text_f, extra_global))
