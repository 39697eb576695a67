"""Helpers of the video-use diagnostics (foley_core/evaluation/video_use.py)."""

import numpy as np

from foley_core.evaluation.video_use import _with_neighbours, roc_auc


def test_roc_auc_matches_pairwise_counting():
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.2
    scores = rng.normal(size=200) + labels  # positives score higher on average
    pairs = [(p > n) + 0.5 * (p == n) for p in scores[labels] for n in scores[~labels]]
    assert abs(roc_auc(labels, scores) - np.mean(pairs)) < 1e-12
    assert roc_auc(labels, scores) > 0.6
    assert roc_auc(labels, -scores) < 0.4


def test_neighbour_stacking_shifts_tokens_and_pads_with_zeros():
    x = np.arange(2 * 5 * 1, dtype=float).reshape(2, 5, 1) + 1
    z = _with_neighbours(x, 1)
    assert z.shape == (2, 5, 3)
    assert list(z[0, 0]) == [0.0, 1.0, 2.0]  # no left neighbour at the start
    assert list(z[1, 4]) == [9.0, 10.0, 0.0]  # no right neighbour at the end
