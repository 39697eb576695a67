"""GMDS (AvSyncDiff Algorithm 1) and the best-of-N baseline on toy samplers whose answers are known."""

import math

import numpy as np
import pytest
import torch

from foley_core.errors import FoleyError
from foley_core.search import best_of_n, gmds_evaluations, gmds_search, perturb


class Recorder:
    """sample_fn = identity that remembers every batch it was given."""

    def __init__(self):
        self.batches = []

    def __call__(self, noise):
        self.batches.append(noise.clone())
        return noise * 1.0


def closeness(target):
    return lambda latents: -((latents.reshape(latents.shape[0], -1) - target) ** 2).sum(1).numpy()


def test_perturb_matches_the_hand_computed_update():
    # β = 0.6 → sqrt(1 − 0.36) = 0.8; β = 0.8 → 0.6
    x, eta = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0])
    assert torch.allclose(perturb(x, eta, 0.6), torch.tensor([0.6 + 0.4, -1.2 + 0.8]))
    assert torch.allclose(perturb(x, eta, 0.8), torch.tensor([0.8 + 0.3, -1.6 + 0.6]))


def test_one_round_by_hand():
    """N = 2, T = 1 on scalars: the candidates are exactly β·P0 + sqrt(1−β²)·η with ONE η per
    member shared by both steps, P0 and η drawn in that order from the seeded CPU generator."""
    seed, bs, bl = 5, 0.6, 0.8
    g = torch.Generator("cpu").manual_seed(seed)
    p0 = torch.randn(2, 1, generator=g)
    eta = torch.randn(2, 1, generator=g)
    sampler = Recorder()
    target = 0.7
    result = gmds_search(sampler, closeness(target), (1,), population=2, rounds=1, beta_small=bs,
                         beta_large=bl, seed=seed)
    assert len(sampler.batches) == 2
    assert torch.equal(sampler.batches[0], p0)
    expected = torch.cat([bs * p0 + 0.8 * eta, bl * p0 + 0.6 * eta])
    assert torch.allclose(sampler.batches[1], expected, atol=1e-7)
    # Selection and best-so-far, computed by hand from the same numbers.
    all_values = torch.cat([p0, expected]).reshape(-1)
    best = all_values[torch.argmin((all_values - target).abs())]
    assert result.best_score == pytest.approx(-float((best - target) ** 2), abs=1e-6)
    assert torch.allclose(result.best_noise.reshape(-1), best.reshape(-1))
    chosen = result.trace[1]["chosen"]
    for i in range(2):
        small, large = expected[i, 0], expected[2 + i, 0]
        want = "large" if abs(large - target) < abs(small - target) else "small"
        assert chosen[i] == want
    assert result.evaluations == 6 == gmds_evaluations(2, 1)


def test_population_follows_the_better_candidate_each_round():
    """Round t's small/large candidates are built from P_{t-1} = the kept candidates of round t−1."""
    sampler = Recorder()
    result = gmds_search(sampler, closeness(2.0), (3,), population=3, rounds=3, beta_small=0.3,
                         beta_large=0.9, seed=1)
    for t in range(1, 4):
        batch, nxt = sampler.batches[t], sampler.batches[t + 1] if t < 3 else None
        small, large = batch[:3], batch[3:]
        kept = torch.stack([large[i] if c == "large" else small[i]
                            for i, c in enumerate(result.trace[t]["chosen"])])
        if nxt is not None:
            # x_s − β_s·P = sqrt(1−β_s²)·η and x_l − β_l·P = sqrt(1−β_l²)·η: solve η both ways
            eta_s = (nxt[:3] - 0.3 * kept) / math.sqrt(1 - 0.09)
            eta_l = (nxt[3:] - 0.9 * kept) / math.sqrt(1 - 0.81)
            assert torch.allclose(eta_s, eta_l, atol=1e-5)
    everything = torch.cat(sampler.batches)
    scores = closeness(2.0)(everything)
    assert result.best_score == pytest.approx(float(scores.max()))
    bests = [r["best_score"] for r in result.trace]
    assert bests == sorted(bests)  # best-so-far never gets worse


def test_candidates_of_a_round_are_one_batch():
    calls = []

    def sample(noise):
        calls.append(noise.shape[0])
        return noise

    result = gmds_search(sample, closeness(0.0), (4, 2), population=6, rounds=3, seed=0)
    assert calls == [6, 12, 12, 12]
    assert result.evaluations == sum(calls)


def test_same_seed_same_result_and_another_seed_differs():
    runs = [gmds_search(lambda x: x.sin(), closeness(0.3), (8,), population=4, rounds=2, seed=s)
            for s in (11, 11, 12)]
    assert torch.equal(runs[0].best_latent, runs[1].best_latent)
    assert runs[0].trace == runs[1].trace
    assert not torch.equal(runs[0].best_noise, runs[2].best_noise)


def test_progress_counts_evaluations_and_interrupt_stops_the_search():
    seen = []
    gmds_search(lambda x: x, closeness(0.0), (2,), population=2, rounds=2, seed=0,
                progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 10), (6, 10), (10, 10)]

    class Cancelled(Exception):
        pass

    calls = {"interrupt": 0, "sample": 0}

    def interrupt():
        calls["interrupt"] += 1
        if calls["interrupt"] > 3:  # during round 1 (after its sampling)
            raise Cancelled()

    def sample(x):
        calls["sample"] += 1
        return x

    with pytest.raises(Cancelled):
        gmds_search(sample, closeness(0.0), (2,), population=2, rounds=5, seed=0, interrupt=interrupt)
    assert calls["sample"] == 2


def test_parts_of_the_score_are_traced():
    def score(latents):
        a = latents[:, 0].numpy()
        return {"total": a * 2, "envelope": a}

    result = gmds_search(lambda x: x, score, (1,), population=2, rounds=1, seed=3)
    assert result.trace[1]["parts"]["envelope"] == pytest.approx(np.array(result.trace[1]["scores"]) / 2, abs=1e-5)


def test_best_of_n_keeps_the_best_of_its_batches():
    sampler = Recorder()
    result = best_of_n(sampler, closeness(1.0), (3,), n=7, seed=4, batch_size=3)
    assert [b.shape[0] for b in sampler.batches] == [3, 3, 1]
    everything = torch.cat(sampler.batches)
    assert result.best_score == pytest.approx(float(closeness(1.0)(everything).max()))
    assert result.evaluations == 7


@pytest.mark.parametrize("kwargs,needle", [
    ({"beta_small": 0.9, "beta_large": 0.5}, "beta_large > beta_small"),
    ({"beta_small": 0.5, "beta_large": 1.0}, "beta_large must be in [0, 1)"),
    ({"population": 0}, "population"),
    ({"rounds": -1}, "rounds"),
])
def test_bad_settings_are_named(kwargs, needle):
    with pytest.raises(FoleyError, match=None) as error:
        gmds_search(lambda x: x, closeness(0.0), (1,), **kwargs)
    assert needle in str(error.value)


def test_wrong_number_of_scores_is_reported():
    with pytest.raises(FoleyError, match="3 scores for 2 candidates"):
        gmds_search(lambda x: x, lambda l: np.zeros(3), (1,), population=2, rounds=0)


def test_trace_plot_draws_the_best_so_far():
    import numpy as np

    from foley_core.search.plot import plot_trace

    result = gmds_search(lambda x: x, closeness(0.5), (2,), population=3, rounds=2, seed=0)
    pixels = np.asarray(plot_trace(result.trace))
    assert pixels.shape == (270, 480, 3)
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.sum() > 50  # the best-so-far line and markers


def test_keep_parent_population_never_gets_worse_and_off_is_algorithm_1():
    """keep_parent (elitist, not Algorithm 1): each member's score is non-decreasing over rounds,
    and a member is replaced only by a candidate that beats it. Off, the trace equals the default."""
    sampler = Recorder()
    result = gmds_search(sampler, closeness(1.5), (4,), population=3, rounds=4, beta_small=0.5,
                         beta_large=0.9, seed=2, keep_parent=True)
    rounds = [np.array(r["population_scores"]) for r in result.trace]
    for before, after in zip(rounds, rounds[1:]):
        assert np.all(after >= before)
    chosen = [c for r in result.trace[1:] for c in r["chosen"]]
    assert "parent" in chosen  # the toy objective makes some candidates worse than their parent
    # A kept parent is perturbed again next round: the next candidates solve to P = the parent.
    for t in range(1, 4):
        nxt = sampler.batches[t + 1]
        members = []
        for i, c in enumerate(result.trace[t]["chosen"]):
            source = sampler.batches[t][3 + i] if c == "large" else sampler.batches[t][i]
            members.append(source if c != "parent" else None)
        for i, member in enumerate(members):
            if member is not None:
                eta_s = (nxt[i] - 0.5 * member) / math.sqrt(1 - 0.25)
                eta_l = (nxt[3 + i] - 0.9 * member) / math.sqrt(1 - 0.81)
                assert torch.allclose(eta_s, eta_l, atol=1e-5)
    plain = gmds_search(Recorder(), closeness(1.5), (4,), population=3, rounds=4, beta_small=0.5,
                        beta_large=0.9, seed=2)
    default = gmds_search(Recorder(), closeness(1.5), (4,), population=3, rounds=4, beta_small=0.5,
                          beta_large=0.9, seed=2, keep_parent=False)
    assert plain.trace == default.trace
    assert all(c in ("small", "large") for r in plain.trace[1:] for c in r["chosen"])
