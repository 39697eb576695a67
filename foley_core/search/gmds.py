"""Gaussian Mixture Diffusion Search (AvSyncDiff, Algorithm 1) and a best-of-N baseline.

Both search over the sampler's initial noise x0 ~ N(0, I). They know nothing about networks or
audio: the caller injects
- `sample_fn(noise [B, *shape]) -> latents [B, ...]` — whatever the Flow Sampler would do with
  that noise (latent prompting, guidance, ...), run on the whole batch at once;
- `score_fn(latents [B, ...]) -> scores [B]` (higher is better) — decode + verifiers. It may also
  return a mapping {"total": [B], "<part>": [B], ...}; the parts are recorded in the trace.

Algorithm 1, as implemented (the paper's own symbols):
  P_0 = N noises from N(0, I); x* = argmax F over P_0.
  for t = 1..T, for every member i: draw η ~ N(0, I) (one η for both candidates),
      x_s = β_s·P[i] + sqrt(1 − β_s²)·η,   x_l = β_l·P[i] + sqrt(1 − β_l²)·η,
      P[i] = the better of x_s, x_l (ties keep x_s); best-so-far updated on a strict improvement.
The paper requires β_l > β_s and calls x_s the "conservative" step, but by its own formula the
candidate with the LARGER β stays closer to P[i] (correlation β). We follow the formula (the
algorithm box and Eq. 4/5 agree on it); "small"/"large" name the β, not the distance moved. The
paper gives no values for β; our defaults (0.5, 0.9) pair one broad move with one local one.

All 2N candidates of a round go through `sample_fn` as ONE batch and are scored together, so
the sampler's per-call overhead is paid once per round (see benchmarks/bench_gmds.py).

Noise comes from one CPU generator seeded with `seed`, in a fixed order (P_0, then η of round 1,
2, ...), so the same seed gives the same search on every device.

Interruption: `interrupt()` is called before every sampler batch and before every scoring; if it
raises, the exception propagates unchanged and nothing is returned (the search stops cleanly —
in ComfyUI a Cancel must stop the whole prompt, not hand a partial result downstream). Use
`on_round` to observe the best-so-far while the search runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import FoleyError

SampleFn = Callable[[torch.Tensor], torch.Tensor]
ScoreFn = Callable[[torch.Tensor], Union[np.ndarray, Mapping[str, np.ndarray]]]
ProgressFn = Callable[[int, int], None]  # (evaluations done, evaluations in total)

DEFAULT_POPULATION = 6  # the paper's setting ("number of candidates 6")
DEFAULT_ROUNDS = 3
DEFAULT_BETA_SMALL = 0.5
DEFAULT_BETA_LARGE = 0.9


@dataclass
class SearchResult:
    best_latent: torch.Tensor  # [1, ...]: sample_fn's output for the best noise
    best_noise: torch.Tensor  # [1, *shape]
    best_score: float
    evaluations: int  # sampler evaluations (one per noise sampled and scored)
    trace: list = field(default_factory=list)  # one dict per round (round 0 = the initial population)
    method: str = "gmds"

    def to_json(self) -> dict:
        return {"method": self.method, "best_score": self.best_score, "evaluations": self.evaluations,
                "rounds": self.trace}


def gmds_evaluations(population: int, rounds: int) -> int:
    """Sampler evaluations GMDS spends: N for P_0 plus 2N per round."""
    return population * (1 + 2 * rounds)


def check_settings(population: int, rounds: int, beta_small: float, beta_large: float) -> None:
    if int(population) < 1:
        raise FoleyError(f"GMDS population must be at least 1, got {population}.")
    if int(rounds) < 0:
        raise FoleyError(f"GMDS rounds must be 0 or more, got {rounds}.")
    for name, beta in (("beta_small", beta_small), ("beta_large", beta_large)):
        if not (math.isfinite(beta) and 0.0 <= beta < 1.0):
            raise FoleyError(f"GMDS {name} must be in [0, 1) (1 would re-sample the same noise), got {beta}.")
    if not beta_large > beta_small:
        raise FoleyError(f"GMDS needs beta_large > beta_small (AvSyncDiff Algorithm 1), got "
                         f"beta_small={beta_small}, beta_large={beta_large}; swap or change them.")


def perturb(x: torch.Tensor, eta: torch.Tensor, beta: float) -> torch.Tensor:
    """β·x + sqrt(1 − β²)·η (Eq. 4/5): keeps N(0, I) noise N(0, I)."""
    return beta * x + math.sqrt(1.0 - beta * beta) * eta


def _scores(score_fn: ScoreFn, latents: torch.Tensor, expected: int) -> tuple[np.ndarray, dict]:
    raw = score_fn(latents)
    parts = {}
    if isinstance(raw, Mapping):
        parts = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in raw.items() if k != "total"}
        raw = raw["total"]
    scores = np.asarray(raw, dtype=np.float64).reshape(-1)
    if scores.shape[0] != expected:
        raise FoleyError(f"The verifier returned {scores.shape[0]} scores for {expected} candidates.")
    if not np.all(np.isfinite(scores)):
        raise FoleyError("The verifier returned NaN or infinite scores; check its inputs (silent audio?).")
    return scores, parts


class _Evaluator:
    """sample → score one batch, counting evaluations and reporting progress/interrupts."""

    def __init__(self, sample_fn, score_fn, total, progress, interrupt):
        self.sample_fn, self.score_fn, self.total = sample_fn, score_fn, total
        self.progress = progress or (lambda done, total: None)
        self.interrupt = interrupt or (lambda: None)
        self.done = 0

    def __call__(self, noise: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, dict]:
        self.interrupt()
        latents = self.sample_fn(noise)
        if latents.shape[0] != noise.shape[0]:
            raise FoleyError(f"The sampler returned {latents.shape[0]} latents for {noise.shape[0]} noises.")
        self.interrupt()
        scores, parts = _scores(self.score_fn, latents, noise.shape[0])
        self.done += noise.shape[0]
        self.progress(self.done, self.total)
        return latents, scores, parts


def _listed(values: np.ndarray) -> list:
    return [round(float(v), 6) for v in values]


def gmds_search(sample_fn: SampleFn, score_fn: ScoreFn, noise_shape: Sequence[int], *,
                population: int = DEFAULT_POPULATION, rounds: int = DEFAULT_ROUNDS,
                beta_small: float = DEFAULT_BETA_SMALL, beta_large: float = DEFAULT_BETA_LARGE,
                seed: int = 0, keep_parent: bool = False, progress: Optional[ProgressFn] = None,
                interrupt: Optional[Callable[[], None]] = None,
                on_round: Optional[Callable[[dict], None]] = None) -> SearchResult:
    """AvSyncDiff Algorithm 1 over the noise of shape `noise_shape` (one member, no batch dim).

    keep_parent=True is NOT Algorithm 1: a member stays when both of its candidates score below
    it (an elitist (1+2) step), so the population never gets worse. Off by default. Without it a
    member's walk has the prior as its stationary law, so Algorithm 1 cannot climb past best-of-N;
    with it and many rounds per member it can (benchmarks/sim_gmds_landscapes.py, bench_gmds.py)."""
    check_settings(population, rounds, beta_small, beta_large)
    n, shape = int(population), tuple(int(s) for s in noise_shape)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    evaluate = _Evaluator(sample_fn, score_fn, gmds_evaluations(n, rounds), progress, interrupt)

    pop = torch.randn(n, *shape, generator=generator, dtype=torch.float32)
    latents, pop_scores, parts = evaluate(pop)
    i = int(np.argmax(pop_scores))
    best_score, best_noise, best_latent = float(pop_scores[i]), pop[i:i + 1].clone(), latents[i:i + 1].clone()
    trace = [{"round": 0, "scores": _listed(pop_scores), "parts": {k: _listed(v) for k, v in parts.items()},
              "population_scores": _listed(pop_scores), "best_score": best_score,
              "evaluations": evaluate.done}]
    if on_round:
        on_round(trace[-1])

    for t in range(1, int(rounds) + 1):
        eta = torch.randn(n, *shape, generator=generator, dtype=torch.float32)
        candidates = torch.cat([perturb(pop, eta, beta_small), perturb(pop, eta, beta_large)])
        latents, scores, parts = evaluate(candidates)  # one batch of 2N: [small ... | large ...]
        small, large = scores[:n], scores[n:]
        take_large = large > small  # argmax over {x_s, x_l}; a tie keeps x_s
        pick = np.where(take_large, np.arange(n) + n, np.arange(n))
        improved = scores[pick] > pop_scores
        kept = ~improved if keep_parent else np.zeros(n, dtype=bool)
        pop = torch.where(torch.from_numpy(kept).view(-1, *([1] * len(shape))), pop, candidates[torch.from_numpy(pick)])
        pop_scores = np.where(kept, pop_scores, scores[pick])
        for index in pick:  # member order, so an equal later score never replaces an earlier best
            if scores[index] > best_score:
                best_score = float(scores[index])
                best_noise = candidates[index:index + 1].clone()
                best_latent = latents[index:index + 1].clone()
        trace.append({"round": t, "scores": _listed(scores), "parts": {k: _listed(v) for k, v in parts.items()},
                      "population_scores": _listed(pop_scores),
                      "chosen": ["parent" if k else ("large" if c else "small") for k, c in zip(kept, take_large)],
                      "best_score": best_score, "evaluations": evaluate.done})
        if on_round:
            on_round(trace[-1])
    return SearchResult(best_latent, best_noise, best_score, evaluate.done, trace, "gmds")


def best_of_n(sample_fn: SampleFn, score_fn: ScoreFn, noise_shape: Sequence[int], *, n: int,
              seed: int = 0, batch_size: Optional[int] = None, progress: Optional[ProgressFn] = None,
              interrupt: Optional[Callable[[], None]] = None,
              on_round: Optional[Callable[[dict], None]] = None) -> SearchResult:
    """The baseline: n independent noises from N(0, I), keep the best. Sampled in batches of
    `batch_size` (default: all at once); each batch is one trace entry."""
    if int(n) < 1:
        raise FoleyError(f"best-of-N needs n >= 1, got {n}.")
    n, shape = int(n), tuple(int(s) for s in noise_shape)
    batch = n if not batch_size else max(1, int(batch_size))
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noises = torch.randn(n, *shape, generator=generator, dtype=torch.float32)
    evaluate = _Evaluator(sample_fn, score_fn, n, progress, interrupt)
    best_score, best_noise, best_latent, trace = -math.inf, None, None, []
    for start in range(0, n, batch):
        chunk = noises[start:start + batch]
        latents, scores, parts = evaluate(chunk)
        i = int(np.argmax(scores))
        if scores[i] > best_score:
            best_score, best_noise, best_latent = float(scores[i]), chunk[i:i + 1].clone(), latents[i:i + 1].clone()
        trace.append({"round": len(trace), "scores": _listed(scores),
                      "parts": {k: _listed(v) for k, v in parts.items()},
                      "best_score": best_score, "evaluations": evaluate.done})
        if on_round:
            on_round(trace[-1])
    return SearchResult(best_latent, best_noise, best_score, evaluate.done, trace, "best_of_n")
