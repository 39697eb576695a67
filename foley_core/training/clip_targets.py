"""Per-clip control targets (RMS envelopes, TiVA layouts) computed from every clip's own audio and
stored beside the training features, one row per clip.

The audio is decoded, mono, resampled and cut exactly as `extract` prepared the audio the latents
were encoded from, so a target and its latent describe the same samples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import FoleyError
from ..models.mmaudio.sequence import sequence_lengths
from .shards import ShardDataset


def clip_audio(source: str | Path, duration_s: float, mode: str) -> torch.Tensor:
    """The clip's mono audio at the mode's rate, exactly as `extract` fed it to the VAE."""
    from ..media.audio import decode_audio_stream, fit_to_length, resample, to_mono

    seq = sequence_lengths(duration_s, mode)
    decoded = decode_audio_stream(Path(source), 0.0, duration_s)
    if decoded is None:
        raise FoleyError(f"{source}: no audio stream to compute its control targets from")
    waveform, rate = decoded
    return fit_to_length(resample(to_mono(waveform), rate, seq.sample_rate)[0], seq.samples)


def write_clip_targets(feature_dir: str | Path, file_name: str, key: str, per_clip: Callable[[np.ndarray, int], np.ndarray],
                       settings: dict[str, Any], report: Callable[[str], None]) -> dict[str, Any]:
    """FEATURES/file_name with tensor `key` = per_clip(audio, sample_rate) of every clip, stacked;
    metadata (under `key` + "s") = settings + the clips' duration and names. Written to a temporary
    file first, so a stopped run never leaves half a file under the real name."""
    feature_dir = Path(feature_dir)
    dataset = ShardDataset(feature_dir)
    rate = sequence_lengths(dataset.duration_s, dataset.mode).sample_rate
    rows = []
    for number, clip in enumerate(dataset.clips):
        audio = clip_audio(clip["source"], dataset.duration_s, dataset.mode)
        rows.append(torch.from_numpy(per_clip(audio.numpy(), rate)))
        if (number + 1) % 100 == 0:
            report(f"{key}s: {number + 1}/{len(dataset)} clips")
    meta = {**settings, "duration_s": dataset.duration_s, "clips": [c["name"] for c in dataset.clips]}
    tmp = feature_dir / (file_name + ".tmp")
    save_file({key: torch.stack(rows).contiguous()}, str(tmp), metadata={key + "s": json.dumps(meta)})
    tmp.replace(feature_dir / file_name)
    report(f"wrote {file_name}: {len(rows)} {key}s of shape {tuple(rows[0].shape)}")
    return meta


def read_clip_targets(feature_dir: str | Path, file_name: str, key: str, command: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """(targets [clips, ...], metadata) written by write_clip_targets; `command` makes them."""
    path = Path(feature_dir) / file_name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m foley_core.training {command}` first")
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return handle.get_tensor(key), json.loads(handle.metadata()[key + "s"])
