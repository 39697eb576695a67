"""On-disk feature dataset: sharded safetensors files plus one JSON index.

Layout of a feature folder:
  index.json                  mode, duration, shapes, encoder file names, shards, clips, skipped
  shard_00000.safetensors     stacked tensors of up to `shard_size` clips (row i = clip i)
  empty_text.safetensors      CLIP text features of "" (77, D_text), to seed `empty_string_feat`

Per clip: clip_f (Nc, D_clip), sync_f (Ns, D_sync), text_f (77, D_text), latent_mean and
latent_std (N, latent_dim) — channel-last like the network's input — and has_text (caption
non-empty). Latents are stored as the VAE posterior, so training draws mean + std·ε afresh.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

INDEX_NAME = "index.json"
EMPTY_TEXT_NAME = "empty_text.safetensors"
FORMAT = "foley-imitator-features"
VERSION = 1
TENSOR_KEYS = ("clip_f", "sync_f", "text_f", "latent_mean", "latent_std")
_OPEN_SHARDS = 4  # shard files kept open (memory-mapped) per dataset instance


def _write_atomic(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


class ShardWriter:
    """Collects per-clip features and flushes them as fixed-size shards (bounded memory)."""

    def __init__(self, out_dir: str | Path, shard_size: int, header: dict[str, Any]):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shard_size = int(shard_size)
        self.header = dict(header)
        self.shards: list[dict[str, Any]] = []
        self.clips: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self._pending: list[dict[str, torch.Tensor]] = []
        self.shapes: dict[str, list[int]] | None = None

    def add(self, name: str, caption: str, source: str, features: dict[str, torch.Tensor]) -> None:
        shapes = {k: list(features[k].shape) for k in TENSOR_KEYS}
        if self.shapes is None:
            self.shapes = shapes
        elif shapes != self.shapes:
            raise ValueError(f"{name}: feature shapes {shapes} differ from {self.shapes}")
        row = {k: features[k].detach().float().cpu() for k in TENSOR_KEYS}
        row["has_text"] = torch.tensor(bool(caption))
        self._pending.append(row)
        self.clips.append({"name": name, "caption": caption, "source": source,
                           "shard": len(self.shards), "row": len(self._pending) - 1})
        if len(self._pending) >= self.shard_size:
            self.flush()

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append({"source": source, "reason": reason})

    def flush(self) -> None:
        if not self._pending:
            return
        name = f"shard_{len(self.shards):05d}.safetensors"
        stacked = {k: torch.stack([row[k] for row in self._pending]) for k in self._pending[0]}
        _write_atomic(self.out_dir / name, stacked)
        self.shards.append({"file": name, "count": len(self._pending)})
        self._pending = []

    def write_empty_text(self, text_f: torch.Tensor) -> None:
        _write_atomic(self.out_dir / EMPTY_TEXT_NAME, {"text_f": text_f.detach().float().cpu()})
        self.header["empty_text_file"] = EMPTY_TEXT_NAME

    def close(self) -> dict[str, Any]:
        """Flush the last shard and write the index (last, so a folder with an index is complete)."""
        self.flush()
        index = {"format": FORMAT, "version": VERSION, **self.header, "shapes": self.shapes,
                 "shards": self.shards, "clips": self.clips, "skipped": self.skipped}
        tmp = self.out_dir / (INDEX_NAME + ".tmp")
        tmp.write_text(json.dumps(index, indent=1))
        os.replace(tmp, self.out_dir / INDEX_NAME)
        return index


def read_index(feature_dir: str | Path) -> dict[str, Any]:
    path = Path(feature_dir) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m foley_core.training extract` first")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise ValueError(f"{path} is not a version-{VERSION} {FORMAT} index")
    return index


class ShardDataset(Dataset):
    """Map-style dataset over a feature folder; shards are opened lazily (memory-mapped).

    Index-addressable, so `DistributedSampler` and any deterministic index order work.
    Items: dict with clip_f, sync_f, text_f, latent_mean, latent_std (float32), has_text (bool
    tensor) and name (str).
    """

    def __init__(self, feature_dir: str | Path):
        self.root = Path(feature_dir)
        self.index = read_index(self.root)
        self.clips = self.index["clips"]
        self._open: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def mode(self) -> str:
        return self.index["mode"]

    @property
    def duration_s(self) -> float:
        return float(self.index["duration_s"])

    @property
    def shapes(self) -> dict[str, list[int]]:
        return self.index["shapes"]

    def _shard(self, number: int):
        handle = self._open.pop(number, None)
        if handle is None:
            path = self.root / self.index["shards"][number]["file"]
            handle = safe_open(str(path), framework="pt", device="cpu")
            while len(self._open) >= _OPEN_SHARDS:
                self._open.popitem(last=False)
        self._open[number] = handle  # most recently used last
        return handle

    def __getitem__(self, i: int) -> dict[str, Any]:
        clip = self.clips[i]
        shard, row = self._shard(clip["shard"]), clip["row"]
        item: dict[str, Any] = {k: shard.get_slice(k)[row:row + 1][0] for k in TENSOR_KEYS}
        item["has_text"] = shard.get_slice("has_text")[row:row + 1][0]
        item["name"] = clip["name"]
        return item

    def __getstate__(self):
        # DataLoader workers get their own file handles.
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state

    def empty_text_features(self) -> torch.Tensor | None:
        """CLIP features of "" stored at extraction time (None for folders written without)."""
        name = self.index.get("empty_text_file")
        if not name:
            return None
        with safe_open(str(self.root / name), framework="pt", device="cpu") as f:
            return f.get_tensor("text_f")

    def latent_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std (latent_dim,) of latents drawn from the stored posteriors.

        Exact moments of the mixture over all clips and frames: var = Var(mean) + E[std²].
        Streams one shard at a time, in float64.
        """
        total = sq = var_sum = None
        count = 0
        for info in self.index["shards"]:
            with safe_open(str(self.root / info["file"]), framework="pt", device="cpu") as f:
                mean = f.get_tensor("latent_mean").double().flatten(0, 1)
                std = f.get_tensor("latent_std").double().flatten(0, 1)
            s, q, v = mean.sum(0), mean.square().sum(0), std.square().sum(0)
            total, sq, var_sum = (s, q, v) if total is None else (total + s, sq + q, var_sum + v)
            count += mean.shape[0]
        if not count:
            raise ValueError(f"{self.root}: the feature folder holds no clips")
        mu = total / count
        var = sq / count - mu.square() + var_sum / count
        return mu.float(), var.clamp_min(1e-12).sqrt().float()
