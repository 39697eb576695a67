"""Shared wrapper of the "latent-stream input" add-ons (prompt channel, layout adapter).

Such an add-on is a small, zero-initialised module whose output (B, N, D) is added to the
backbone's projected latent x (FlowConditions.extra_input, read by MMAudioNetwork.predict_flow).
The wrapper attaches the term to the CONDITIONAL branch only: `preprocess_conditions` adds it,
`empty_conditions` (CFG's unconditional branch) is delegated unchanged, and FlowConditions.concat
gives the unconditional rows exact zeros. Several add-ons stack: each adds its term to the one
the inner wrapper already attached (a zero-initialised add-on adds exact zeros, so the output
stays bitwise the backbone's). The backbone's weights and key layout are untouched.

Subclasses implement `latent_input(like)` (the term, or None) and may override `aim` to re-target
themselves at one window of long generation.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn


class LatentInputNetwork:
    """The backbone (or another wrapper) with one latent-stream input add-on; the rest is delegated."""

    def __init__(self, network, module: nn.Module):
        self.network, self.module = network, module
        self._cast: dict = {}  # (device, dtype) -> private copy of the module; shared by window copies

    def latent_input(self, like: torch.Tensor) -> Optional[torch.Tensor]:
        """The (1 or B, N, D) term for the current window, computed on like's device/dtype; None = none."""
        raise NotImplementedError

    def aim(self, prompt_latents: int, start_s: float) -> None:
        """Re-target this (already copied) wrapper at a window [prompt | target from start_s]."""

    def for_window(self, prompt_latents: int, start_s: float) -> "LatentInputNetwork":
        # Long generation asks wrappers for a per-window copy; inner wrappers (a ControlNet) get one too.
        window = copy.copy(self)
        if hasattr(type(self.network), "for_window"):
            window.network = self.network.for_window(prompt_latents, start_s)
        window.aim(int(prompt_latents), float(start_s))
        return window

    def module_for(self, like: torch.Tensor) -> nn.Module:
        """The add-on on the sampler's device and dtype (a private copy: the loaded one stays fp32, CPU)."""
        anchor = next(self.module.parameters())
        if anchor.device == like.device and anchor.dtype == like.dtype:
            return self.module
        key = (like.device, like.dtype)
        if key not in self._cast:
            self._cast[key] = copy.deepcopy(self.module).to(device=like.device, dtype=like.dtype)
        return self._cast[key]

    def preprocess_conditions(self, clip_f, sync_f, text_f):
        base = self.network.preprocess_conditions(clip_f, sync_f, text_f)
        term = self.latent_input(base.clip_f_c)
        if term is None:
            return base
        if base.extra_input is not None:  # an inner add-on's term: the two add up
            term = base.extra_input + term.to(base.extra_input)
        return base.with_extra_input(term)

    def __getattr__(self, name):  # only called for attributes not set on the wrapper
        if name == "network" or name.startswith("__"):  # copy/pickle probe before __init__ ran
            raise AttributeError(name)
        return getattr(self.network, name)


def check_backbone_dims(width: int, latent_dim: int, backbone: dict, network, name: str, fix: str) -> None:
    """CheckpointError when an add-on was trained for a backbone of another width / latent size.

    fix: how to make a matching add-on (e.g. "train a channel for this one")."""
    from ..errors import CheckpointError

    cfg = network.config
    if (int(width), int(latent_dim)) != (cfg.hidden_dim, cfg.latent_dim):
        raise CheckpointError(
            f"{name} was trained for a flow network of width {width} with {latent_dim} latent channels, "
            f"but the loaded network ({getattr(cfg, 'variant', None) or 'this model'}) has width "
            f"{cfg.hidden_dim} and {cfg.latent_dim} latent channels; load the network it was trained "
            f"against ({backbone.get('file', 'see its metadata')}) or {fix}.")
