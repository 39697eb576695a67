"""Teach a small Synchformer-shaped visual encoder where sounds happen, from videos' own soundtracks.

Synchformer learns audio-visual synchrony from unlabelled video; in the same spirit (and with no
labels) this pretext trains the encoder's tokens to predict, through a throw-away linear head, the
clip's own sound energy in each token's time slot: log RMS energy and its rise over the previous
slot (onsets). Token j of segment s covers frames 8s+2j and 8s+2j+1 (25 fps), i.e. 0.08 s.
The trained encoder keeps the official Synchformer key layout.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..models.synchformer import SynchformerVisualEncoder, num_segments

SYNC_FPS = 25
FRAMES_PER_TOKEN = 2
SEGMENT_FRAMES, SEGMENT_STRIDE, TOKENS_PER_SEGMENT = 16, 8, 8


def token_targets(audio: np.ndarray, sample_rate: int, n_frames: int) -> torch.Tensor:
    """(S, 8, 2) targets: [log energy, rise over the previous slot] per token slot."""
    slot = int(round(sample_rate * FRAMES_PER_TOKEN / SYNC_FPS))
    n_slots = n_frames // FRAMES_PER_TOKEN
    padded = np.pad(audio.astype(np.float64), (0, max(0, n_slots * slot - len(audio))))
    energy = np.log(np.mean(padded[: n_slots * slot].reshape(n_slots, slot) ** 2, axis=1) + 1e-8)
    rise = np.maximum(0.0, np.diff(energy, prepend=energy[:1]))
    per_slot = np.stack([energy, rise], axis=1)  # (slots, 2)
    rows = []
    for s in range(num_segments(n_frames)):
        first = (s * SEGMENT_STRIDE) // FRAMES_PER_TOKEN
        rows.append(per_slot[first:first + TOKENS_PER_SEGMENT])
    return torch.tensor(np.stack(rows), dtype=torch.float32)


def train_sync_encoder(encoder: SynchformerVisualEncoder, clips: Sequence, *, steps: int = 600,
                       batch_segments: int = 8, lr: float = 1e-3, seed: int = 0,
                       log: Callable[[str], None] = print) -> dict:
    """clips: (sync_frames uint8 [T, 3, 224, 224], targets (S, 8, 2)) pairs. Trains in place."""
    generator = torch.Generator().manual_seed(seed)
    all_targets = torch.cat([t for _, t in clips]).reshape(-1, 2)
    mean, std = all_targets.mean(0), all_targets.std(0).clamp_min(1e-3)
    index = [(c, s) for c, (_, t) in enumerate(clips) for s in range(t.shape[0])]
    head = nn.Linear(encoder.vfeat_extractor.cfg.embed_dim, 2)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    encoder.train().requires_grad_(True)
    history, started = [], time.monotonic()
    for step in range(1, steps + 1):
        picks = torch.randint(len(index), (batch_segments,), generator=generator)
        segments, targets = [], []
        for p in picks.tolist():
            c, s = index[p]
            frames, clip_targets = clips[c]
            segments.append(frames[s * SEGMENT_STRIDE: s * SEGMENT_STRIDE + SEGMENT_FRAMES])
            targets.append(clip_targets[s])
        x = encoder.to_model_input(torch.stack(segments)).permute(0, 2, 1, 3, 4)  # (N, 3, 16, H, W)
        tokens = encoder.vfeat_extractor(x)  # (N, 8, D)
        loss = ((head(tokens) - (torch.stack(targets) - mean) / std) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % 50 == 0 or step == steps:
            history.append({"step": step, "loss": loss.item(), "seconds": round(time.monotonic() - started, 1)})
            log(f"[sync pretext] step {step}/{steps} loss {loss.item():.4f}")
    encoder.eval().requires_grad_(False)
    return {"log": history}
