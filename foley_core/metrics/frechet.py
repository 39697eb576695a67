"""Fréchet distance between two sets of embeddings, and a model-free audio version of it.

FD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))  (Heusel et al. 2017; FAD, Kilgour et
al. 2019, applies it to VGGish embeddings). `frechet_distance_audio` defaults to log-mel frame
embeddings: it is NOT FAD (VGGish / PANNs weights cannot be downloaded here), so its values are
only comparable with themselves. Pass `embed_fn` to use a real audio model when one is available.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from ..controls.envelope import as_numpy
from .timbre import log_mel_frames


def _mean_cov(x) -> tuple[np.ndarray, np.ndarray]:
    x = as_numpy(x).astype(np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"embeddings must be [n >= 2, dim], got shape {x.shape}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians N(mu_a, cov_a) and N(mu_b, cov_b)."""
    diff = np.asarray(mu_a, np.float64) - np.asarray(mu_b, np.float64)
    cov_a = np.asarray(cov_a, np.float64)
    cov_b = np.asarray(cov_b, np.float64)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(covmean)):
        # Near-singular product (fewer samples than dimensions, constant features): regularise
        # both covariances with eps on the diagonal, as the reference FID code does.
        offset = np.eye(cov_a.shape[0]) * eps
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        # Round-off gives a tiny imaginary part; a large one means the inputs are not covariances.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * max(1.0, np.abs(covmean).max())):
            raise ValueError(f"imaginary component {np.abs(covmean.imag).max():.3g} in sqrtm")
        covmean = covmean.real
    fd = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return float(max(fd, 0.0))  # tiny negative values are round-off


def frechet_distance(emb_a, emb_b, eps: float = 1e-6) -> float:
    """Fréchet distance between two embedding sets, each [n_items, dim] (n >= 2)."""
    mu_a, cov_a = _mean_cov(emb_a)
    mu_b, cov_b = _mean_cov(emb_b)
    return frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b, eps)


def _log_mel_embedding(waveform, sample_rate: int) -> np.ndarray:
    return log_mel_frames(waveform, sample_rate)


def _stack_embeddings(items, embed_fn) -> np.ndarray:
    rows = []
    for waveform, sample_rate in items:
        e = as_numpy(embed_fn(waveform, sample_rate)).astype(np.float64)
        rows.append(e.reshape(1, -1) if e.ndim == 1 else e)
    return np.concatenate(rows, axis=0)


def frechet_distance_audio(set_a, set_b, embed_fn=None, eps: float = 1e-6) -> float:
    """Fréchet distance between two sets of (waveform, sample_rate) clips.

    `embed_fn(waveform, sample_rate)` returns one embedding [dim] or per-frame embeddings
    [frames, dim]; all rows of a set are pooled, as FAD pools per-frame VGGish embeddings. The
    default is the 64-band log-mel frames of `timbre.log_mel_frames` (non-silent frames only).
    """
    embed_fn = embed_fn or _log_mel_embedding
    return frechet_distance(_stack_embeddings(set_a, embed_fn), _stack_embeddings(set_b, embed_fn), eps)
