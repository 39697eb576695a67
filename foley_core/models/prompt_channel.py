"""AudioIM's trained latent-prompt path (§2.1, "masking training"): the masked prompt latent and
its mask as an extra input of the latent stream.

    h = audio_input_proj(x_t) + W · [m ⊙ x_p ; m] + b

x_p: the clean (normalised) prompt latent placed on the first N_p positions of the window, zeros
elsewhere; m: 1 on the prompt span, 0 elsewhere (all 0 when the prompt is dropped). W and b are
zero-initialised, so an untrained channel adds exact zeros: sampling is bitwise the backbone's.
Like the style adapter it is a separately stored add-on: the backbone's weights and key layout
are untouched; the term rides in FlowConditions.extra_input (through `PromptChannelNetwork`, a
models/latent_input.py wrapper shared with the layout adapter).

Why the channel helps beyond the training-free replacement: the replacement shows the network
the prompt only as the noisy interpolation (1 - t)·x0 + t·x_p, which is mostly noise early in
sampling; the channel gives it the clean prompt at every t (as F5-TTS/Voicebox-style masked
training does). Positions outside the prompt get only the bias; the prompt reaches the target
through the backbone's attention.

CFG: only the conditional branch gets the channel; the unconditional branch has no prompt
(the paper's prompt dropout trains exactly that case).

Files: .safetensors with weights only + string metadata {"kind": "foley_prompt_channel",
"config": JSON (dims, backbone it was trained against), "training": JSON}.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..errors import FoleyError
from .latent_input import LatentInputNetwork, check_backbone_dims

KIND = "foley_prompt_channel"
FORMAT_VERSION = "1"
# AudioIM: 8 s clips masked 3:5 — the first 3/8 of the latent window is the prompt.
PROMPT_FRACTION = 3.0 / 8.0
MODES = ("channel+replacement", "channel only")


@dataclass
class PromptChannelConfig:
    width: int  # the backbone's hidden dim D
    latent_dim: int  # the VAE's latent channels C
    # What it was trained against: {"file", "variant", "mode", "hidden_dim", "latent_dim", "duration_s"}.
    backbone: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if min(self.width, self.latent_dim) < 1:
            raise ValueError("width and latent_dim must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PromptChannelConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class PromptChannel(nn.Module):
    """Zero-initialised projection of [masked prompt latent (C) ; mask (1)] to the width D."""

    def __init__(self, config: PromptChannelConfig):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.latent_dim + 1, config.width)
        nn.init.zeros_(self.proj.weight)  # untrained channel = exact zeros = the plain backbone
        nn.init.zeros_(self.proj.bias)

    def forward(self, masked_prompt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, N, D) from masked_prompt (B, N, C) and mask (B, N, 1)."""
        return self.proj(torch.cat([masked_prompt, mask.to(masked_prompt)], dim=-1))


def masked_prompt(prompt: torch.Tensor, total: int, keep: Optional[torch.Tensor] = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """([prompt | zeros] (B, total, C), mask (B, total, 1)) for a (B, N_p, C) prompt at the start.

    keep: optional (B,) bool; False rows get an all-zero prompt and mask (prompt dropout)."""
    batch, n, channels = prompt.shape
    if n > total:
        raise ValueError(f"a prompt of {n} latents does not fit a window of {total}")
    values = prompt.new_zeros(batch, total, channels)
    mask = prompt.new_zeros(batch, total, 1)
    values[:, :n] = prompt
    mask[:, :n] = 1.0
    if keep is not None:
        row = keep.to(prompt).view(-1, 1, 1)
        values, mask = values * row, mask * row
    return values, mask


def split_3_5(latent_len: int) -> int:
    """N_p: the prompt latents of AudioIM's 3:5 masking of a window of `latent_len` latents."""
    return int(round(latent_len * PROMPT_FRACTION))


def check_backbone(channel: PromptChannel, network, name: str) -> None:
    """CheckpointError when the channel was trained for a backbone of another width / latent size."""
    cfg = channel.config
    check_backbone_dims(cfg.width, cfg.latent_dim, cfg.backbone, network, name, "train a channel for this one")


class PromptChannelNetwork(LatentInputNetwork):
    """The backbone with the prompt channel on the conditional branch (models/latent_input.py).

    Must be the outermost wrapper (latent_prompt.sample_with_prompt calls `with_prompt` per
    window). `replaces_prompt` tells sample_with_prompt whether to keep the training-free
    replacement as well.
    """

    def __init__(self, network, channel: PromptChannel, *, replaces_prompt: bool = True,
                 prompt: Optional[torch.Tensor] = None, total: int = 0):
        super().__init__(network, channel)
        self.channel = channel
        self.replaces_prompt = bool(replaces_prompt)
        self.prompt, self.total = prompt, int(total)

    def with_prompt(self, prompt_normalized: torch.Tensor, total: int) -> "PromptChannelNetwork":
        window = copy.copy(self)
        window.prompt, window.total = prompt_normalized, int(total)
        return window

    def latent_input(self, like: torch.Tensor) -> Optional[torch.Tensor]:
        if self.prompt is None:
            return None
        module = self.module_for(like)
        values, mask = masked_prompt(self.prompt.to(like), self.total)
        with torch.no_grad():
            return module(values, mask)


def apply_prompt_channel(network, channel: Optional[PromptChannel], style, *, mode: str = MODES[0],
                         name: str = "The prompt channel"):
    """`network` itself without a channel, else a PromptChannelNetwork (mode: see MODES)."""
    if channel is None:
        return network
    if style is None:
        raise FoleyError(f"{name} conditions on a reference's prompt latent: connect Foley Style Encode's "
                         "style to the sampler (or disconnect the prompt channel).")
    if mode not in MODES:
        raise FoleyError(f"{name}: mode must be one of {', '.join(MODES)}, got {mode!r}.")
    check_backbone(channel, network, name)
    return PromptChannelNetwork(network, channel, replaces_prompt=(mode == MODES[0]))


# ------------------------------------------------------------------------------------ files
def save_channel(channel: PromptChannel, path: str | Path, training: Optional[dict] = None) -> Path:
    """Weights-only .safetensors with the config (and training summary) as metadata."""
    from .add_on_files import save_add_on

    return save_add_on(channel, path, kind=KIND, format_version=FORMAT_VERSION, label="a prompt channel",
                       training=training)


def load_channel(path: str | Path) -> tuple[PromptChannel, dict[str, Any]]:
    """(channel in eval mode on the CPU, metadata) from a file written by `save_channel`."""
    from .add_on_files import add_on_summary, load_matching_weights, parse_config, read_add_on_metadata

    path, metadata = read_add_on_metadata(
        path, kind=KIND, label="Prompt channel", noun="prompt channel", folder="foley_prompt_channels",
        made_by="prompt channels are written by `python -m foley_core.training train-prompt-channel`",
        wrong_kind_hint="style adapters go to Foley Load Adapter, ControlNets to Foley Load ControlNet")
    config = parse_config(metadata, PromptChannelConfig.from_dict, "Prompt channel", path)
    channel = PromptChannel(config)
    load_matching_weights(channel, path, "Prompt channel", slot="prompt channel")
    return channel, add_on_summary(config, metadata)


def describe(channel: PromptChannel) -> str:
    cfg = channel.config
    backbone = cfg.backbone.get("file") or f"width {cfg.width}"
    return f"prompt channel: {cfg.latent_dim}+1 → {cfg.width}, trained against {backbone}"
