"""BEATs configuration: from the checkpoint's stored `cfg`, or inferred from tensor shapes (§2).

The official class defaults (max_distance 1280, deep_norm off, ...) are *not* the iter3 values;
a missing field therefore falls back to the iter3 value, never to the class default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Mapping

from ...errors import CheckpointError


@dataclass(frozen=True)
class BEATsConfig:
    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    layer_norm_first: bool = False
    deep_norm: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = False
    predictor_class: int = 527

    @property
    def deep_norm_alpha(self) -> float:
        return (2.0 * self.encoder_layers) ** 0.25 if self.deep_norm else 1.0

    def validate(self) -> "BEATsConfig":
        if self.layer_norm_first:
            raise CheckpointError("BEATs: pre-LN checkpoints (layer_norm_first=True) are not supported; "
                                  "the BEATs_iter3 / iter3+ files are post-LN.")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise CheckpointError("BEATs: encoder width is not divisible by the number of heads.")
        return self


ITER3_CONFIG = BEATsConfig()
ITER3_FINETUNED_CONFIG = replace(ITER3_CONFIG, finetuned_model=True)


def config_from_cfg_dict(cfg: Mapping) -> BEATsConfig:
    """Keep the known fields of an official `cfg` dict (dropouts etc. are irrelevant in eval)."""
    known = {f.name: f.type for f in fields(BEATsConfig)}
    values = {}
    for name, value in cfg.items():
        if name in known:
            values[name] = bool(value) if known[name] == "bool" else value
    activation = cfg.get("activation_fn", "gelu")
    if activation != "gelu":
        raise CheckpointError(f"BEATs: activation {activation!r} is not supported (expected 'gelu').")
    return BEATsConfig(**values).validate()


def config_from_state_dict(sd: Mapping) -> BEATsConfig:
    """Infer widths/depths from shapes; unobservable settings keep the iter3 values."""
    try:
        patch = sd["patch_embedding.weight"]
        proj = sd["post_extract_proj.weight"]
        conv_v = sd["encoder.pos_conv.0.weight_v"]
        fc1 = sd["encoder.layers.0.fc1.weight"]
    except KeyError as missing:
        raise CheckpointError(f"BEATs: not a BEATs state dict (no {missing.args[0]}).") from None
    layer_ids = {int(m.group(1)) for k in sd if (m := re.match(r"encoder\.layers\.(\d+)\.", k))}
    table = sd.get("encoder.layers.0.self_attn.relative_attention_bias.weight")
    grep_a = sd.get("encoder.layers.0.self_attn.grep_a")
    if table is not None:
        heads = table.shape[1]
    elif grep_a is not None:
        heads = grep_a.shape[1]
    else:
        heads = max(1, proj.shape[0] // 64)  # no head count stored: assume 64-wide heads
    predictor = sd.get("predictor.weight")
    return BEATsConfig(
        input_patch_size=patch.shape[-1],
        embed_dim=patch.shape[0],
        conv_bias="patch_embedding.bias" in sd,
        encoder_layers=len(layer_ids),
        encoder_embed_dim=proj.shape[0],
        encoder_ffn_embed_dim=fc1.shape[0],
        encoder_attention_heads=heads,
        conv_pos=conv_v.shape[-1],
        conv_pos_groups=conv_v.shape[0] // conv_v.shape[1],
        relative_position_embedding=table is not None,
        num_buckets=table.shape[0] if table is not None else ITER3_CONFIG.num_buckets,
        gru_rel_pos=grep_a is not None,
        finetuned_model=predictor is not None,
        predictor_class=predictor.shape[0] if predictor is not None else ITER3_CONFIG.predictor_class,
    ).validate()
