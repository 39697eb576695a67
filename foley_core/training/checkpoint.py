"""Training checkpoints: one atomic `checkpoint.pt` per run, plus RNG-state capture.

Contents: format, config, step, data epoch/position, world size, model, EMA, optimizer,
scheduler, loss-window accumulator, latent statistics and the RNG states of *every* rank (each
rank restores its own). Step noise comes from per-step generators (see flow_loss), so the global
RNGs matter only for code outside this package — they are saved anyway so a resumed run is
indistinguishable from an uninterrupted one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "foley-imitator-train-checkpoint"
VERSION = 1


def capture_rng_state() -> dict[str, Any]:
    """Global RNG states of this process as tensors/plain types (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": [list(s) if isinstance(s, tuple) else s for s in random.getstate()],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write via a temporary file in the same folder + os.replace: never a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint at {path}")
    data = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Foley Imitator training checkpoint")
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {data.get('version')}")
    return data
