"""Export a run's network as a safetensors file the plugin's Flow-network loader reads.

Keys are exactly the official net layout (spec §9: no prefix, no recomputed buffers); the run
config rides along as safetensors metadata (strings only). Before writing, the weights are loaded
strictly into a network built from `detect_network_config`, the same path FoleyLoadModel takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..models.mmaudio import MMAudioNetwork, detect_network_config, load_network_weights
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .config import TrainConfig


def exported_state_dict(run_dir: str | Path, use_ema: bool = True,
                        dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict in the official layout, metadata) from RUNDIR/checkpoint.pt."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    config = TrainConfig.from_dict(ckpt["config"])
    weights = ckpt["ema"] if use_ema else ckpt["model"]
    state = {k: v.detach().to(dtype).contiguous() for k, v in weights.items()}

    _, detected = detect_network_config(state)
    expected = config.network_config()
    if detected.architecture() != expected.architecture():
        raise ValueError(f"exported weights detect as {detected.architecture()}, "
                         f"but the run trained {expected.architecture()}")
    with torch.device("meta"):
        probe = MMAudioNetwork(detected)
    load_network_weights(probe, state)  # strict: raises on any missing/unexpected/mis-shaped key

    metadata = {
        "format": "foley-imitator-mmaudio-net",
        "mode": config.mode,
        "duration_s": repr(config.duration_s),
        "step": str(ckpt["step"]),
        "weights": "ema" if use_ema else "model",
        "training_config": json.dumps(config.to_dict(), sort_keys=True),
    }
    return state, metadata


def export_network(run_dir: str | Path, out_file: str | Path, *, use_ema: bool = True,
                   fp16: bool = False) -> Path:
    """Write the (EMA) network to `out_file` (.safetensors); returns the path."""
    out_file = Path(out_file)
    if out_file.suffix.lower() != ".safetensors":
        raise ValueError(f"{out_file}: the export is a .safetensors file")
    state, metadata = exported_state_dict(run_dir, use_ema, torch.float16 if fp16 else torch.float32)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(out_file)
    return out_file
