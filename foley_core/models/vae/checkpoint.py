"""Loading MMAudio VAE checkpoints: config detection, raw-vs-baked check, MP normalisation.

Supported files (same key names, spec §9):
- official `ext_weights/v1-16.pth` / `v1-44.pth` (fp32) and kijai `mmaudio_vae_*_fp16.safetensors`:
  RAW MP weights -> normalised here, once;
- ComfyUI's combined VAE files (keys under `vae.`, spec §9.3): already "baked" (normalised)
  weights -> used as they are. Re-normalising them would shift every row by ~1e-4*sqrt(fan_in),
  so the weight form is detected from row norms rather than assumed.
"""

from __future__ import annotations

import math
import re

import torch

from ...errors import CheckpointError
from .mel_vae import MelVAE, VAEConfig

_MP_EPS = 1e-4
_COMBINED_PREFIX = "vae."
# Tensors with fewer inputs per row than this cannot tell raw (norm sqrt(fan_in)) from baked (1).
_MIN_FAN_IN_FOR_DETECTION = 16


def _is_conv_weight(key: str, tensor: torch.Tensor) -> bool:
    return key.startswith(("encoder.", "decoder.")) and key.endswith(".weight") and tensor.ndim == 3


def normalize_mp_weight(w: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """w_o / (||w_o|| + 1e-4*sqrt(fan_in)) per output row, in fp32, returned in `dtype`
    (default: w's dtype)."""
    w32 = w.float()
    fan_in = w[0].numel()
    norm = torch.linalg.vector_norm(w32, dim=tuple(range(1, w.ndim)), keepdim=True)
    return (w32 / (norm + _MP_EPS * math.sqrt(fan_in))).to(dtype or w.dtype)


def normalize_vae_state_dict(
    state_dict: dict[str, torch.Tensor], dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Raw checkpoint -> state dict for `MelVAE` (conv weights normalised, the rest unchanged).

    `dtype` lets an fp16 file become fp32 weights without rounding the normalised result to fp16.
    """
    return {
        k: normalize_mp_weight(v, dtype) if _is_conv_weight(k, v) else v
        for k, v in state_dict.items()
    }


def extract_vae_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the VAE part of a plain VAE file or of a ComfyUI combined file (`vae.` prefix)."""
    if "decoder.conv_in.weight" in state_dict:
        return state_dict
    if _COMBINED_PREFIX + "decoder.conv_in.weight" in state_dict:
        n = len(_COMBINED_PREFIX)
        return {k[n:]: v for k, v in state_dict.items() if k.startswith(_COMBINED_PREFIX)}
    raise CheckpointError(
        "This file is not an MMAudio VAE: it has no 'decoder.conv_in.weight'. "
        "Use v1-16.pth / v1-44.pth or mmaudio_vae_*.safetensors."
    )


def detect_vae_config(state_dict: dict[str, torch.Tensor]) -> VAEConfig:
    """Derive the architecture from tensor shapes (works for 16k, 44k and custom widths).

    decoder.conv_in.weight is (4H, embed, 3): (2048, 40, 3) = 44k, (1536, 20, 3) = 16k.
    """
    sd = extract_vae_state_dict(state_dict)
    try:
        top, embed_dim, _ = sd["decoder.conv_in.weight"].shape
        n_mels, hidden, _ = sd["decoder.conv_out.weight"].shape
        levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"decoder\.up\.(\d+)\.", k))})
        blocks = {int(m.group(1)) for k in sd if (m := re.match(r"decoder\.up\.0\.block\.(\d+)\.", k))}
        ch_mult = tuple(sd[f"decoder.up.{i}.block.0.conv2.weight"].shape[0] // hidden for i in levels)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"MMAudio VAE checkpoint is missing an expected tensor ({e}).") from e
    if levels != list(range(len(levels))) or not blocks or ch_mult[-1] * hidden != top:
        raise CheckpointError("MMAudio VAE checkpoint has an unexpected level layout.")
    down_layers = tuple(i - 1 for i in levels if f"decoder.up.{i}.upsample.conv.weight" in sd)
    return VAEConfig(
        n_mels=n_mels,
        embed_dim=embed_dim,
        hidden_dim=hidden,
        ch_mult=ch_mult,
        num_res_blocks=len(blocks) - 1,
        down_layers=down_layers,
    )


def detect_weight_form(state_dict: dict[str, torch.Tensor]) -> str:
    """'raw' (EDM2-trained rows have norm ~sqrt(fan_in)) or 'baked' (already normalised, ~1).

    Votes over decoder conv weights by the median row norm on a log scale. Meta tensors
    (shape-only builds) are reported as 'raw', the form of the official files.
    """
    sd = extract_vae_state_dict(state_dict)
    raw_votes = baked_votes = 0
    for k, w in sd.items():
        if not (k.startswith("decoder.") and _is_conv_weight(k, w)) or w.is_meta:
            continue
        fan_in = w[0].numel()
        if fan_in < _MIN_FAN_IN_FOR_DETECTION:
            continue
        row_norm = torch.linalg.vector_norm(w.float().flatten(1), dim=1).median().item()
        log_norm = math.log(max(row_norm, 1e-12))
        if abs(log_norm - 0.5 * math.log(fan_in)) < abs(log_norm):
            raw_votes += 1
        else:
            baked_votes += 1
    return "baked" if baked_votes > raw_votes else "raw"


def load_vae(
    state_dict: dict[str, torch.Tensor],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    weight_form: str = "auto",
    config: VAEConfig | None = None,
) -> MelVAE:
    """Build a `MelVAE` from a checkpoint state dict (strict key/shape check).

    weight_form: 'auto' (detect), 'raw' (normalise once here) or 'baked' (use as is).
    dtype: parameter dtype (default: the checkpoint's); data_mean/std stay fp32.
    """
    sd = extract_vae_state_dict(state_dict)
    cfg = config or detect_vae_config(sd)
    if weight_form == "auto":
        weight_form = detect_weight_form(sd)
    if weight_form == "raw":
        sd = normalize_vae_state_dict(sd, dtype)
    elif weight_form != "baked":
        raise ValueError(f"weight_form must be 'auto', 'raw' or 'baked', not {weight_form!r}")

    prepared = {}
    for k, v in sd.items():
        target = torch.float32 if k in ("data_mean", "data_std") else (dtype or v.dtype)
        prepared[k] = v.to(device=device, dtype=target)
    with torch.device("meta"):
        model = MelVAE(cfg)
    try:
        model.load_state_dict(prepared, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"MMAudio VAE checkpoint does not match its detected layout: {e}") from e
    return model.eval().requires_grad_(False)
