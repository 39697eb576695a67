"""Exponential moving average of network weights (the usual export for sampling)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """shadow ← decay·shadow + (1 − decay)·weights after every optimiser step.

    Frozen entries (latent statistics, empty_string_feat) are copied, not averaged, so the
    shadow always carries the exact values the network was trained with.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for (name, avg), (_, live) in zip(self.shadow.named_parameters(), model.named_parameters()):
            if live.requires_grad:
                avg.lerp_(live.detach(), 1.0 - self.decay)
            else:
                avg.copy_(live.detach())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow.state_dict()

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.shadow.load_state_dict(state_dict, strict=True)
