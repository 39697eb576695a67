"""MERT-v1-95M, the frozen feature extractor of the style conditioner (§8).

For v1-95M the official remote-code `MERTModel` is HuBERT-base with a LayerNorm in the feature
projection and nothing else active (no CQT, no deep norm, no attention relax), so transformers'
`HubertModel` built from the config below computes the same function with the same key names.
Weights come from a local file or folder only (never the network).

Key naming: MERT's `pytorch_model.bin` stores the positional-conv weight norm as
`encoder.pos_conv_embed.conv.weight_g` / `weight_v` (classic torch weight_norm). Current
transformers/torch hold them as `…conv.parametrizations.weight.original0` / `original1`; the two
are mapped both ways by `to_classic_names` / `to_parametrized_names`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Union

import torch

from ...errors import CheckpointError
from ..checkpoint_io import describe_key_mismatch, read_state_dict

MERT_SAMPLE_RATE = 24000
MERT_V1_95M_CONFIG = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "layer_norm_eps": 1e-5,
    "feat_extract_norm": "group", "feat_extract_activation": "gelu",
    "conv_dim": [512] * 7, "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_bias": False, "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
    "do_stable_layer_norm": False, "feat_proj_layer_norm": True, "mask_time_prob": 0.05,
}
# Settings of MERT's remote code that HubertModel lacks; any other value needs the remote code.
_INACTIVE_EXTRAS = {"feature_extractor_cqt": False, "deepnorm": False}

_POS_CONV = "encoder.pos_conv_embed.conv."
_CLASSIC_TO_PARAM = {_POS_CONV + "weight_g": _POS_CONV + "parametrizations.weight.original0",
                     _POS_CONV + "weight_v": _POS_CONV + "parametrizations.weight.original1"}


def to_classic_names(state: Mapping[str, torch.Tensor]) -> dict:
    inverse = {v: k for k, v in _CLASSIC_TO_PARAM.items()}
    return {inverse.get(k, k): v for k, v in state.items()}


def to_parametrized_names(state: Mapping[str, torch.Tensor]) -> dict:
    return {_CLASSIC_TO_PARAM.get(k, k): v for k, v in state.items()}


def hubert_config(overrides: Optional[Mapping] = None):
    from transformers import HubertConfig

    values = dict(MERT_V1_95M_CONFIG)
    for key, value in (overrides or {}).items():
        if key in _INACTIVE_EXTRAS and bool(value) != _INACTIVE_EXTRAS[key]:
            raise CheckpointError(f"MERT: {key}={value!r} needs MERT's own code; only MERT-v1-95M-"
                                  "style configs (HuBERT-equivalent) are supported.")
        if key == "attention_relax" and float(value) > 0:
            raise CheckpointError("MERT: attention_relax > 0 (MERT-v1-330M) is not supported.")
        if key in MERT_V1_95M_CONFIG:
            values[key] = value
    return HubertConfig(**values)


def build_mert(config: Optional[Mapping] = None):
    """An uninitialised HubertModel with the MERT config (use under torch.device('meta') to size)."""
    from transformers import HubertModel

    return HubertModel(hubert_config(config)).eval()


def load_mert(path: Union[str, Path], device: Union[str, torch.device] = "cpu"):
    """HubertModel with MERT weights from a local weights file or a folder (config.json optional)."""
    path = Path(path)
    config = None
    if path.is_dir():
        if (path / "config.json").is_file():
            config = json.loads((path / "config.json").read_text())
        candidates = [path / n for n in ("model.safetensors", "pytorch_model.bin")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise CheckpointError(f"MERT: no model.safetensors or pytorch_model.bin in {path}.")
        path = found
    state = read_state_dict(path, slot="MERT")
    with torch.device("meta"):
        model = build_mert(config)
    model = model.to_empty(device=device)
    state = to_parametrized_names(state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if "masked_spec_embed" in missing:  # training-only; zero it rather than leave it uninitialised
        torch.nn.init.zeros_(model.masked_spec_embed)
        missing = [k for k in missing if k != "masked_spec_embed"]
    if missing or unexpected:
        raise CheckpointError("MERT: the weights do not match MERT-v1-95M: "
                              + describe_key_mismatch(missing, unexpected))
    return model.to(torch.float32).eval()
