"""Residual vector quantizer, inference only (§6). Buffer names follow audiocraft's RVQ so the
official `rvq.vq.layers.{i}._codebook.*` keys load strictly; only `embed` and `inited` are used."""

from __future__ import annotations

import torch
from torch import nn


class Codebook(nn.Module):
    def __init__(self, bins: int, dim: int):
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", torch.zeros(bins, dim))
        self.register_buffer("embed_avg", torch.zeros(bins, dim))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the closest code (squared Euclidean) for each row of x (N, D)."""
        embed = self.embed.to(x.dtype)
        distance = x.pow(2).sum(1, keepdim=True) - 2 * x @ embed.t() + embed.pow(2).sum(1)[None]
        return distance.argmin(dim=1)


class QuantizerLayer(nn.Module):
    def __init__(self, bins: int, dim: int):
        super().__init__()
        self._codebook = Codebook(bins, dim)


class _LayerList(nn.Module):
    def __init__(self, n_q: int, bins: int, dim: int):
        super().__init__()
        self.layers = nn.ModuleList(QuantizerLayer(bins, dim) for _ in range(n_q))


class ResidualVQ(nn.Module):
    def __init__(self, dim: int, n_q: int, bins: int):
        super().__init__()
        self.n_q = n_q
        self.vq = _LayerList(n_q, bins, dim)

    def forward(self, x: torch.Tensor, n_q: int):
        """x (B, T, D) -> (quantized (B, T, D) = sum of the chosen codes, codes (B, n_q, T))."""
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"eval_q must be between 1 and {self.n_q}, got {n_q}.")
        batch, length, dim = x.shape
        residual = x.reshape(-1, dim)
        quantized = torch.zeros_like(residual)
        codes = []
        for layer in self.vq.layers[:n_q]:
            book = layer._codebook
            index = book.nearest(residual)
            chosen = book.embed.to(x.dtype)[index]
            quantized = quantized + chosen
            residual = residual - chosen  # the next codebook quantizes what is still missing
            codes.append(index.view(batch, length))
        return quantized.view(batch, length, dim), torch.stack(codes, dim=1)

    def check_initialised(self) -> bool:
        return all(bool(layer._codebook.inited.item() > 0) for layer in self.vq.layers)
