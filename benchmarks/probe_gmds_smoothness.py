"""How smooth is a GMDS verifier's score in the noise? Correlation between parents and children.

For held-out synthetic clips (the GMDS benchmark's setup: embedded model set, envelope verifier
against the true soundtrack), score P parent noises, then for each β one child per parent,
β·x + sqrt(1 − β²)·η, and report the correlation of parent and child scores and the spread of
their difference. High correlation at β near 1 means local moves keep a good noise's score.

    python benchmarks/probe_gmds_smoothness.py --seed 510 --clips 3

Not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gmds import REPO_ROOT, setup_clip  # noqa: E402  (also puts the repository on sys.path)
from foley_core.evaluation.synthetic_benchmark import HELD_OUT_SEED_OFFSET, load_model_set  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=REPO_ROOT / "embedded_models")
    parser.add_argument("--seed", type=int, default=510)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--parents", type=int, default=6)
    parser.add_argument("--betas", default="0.99,0.95,0.9,0.7,0.0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verifier", default="envelope", help="envelope or timbre (bench_gmds.VERIFIERS)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = load_model_set(args.models)
    betas = [float(b) for b in args.betas.split(",")]
    for i in range(args.clips):
        seed = HELD_OUT_SEED_OFFSET + args.seed + i
        clip, sampler, scorer, _, _ = setup_clip(models, seed, 2.0, 8, 4.5, args.verifier)
        generator = torch.Generator().manual_seed(seed)
        parents = torch.randn(args.parents, *sampler.noise_shape, generator=generator)
        parent_scores = scorer(sampler(parents))["total"]
        cells = []
        for beta in betas:
            eta = torch.randn(args.parents, *sampler.noise_shape, generator=generator)
            child_scores = scorer(sampler(beta * parents + math.sqrt(1 - beta * beta) * eta))["total"]
            r = float(np.corrcoef(parent_scores, child_scores)[0, 1])
            cells.append(f"β={beta:g}: r {r:+.2f}, sd(child−parent) {np.std(child_scores - parent_scores):.4f}")
        print(f"{clip.meta['scene']:7s} seed {seed}: parent sd {parent_scores.std():.4f} | " + " | ".join(cells),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
