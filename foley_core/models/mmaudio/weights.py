"""Strict loading of flow-network weights (official .pth, kijai safetensors, our own files)."""

from __future__ import annotations

from typing import Mapping

import torch

from ...errors import CheckpointError
from .network import NON_PERSISTENT_KEYS, MMAudioNetwork

_SHOWN = 5  # how many offending keys an error message lists


def _listing(keys: list[str]) -> str:
    head = ", ".join(keys[:_SHOWN])
    return f"{len(keys)} ({head}{', ...' if len(keys) > _SHOWN else ''})"


def load_network_weights(net: MMAudioNetwork, state_dict: Mapping[str, torch.Tensor]) -> MMAudioNetwork:
    """Load `state_dict` strictly into `net`, ignoring the recomputed buffer keys.

    A net built on the meta device takes the checkpoint tensors as they are (assign), so loading
    large checkpoints needs no second copy; its fp32 buffers are then rebuilt on their device.
    Raises CheckpointError naming missing / unexpected / mis-shaped keys.
    """
    weights = {k: v for k, v in state_dict.items() if k not in NON_PERSISTENT_KEYS}
    expected = net.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mis_shaped = sorted(k for k in set(expected) & set(weights)
                        if tuple(expected[k].shape) != tuple(weights[k].shape))
    if missing or unexpected or mis_shaped:
        problems = []
        if missing:
            problems.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_listing(unexpected)}")
        if mis_shaped:
            details = [f"{k} {tuple(weights[k].shape)} vs {tuple(expected[k].shape)}" for k in mis_shaped]
            problems.append(f"shape mismatches (file vs model): {_listing(details)}")
        raise CheckpointError("flow-network weights do not fit this MMAudio configuration — "
                              + "; ".join(problems))
    on_meta = any(p.is_meta for p in net.parameters())
    net.load_state_dict(weights, strict=True, assign=on_meta)
    if on_meta:
        net.reset_buffers()
    return net
