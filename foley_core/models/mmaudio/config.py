"""Hyper-parameters of the MMAudio flow network, the named variants, and shape-based detection."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from ...errors import CheckpointError
from .sequence import TEXT_SEQ_LEN, TRAINED_DURATION_S, sequence_lengths

# Learned-frequency count of the v1 timestep embedding (v2 uses the hidden width instead).
V1_TIMESTEP_FREQ_DIM = 256
SWIGLU_MULTIPLE = 256


def swiglu_hidden_width(dim: int, mlp_ratio: float = 4.0) -> int:
    """Inner width of the SwiGLU MLPs: int(2/3 of ratio*dim), rounded up to a multiple of 256."""
    width = int(2 * int(dim * mlp_ratio) / 3)
    return SWIGLU_MULTIPLE * ((width + SWIGLU_MULTIPLE - 1) // SWIGLU_MULTIPLE)


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to build an `MMAudioNetwork`.

    `mode` is the sample-rate mode ("16k"/"44k") of a named variant, or None for custom nets
    whose mode the caller must supply. Sequence lengths left at None become the 8 s values of
    the mode (44k when the mode is unknown); `update_seq_lengths` changes them at run time.
    """

    latent_dim: int
    hidden_dim: int
    depth: int
    fused_depth: int
    num_heads: int
    clip_dim: int = 1024
    sync_dim: int = 768
    text_dim: int = 1024
    text_seq_len: int = TEXT_SEQ_LEN
    mlp_ratio: float = 4.0
    v2: bool = False
    mode: str | None = None
    latent_seq_len: int | None = None
    clip_seq_len: int | None = None
    sync_seq_len: int | None = None

    def __post_init__(self) -> None:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by {self.num_heads} heads")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for RoPE")
        if not 0 <= self.fused_depth < self.depth:
            raise ValueError("need at least one joint block: 0 <= fused_depth < depth")
        default = sequence_lengths(TRAINED_DURATION_S, self.mode or "44k")
        for name, value in (("latent_seq_len", default.latent), ("clip_seq_len", default.clip),
                            ("sync_seq_len", default.sync)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)  # frozen dataclass: fill the default once

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def joint_depth(self) -> int:
        return self.depth - self.fused_depth

    @property
    def timestep_freq_dim(self) -> int:
        return self.hidden_dim if self.v2 else V1_TIMESTEP_FREQ_DIM

    @property
    def mlp_hidden_dim(self) -> int:
        return swiglu_hidden_width(self.hidden_dim, self.mlp_ratio)

    def architecture(self) -> dict[str, Any]:
        """The fields that determine the weights (not sequence lengths or mode)."""
        skip = {"mode", "latent_seq_len", "clip_seq_len", "sync_seq_len"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


VARIANTS: dict[str, NetworkConfig] = {
    "small_16k": NetworkConfig(latent_dim=20, hidden_dim=448, depth=12, fused_depth=8, num_heads=7,
                               mode="16k"),
    "small_44k": NetworkConfig(latent_dim=40, hidden_dim=448, depth=12, fused_depth=8, num_heads=7,
                               mode="44k"),
    "medium_44k": NetworkConfig(latent_dim=40, hidden_dim=896, depth=12, fused_depth=8, num_heads=14,
                                mode="44k"),
    "large_44k": NetworkConfig(latent_dim=40, hidden_dim=896, depth=21, fused_depth=14, num_heads=14,
                               mode="44k"),
    "large_44k_v2": NetworkConfig(latent_dim=40, hidden_dim=896, depth=21, fused_depth=14, num_heads=14,
                                  v2=True, mode="44k"),
}

_BLOCK_INDEX = re.compile(r"^(joint_blocks|fused_blocks)\.(\d+)\.")


def _shape(state_dict: Mapping[str, Any], key: str) -> tuple[int, ...]:
    try:
        return tuple(state_dict[key].shape)
    except KeyError:
        raise CheckpointError(
            f"not an MMAudio flow-network checkpoint: key {key!r} is missing") from None


def _block_count(state_dict: Mapping[str, Any], prefix: str) -> int:
    indices = [int(m.group(2)) for k in state_dict if (m := _BLOCK_INDEX.match(k)) and m.group(1) == prefix]
    return max(indices) + 1 if indices else 0


def detect_network_config(state_dict: Mapping[str, Any]) -> tuple[str, NetworkConfig]:
    """Infer (variant name or "custom", config) from tensor shapes alone.

    Works on real, meta or any objects with `.shape`. Custom widths (tiny test nets, our own
    trained nets) get mode None: the sample-rate mode cannot be read from the weights.
    """
    hidden, latent_dim = _shape(state_dict, "audio_input_proj.0.weight")[:2]
    joint = _block_count(state_dict, "joint_blocks")
    fused = _block_count(state_dict, "fused_blocks")
    if joint == 0:
        raise CheckpointError("not an MMAudio flow-network checkpoint: no joint_blocks.* keys")
    q_norm_key = "joint_blocks.0.latent_block.attn.q_norm.weight"
    head_dim = _shape(state_dict, q_norm_key)[0] if q_norm_key in state_dict else 64
    if hidden % head_dim:
        raise CheckpointError(f"hidden width {hidden} is not a multiple of the head size {head_dim}")
    # The v2 layout has an activation at index 1 of the clip/text projections, so its MLP is ".2".
    if "clip_input_proj.2.w1.weight" in state_dict:
        v2 = True
    elif "clip_input_proj.1.w1.weight" in state_dict:
        v2 = False
    else:
        v2 = _shape(state_dict, "t_embed.mlp.0.weight")[1] == hidden
    found = NetworkConfig(
        latent_dim=latent_dim,
        hidden_dim=hidden,
        depth=joint + fused,
        fused_depth=fused,
        num_heads=hidden // head_dim,
        clip_dim=_shape(state_dict, "clip_input_proj.0.weight")[1],
        sync_dim=_shape(state_dict, "sync_input_proj.0.weight")[1],
        text_dim=_shape(state_dict, "text_input_proj.0.weight")[1],
        text_seq_len=_shape(state_dict, "empty_string_feat")[0],
        v2=v2,
    )
    for name, variant in VARIANTS.items():
        if variant.architecture() == found.architecture():
            return name, variant
    return "custom", found


def with_mode(config: NetworkConfig, mode: str) -> NetworkConfig:
    """Copy of a (custom) config with its sample-rate mode set and 8 s default lengths."""
    return replace(config, mode=mode, latent_seq_len=None, clip_seq_len=None, sync_seq_len=None)
