"""GMDS vs best-of-N on synthetic score landscapes whose smoothness in the noise is known.

The real benchmark (bench_gmds.py) measures the two searches with a real model and verifier, where
one cannot tell WHY one wins. Here the "verifier" is a random function of the noise x ∈ R^D whose
prior distribution is ~N(0, 1) and whose parent–child correlation is chosen: the correlation
between s(x) and s(β·x + sqrt(1 − β²)·η) at β = 0.9 (`c90`, what probe_gmds_smoothness.py
measures on the real model: 0.55–0.90 for the envelope verifier).

- `linear`: s(x) = w·x / |w| — c(β) = β exactly, the smoothest landscape there is.
- `rbf`: a Gaussian process with a squared-exponential kernel, drawn with random Fourier
  features; |x − x'|² ≈ 2D(1 − β) for a β-step, so c(β) ≈ exp(−D(1 − β) / ℓ²) and ℓ is set
  from `c90`.

The searches are the real `gmds_search` and `best_of_n` (the sampler is the identity, the scorer
the landscape), so whatever holds here holds for the node's search code. Reported per landscape,
over many independent landscapes: the mean best score of each method at each budget the GMDS run
passes through, and GMDS − best-of-N (mean ± s.e.).

    python benchmarks/sim_gmds_landscapes.py                       # ~1 min on a 2-core CPU
    python benchmarks/sim_gmds_landscapes.py --population 2 --rounds 25 --json sim.json

Not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from foley_core.search import best_of_n, gmds_evaluations, gmds_search  # noqa: E402


class Landscape:
    """A random score function of noise vectors [B, D] → [B], ~N(0, 1) under the prior."""

    def __init__(self, kind: str, dim: int, c90: float, features: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.kind = kind
        if kind == "linear":
            w = torch.randn(dim, generator=g, dtype=torch.float64)
            self.w = w / w.norm()
        else:
            if not 0.0 < c90 < 1.0:
                raise ValueError(f"c90 must be in (0, 1) for an rbf landscape, got {c90}")
            length = math.sqrt(dim * 0.1 / -math.log(c90))  # c(0.9) = exp(-D·0.1/ℓ²)
            self.omega = torch.randn(dim, features, generator=g, dtype=torch.float64) / length
            self.phase = torch.rand(features, generator=g, dtype=torch.float64) * 2 * math.pi
            self.scale = math.sqrt(2.0 / features)

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        x = x.reshape(x.shape[0], -1).to(torch.float64)
        if self.kind == "linear":
            return (x @ self.w).numpy()
        return (self.scale * torch.cos(x @ self.omega + self.phase).sum(dim=1)).numpy()


def measured_c90(landscape: Landscape, dim: int, seed: int, pairs: int = 400) -> float:
    """The parent–child correlation at β = 0.9 actually realised by this landscape."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(pairs, dim, generator=g, dtype=torch.float64)
    child = 0.9 * x + math.sqrt(1 - 0.81) * torch.randn(pairs, dim, generator=g, dtype=torch.float64)
    return float(np.corrcoef(landscape(x), landscape(child))[0, 1])


def compare(kind: str, c90: float, args) -> dict:
    budgets = [gmds_evaluations(args.population, t) for t in range(args.rounds + 1)]
    rows = {"gmds": [], "gmds_keep_parent": [], "best_of_n": []}
    realised = []
    for trial in range(args.trials):
        land = Landscape(kind, args.dim, c90, args.features, seed=10_000 + trial)
        if trial < 5:
            realised.append(measured_c90(land, args.dim, seed=20_000 + trial))
        identity = lambda noise: noise  # noqa: E731 — the "sampler": the landscape scores the noise itself
        for name, keep in (("gmds", False), ("gmds_keep_parent", True)):
            r = gmds_search(identity, land, (args.dim,), population=args.population, rounds=args.rounds,
                            beta_small=args.beta_small, beta_large=args.beta_large, seed=trial, keep_parent=keep)
            rows[name].append([step["best_score"] for step in r.trace])
        b = best_of_n(identity, land, (args.dim,), n=budgets[-1], seed=trial + 1_000_000)
        draws = np.maximum.accumulate(np.concatenate([step["scores"] for step in b.trace]))
        rows["best_of_n"].append([float(draws[e - 1]) for e in budgets])
    out = {"landscape": kind, "c90_target": c90 if kind == "rbf" else 0.9,
           "c90_measured": float(np.mean(realised)), "by_budget": []}
    arr = {k: np.asarray(v) for k, v in rows.items()}
    for j, e in enumerate(budgets):
        entry = {"evaluations": e, "best_of_n": float(arr["best_of_n"][:, j].mean())}
        for name in ("gmds", "gmds_keep_parent"):
            d = arr[name][:, j] - arr["best_of_n"][:, j]
            entry[name] = float(arr[name][:, j].mean())
            entry[f"{name}_minus_best_of_n"] = float(d.mean())
            entry[f"{name}_minus_best_of_n_sem"] = float(d.std(ddof=1) / math.sqrt(len(d)))
        out["by_budget"].append(entry)
    return out


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [f"GMDS (N = {s['population']}, β {s['beta_small']} / {s['beta_large']}) vs best-of-N on "
             f"{s['trials']} random landscapes each, D = {s['dim']}; mean best score (prior ~N(0, 1)); "
             f"Δ = GMDS − best-of-N ± s.e.", "",
             "| landscape | c(0.9) measured | evaluations | best-of-N | Algorithm 1 | Δ | keep_parent | Δ |",
             "|---|---|---|---|---|---|---|---|"]
    for land in report["landscapes"]:
        name = "linear" if land["landscape"] == "linear" else f"rbf, c90 {land['c90_target']}"
        for e in land["by_budget"]:
            if e["evaluations"] not in s["show_budgets"]:
                continue
            lines.append(f"| {name} | {land['c90_measured']:.2f} | {e['evaluations']} | {e['best_of_n']:.2f} | "
                         f"{e['gmds']:.2f} | {e['gmds_minus_best_of_n']:+.2f} ± {e['gmds_minus_best_of_n_sem']:.2f} | "
                         f"{e['gmds_keep_parent']:.2f} | {e['gmds_keep_parent_minus_best_of_n']:+.2f} ± "
                         f"{e['gmds_keep_parent_minus_best_of_n_sem']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dim", type=int, default=512, help="noise dimensions")
    p.add_argument("--features", type=int, default=2048, help="random Fourier features per rbf landscape")
    p.add_argument("--trials", type=int, default=200, help="independent landscapes per setting")
    p.add_argument("--c90", type=float, nargs="+", default=[0.95, 0.85, 0.7, 0.5, 0.25],
                   help="parent–child correlations at β = 0.9 for the rbf landscapes")
    p.add_argument("--population", type=int, default=6)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--beta-small", type=float, default=0.5)
    p.add_argument("--beta-large", type=float, default=0.9)
    p.add_argument("--json", type=Path, help="write the report here (and a .md beside it)")
    args = p.parse_args(argv)
    budgets = [gmds_evaluations(args.population, t) for t in range(args.rounds + 1)]
    show = sorted({budgets[min(3, args.rounds)], budgets[-1]})
    report = {"settings": {**{k: v for k, v in vars(args).items() if k != "json"}, "show_budgets": show},
              "landscapes": [compare("linear", 1.0, args)] + [compare("rbf", c, args) for c in args.c90]}
    text = markdown(report)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        args.json.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
