"""How precisely can MMAudio's sync stream place a sound? A geometry check, no model involved.

    python -m foley_core.evaluation.sync_timing --durations 4 8 10

The sync features are Synchformer tokens of *overlapping* 16-frame segments (stride 8 frames, 8
tokens per segment, token j of segment s = frames 8s+2j, 8s+2j+1 at 25 fps), laid end to end and
stretched to the latent length with nearest-exact interpolation (spec/mmaudio.md §3.4). The
sequence therefore runs through time at twice the real speed inside a segment, jumps back 0.32 s
at every segment boundary, and drifts against the latent clock because 8 tokens stand for 0.32 s
but occupy 8·duration/K seconds of latent time. The network only sees relative positions
(RoPE, convolutions), so it can learn a correction per token slot j but not per absolute
position: the drift stays.

This module measures the consequence for onset accuracy. An event at time e is "placed" at the
first latent frame whose (slot-shifted) sync token covers e; the fraction placed within the
tolerance is the best onset accuracy any network can reach through the sync stream alone
(the CLIP stream, 8 fps with time-aligned RoPE, is not counted). Measured here (seeded events):
at 4 s about 0.45 at 0.1 s, at 8 s about 0.64 — see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import numpy as np

from ..models.mmaudio.sequence import (SYNC_FPS, SYNC_SEGMENT_STRIDE, SYNC_TOKENS_PER_SEGMENT,
                                       sequence_lengths, sync_to_latent_index)

FRAMES_PER_TOKEN = 2
MAX_SLOT_SHIFT = 6  # a k7 conv then a k3 conv reach ±4 tokens; a little more is allowed for safety


def token_starts(sync_len: int) -> np.ndarray:
    """Start time (s) of each sync token; each covers FRAMES_PER_TOKEN / 25 s."""
    k = np.arange(sync_len)
    segment, slot = k // SYNC_TOKENS_PER_SEGMENT, k % SYNC_TOKENS_PER_SEGMENT
    return (segment * SYNC_SEGMENT_STRIDE + FRAMES_PER_TOKEN * slot) / SYNC_FPS


def latent_centres(duration_s: float, mode: str) -> np.ndarray:
    lengths = sequence_lengths(duration_s, mode)
    return (np.arange(lengths.latent) + 0.5) * lengths.samples / lengths.sample_rate / lengths.latent


def read_token(duration_s: float, mode: str, slot_shifts=None) -> np.ndarray:
    """For each latent frame, the sync token whose information it carries (after a per-slot shift)."""
    lengths = sequence_lengths(duration_s, mode)
    index = sync_to_latent_index(lengths.sync, lengths.latent).numpy()
    if slot_shifts is not None:
        index = index + np.asarray(slot_shifts)[index % SYNC_TOKENS_PER_SEGMENT]
    return np.clip(index, 0, lengths.sync - 1)


def read_time_error(duration_s: float, mode: str) -> np.ndarray:
    """Token centre minus latent centre (s) for every latent frame, without any correction."""
    lengths = sequence_lengths(duration_s, mode)
    centres = token_starts(lengths.sync) + FRAMES_PER_TOKEN / SYNC_FPS / 2
    return centres[read_token(duration_s, mode)] - latent_centres(duration_s, mode)


def placement_accuracy(duration_s: float, mode: str, events: np.ndarray, tolerance: float,
                       slot_shifts=None, *, first_only: bool = True) -> float:
    """Fraction of events whose first covering latent frame lies within `tolerance` of the event.

    first_only=False counts an event if ANY covering latent frame is close enough: the recall of
    a network that sounds at every place the event's token is read (doubling its sounds)."""
    lengths = sequence_lengths(duration_s, mode)
    start = token_starts(lengths.sync)[read_token(duration_s, mode, slot_shifts)]
    centres = latent_centres(duration_s, mode)
    width = FRAMES_PER_TOKEN / SYNC_FPS
    hits = 0
    for e in events:
        covering = np.nonzero((start <= e) & (e < start + width))[0]
        if covering.size:
            placed = centres[covering[:1]] if first_only else centres[covering]
            hits += bool(np.any(np.abs(placed - e) < tolerance))
    return hits / len(events)


def best_slot_shifts(duration_s: float, mode: str, events: np.ndarray, tolerance: float,
                     sweeps: int = 3) -> tuple[list[int], float]:
    """Coordinate ascent over one shift per token slot (what a perfect sync projection could learn)."""
    shifts = [0] * SYNC_TOKENS_PER_SEGMENT
    best = placement_accuracy(duration_s, mode, events, tolerance, shifts)
    for _ in range(sweeps):
        for slot in range(SYNC_TOKENS_PER_SEGMENT):
            for shift in range(-MAX_SLOT_SHIFT, MAX_SLOT_SHIFT + 1):
                trial = list(shifts)
                trial[slot] = shift
                score = placement_accuracy(duration_s, mode, events, tolerance, trial)
                if score > best:
                    best, shifts = score, trial
    return shifts, best


@dataclass
class CeilingReport:
    duration_s: float
    mode: str
    max_read_error_s: float
    mean_abs_read_error_s: float
    uncorrected: dict
    best_slot_shifts: list
    ceiling: dict
    any_covering: dict


def ceiling(duration_s: float, mode: str = "16k", *, n_events: int = 400, seed: int = 0,
            tolerances=(0.05, 0.1, 0.3), margin_s: float = 0.3) -> CeilingReport:
    """Sync-stream onset-accuracy ceiling for one duration (shifts tuned at the 0.1 s tolerance)."""
    rng = np.random.default_rng(seed)
    events = rng.uniform(margin_s, duration_s - margin_s, n_events)
    error = read_time_error(duration_s, mode)
    shifts, _ = best_slot_shifts(duration_s, mode, events, 0.1)
    return CeilingReport(
        duration_s=duration_s, mode=mode, max_read_error_s=float(np.abs(error).max()),
        mean_abs_read_error_s=float(np.abs(error).mean()),
        uncorrected={str(t): placement_accuracy(duration_s, mode, events, t) for t in tolerances},
        best_slot_shifts=shifts,
        ceiling={str(t): placement_accuracy(duration_s, mode, events, t, shifts) for t in tolerances},
        any_covering={str(t): placement_accuracy(duration_s, mode, events, t, first_only=False)
                      for t in tolerances})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[4.0, 8.0])
    parser.add_argument("--mode", default="16k", choices=["16k", "44k"])
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for d in args.durations:
        print(json.dumps(asdict(ceiling(d, args.mode, n_events=args.events, seed=args.seed))))


if __name__ == "__main__":
    main()
