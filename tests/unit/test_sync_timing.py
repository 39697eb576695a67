"""The sync-stream timing geometry (foley_core/evaluation/sync_timing.py)."""

import numpy as np

from foley_core.evaluation import sync_timing
from foley_core.models.mmaudio.sequence import sequence_lengths


def test_tokens_follow_the_overlapping_segment_layout():
    starts = sync_timing.token_starts(24)
    # segment 0 tokens cover 0..0.64 s in 0.08 s steps; segment 1 starts again at 0.32 s
    assert np.allclose(starts[:8], np.arange(8) * 0.08)
    assert np.allclose(starts[8:16], 0.32 + np.arange(8) * 0.08)
    assert starts[8] < starts[7]


def test_read_error_is_a_sawtooth_of_a_few_hundred_ms():
    error = sync_timing.read_time_error(8.0, "16k")
    assert error.shape == (sequence_lengths(8.0, "16k").latent,)
    assert 0.2 < np.abs(error).max() < 0.5
    # it jumps back at segment boundaries: many sign-changing steps larger than a latent frame
    assert (np.diff(error) < -0.1).sum() >= 20


def test_placement_accuracy_behaves_like_a_recall():
    events = np.random.default_rng(0).uniform(0.3, 3.7, 60)
    loose = sync_timing.placement_accuracy(4.0, "16k", events, tolerance=1.0)
    tight = sync_timing.placement_accuracy(4.0, "16k", events, tolerance=0.05)
    middle = sync_timing.placement_accuracy(4.0, "16k", events, tolerance=0.1)
    assert loose == 1.0 and tight <= middle < loose


def test_slot_shifts_never_do_worse_than_no_correction():
    events = np.random.default_rng(1).uniform(0.3, 3.7, 40)
    plain = sync_timing.placement_accuracy(4.0, "16k", events, 0.1)
    shifts, best = sync_timing.best_slot_shifts(4.0, "16k", events, 0.1, sweeps=1)
    assert len(shifts) == 8 and best >= plain
    assert best == sync_timing.placement_accuracy(4.0, "16k", events, 0.1, shifts)


def test_sounding_at_every_covering_frame_only_adds_recall():
    events = np.random.default_rng(2).uniform(0.3, 3.7, 60)
    first = sync_timing.placement_accuracy(4.0, "16k", events, 0.1)
    anywhere = sync_timing.placement_accuracy(4.0, "16k", events, 0.1, first_only=False)
    assert anywhere >= first
