"""Loading BigVGAN vocoder checkpoints without any hub/from_pretrained machinery.

Accepted files:
- NVIDIA `bigvgan_generator.pt` ({"generator": state_dict}) + its `config.json`;
- Make-An-Audio 2 `best_netG.pt` (dict with key "generator"), config optional (known shapes);
- a bare generator state dict.
Weight norm may be stored as `weight_g`/`weight_v`, as
`parametrizations.weight.original0/original1`, or already folded as `weight`; it is folded once
here so inference runs plain convolutions.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping

import torch

from ...errors import CheckpointError
from .activations import kaiser_sinc_filter
from .generator import BIGVGAN_16K, BIGVGAN_44K, BigVGANConfig, BigVGANGenerator

_WN_FORMS = (
    (".weight_g", ".weight_v"),
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
)
KNOWN_CONFIGS = {"bigvgan_16k": BIGVGAN_16K, "bigvgan_v2_44k": BIGVGAN_44K}


def fold_weight_norm_tensor(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """w = g * v / ||v||, norm over every dim except 0 (ConvTranspose1d: dim 0 = input channel).

    Computed in fp32, returned in v's dtype.
    """
    v32 = v.float()
    norm = torch.linalg.vector_norm(v32, dim=tuple(range(1, v.ndim)), keepdim=True)
    return (g.float().reshape(norm.shape) * v32 / norm).to(v.dtype)


def fold_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every (g, v) pair by a plain `<prefix>.weight`; other entries pass through."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for g_suffix, v_suffix in _WN_FORMS:
            if key.endswith(v_suffix):
                if key[: -len(v_suffix)] + g_suffix not in state_dict:
                    raise CheckpointError(f"vocoder checkpoint has '{key}' but no matching magnitude")
                break
            if key.endswith(g_suffix):
                prefix = key[: -len(g_suffix)]
                v = state_dict.get(prefix + v_suffix)
                if v is None:
                    raise CheckpointError(f"vocoder checkpoint has '{key}' but no matching direction")
                out[prefix + ".weight"] = fold_weight_norm_tensor(value, v)
                break
        else:
            out[key] = value
    return out


def unwrap_generator(checkpoint: Mapping[str, Any]) -> Mapping[str, torch.Tensor]:
    """NVIDIA and Make-An-Audio 2 files keep the generator under "generator"."""
    if "generator" in checkpoint and isinstance(checkpoint["generator"], Mapping):
        return checkpoint["generator"]
    return checkpoint


def read_config(config: BigVGANConfig | Mapping | str | os.PathLike) -> BigVGANConfig:
    if isinstance(config, BigVGANConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        with open(config, encoding="utf-8") as f:
            config = json.load(f)
    return BigVGANConfig.from_dict(dict(config))


def _weight_shape(sd: Mapping[str, torch.Tensor], prefix: str) -> torch.Size | None:
    for suffix in (".weight", ".weight_v", ".parametrizations.weight.original1"):
        if prefix + suffix in sd:
            return sd[prefix + suffix].shape
    return None


def infer_known_config(state_dict: Mapping[str, torch.Tensor]) -> BigVGANConfig:
    """Pick the 16k or 44k config by tensor shapes (for files that come without config.json)."""
    pre = _weight_shape(state_dict, "conv_pre")
    if pre is None:
        raise CheckpointError("This file is not a BigVGAN generator: it has no conv_pre weight.")
    n_ups = len({m.group(1) for k in state_dict if (m := re.match(r"ups\.(\d+)\.", k))})
    kernels = tuple(_weight_shape(state_dict, f"ups.{i}.0")[2] for i in range(n_ups))
    for cfg in KNOWN_CONFIGS.values():
        if (pre[0], pre[1], kernels) == (
            cfg.upsample_initial_channel, cfg.num_mels, cfg.upsample_kernel_sizes
        ):
            return cfg
    raise CheckpointError(
        f"Unknown BigVGAN layout ({pre[1]} mels, {pre[0]} channels, kernels {kernels}); "
        "put the model's config.json next to the weights."
    )


def prepare_generator_state_dict(
    checkpoint: Mapping[str, Any], model: BigVGANGenerator
) -> dict[str, torch.Tensor]:
    """Fold weight norm and fill in absent anti-aliasing filters with the computed ones."""
    sd = fold_weight_norm(unwrap_generator(checkpoint))
    for key in model.state_dict():
        if key.endswith(".filter") and key not in sd:
            sd[key] = kaiser_sinc_filter()
    return sd


def load_bigvgan(
    checkpoint: Mapping[str, Any],
    config: BigVGANConfig | Mapping | str | os.PathLike | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> BigVGANGenerator:
    """Build a generator from a checkpoint (strict) and a config (path, dict, or inferred)."""
    sd = unwrap_generator(checkpoint)
    cfg = read_config(config) if config is not None else infer_known_config(sd)
    with torch.device("meta"):  # skip random init of ~120M parameters
        model = BigVGANGenerator(cfg)
    folded = {
        k: v.to(device=device, dtype=dtype or v.dtype)
        for k, v in prepare_generator_state_dict(sd, model).items()
    }
    try:
        model.load_state_dict(folded, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"BigVGAN checkpoint does not match its config: {e}") from e
    return model.eval().requires_grad_(False)
