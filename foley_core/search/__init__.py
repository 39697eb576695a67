"""Test-time search over the initial noise (AvSyncDiff's GMDS) and the verifiers that score it."""

from .gmds import (DEFAULT_BETA_LARGE, DEFAULT_BETA_SMALL, DEFAULT_POPULATION, DEFAULT_ROUNDS, SearchResult,
                   best_of_n, gmds_evaluations, gmds_search, perturb)

__all__ = ["DEFAULT_BETA_LARGE", "DEFAULT_BETA_SMALL", "DEFAULT_POPULATION", "DEFAULT_ROUNDS", "SearchResult",
           "best_of_n", "gmds_evaluations", "gmds_search", "perturb"]
