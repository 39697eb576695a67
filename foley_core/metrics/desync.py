"""DeSync as av-benchmark computes it (spec synchformer_sync.md §7).

Per audio–video pair: the Synchformer classifies the offset of two 14-segment windows (the first
4.8 s and the last 4.8 s), each window scores |offset of the argmax class| in seconds, and DeSync
is the mean of all window scores over all pairs. Lower is better; 0 = both windows "in sync".
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import MediaError
from ..models.synchformer_sync import OFFSET_GRID, WINDOW_SEGMENTS

SEGMENT_SECONDS = 0.32


def desync_windows(num_segments: int) -> list[tuple[int, int]]:
    """[(start, stop) of the first window, of the last window] in segments."""
    if num_segments < WINDOW_SEGMENTS:
        raise MediaError(f"DeSync needs at least {WINDOW_SEGMENTS} Synchformer segments (4.8 s of audio and "
                         f"video); got {num_segments} ({(num_segments + 1) * SEGMENT_SECONDS:.2f} s).")
    return [(0, WINDOW_SEGMENTS), (num_segments - WINDOW_SEGMENTS, num_segments)]


def window_offsets(logits: torch.Tensor) -> torch.Tensor:
    """(…, 21) logits → signed offsets (s) of the argmax class (first maximum on ties)."""
    return OFFSET_GRID.to(logits.device)[logits.argmax(dim=-1)]


def pair_window_scores(model, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """visual (B, S, 8, Dv), audio (B, S, 6, Da) → (2, B) |offset| per window (float32), rows =
    first, last window. Both streams must cover the same segments."""
    if visual.shape[:2] != audio.shape[:2]:
        raise MediaError(f"Visual and audio segments differ: {tuple(visual.shape[:2])} vs {tuple(audio.shape[:2])}.")
    rows = [window_offsets(model.window_logits(visual[:, a:b], audio[:, a:b])).abs()
            for a, b in desync_windows(visual.shape[1])]
    return torch.stack(rows)


def desync(window_scores) -> float:
    """The av-benchmark number: float64 mean of the float32 window scores."""
    return float(np.mean(np.asarray(torch.as_tensor(window_scores).cpu(), dtype=np.float64)))
