"""TiVA's audio layout as an extra input of the flow network: a zero-initialised layout adapter.

TiVA (Xu et al.) generates audio from the video AND its predicted audio layout (controls/layout.py:
the normalised mel resized to [M frames, C bands]). On the frozen MMAudio backbone the layout
enters the latent stream the way AudioIM's prompt channel does (models/latent_input.py):

    h = audio_input_proj(x_t) + A(layout tokens)

Layout tokens: the layout resampled to the latent rate (one row per latent position, linear in
time at the token centres, controls/layout.layout_span) plus a presence flag: [C band values ; 1]
for tokens on the layout's timeline, all zeros for tokens without a layout (a reference prompt
before 0 s, a dropped layout). A = two token convs (kernel 3, SiLU) and a Linear to the width D
whose weight and bias start at zero, so an untrained adapter adds exact zeros and sampling is
bitwise the backbone's. `strength` scales the term (1 = as trained).

CFG: only the conditional branch gets the term; the unconditional branch is the plain backbone
(empty video/text), so CFG amplifies the layout's effect like the other conditions.

Long videos: `for_window(prompt_latents, start_s)` aims the adapter at a window [prompt | target]
whose target starts at start_s on the output timeline; prompt tokens of a continuation window lie
on the timeline and get the layout there, a reference prompt (before 0 s) gets none.

Files: .safetensors, weights only, string metadata {"kind": "foley_layout_adapter", "config": JSON
(width, bands, hidden, backbone it was trained against), "training": JSON}.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from ..errors import FoleyError
from ..models.latent_input import LatentInputNetwork, check_backbone_dims
from ..models.mmaudio.layers import ChannelLastConv1d
from .layout import LAYOUT_BANDS, Layout, layout_span

KIND = "foley_layout_adapter"
FORMAT_VERSION = "1"
HIDDEN = 128


@dataclass
class LayoutAdapterConfig:
    width: int  # the backbone's hidden dim D
    latent_dim: int  # the VAE's latent channels (recorded to match the backbone)
    bands: int = LAYOUT_BANDS  # C of the layouts it reads
    hidden: int = HIDDEN
    # What it was trained against: {"file", "variant", "mode", "hidden_dim", "latent_dim", "duration_s"}.
    backbone: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if min(self.width, self.latent_dim, self.bands, self.hidden) < 1:
            raise ValueError("width, latent_dim, bands and hidden must be >= 1")

    @property
    def n_features(self) -> int:
        return self.bands + 1  # band values + presence flag

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LayoutAdapterConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class LayoutAdapter(nn.Module):
    """Layout tokens (B, N, C + 1) → latent-stream term (B, N, D); zero at initialisation."""

    def __init__(self, config: LayoutAdapterConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Sequential(ChannelLastConv1d(config.n_features, config.hidden, 3), nn.SiLU(),
                                   ChannelLastConv1d(config.hidden, config.hidden, 3), nn.SiLU())
        self.proj = nn.Linear(config.hidden, config.width)
        nn.init.zeros_(self.proj.weight)  # untrained adapter = exact zeros = the plain backbone
        nn.init.zeros_(self.proj.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embed(tokens))


def layout_tokens(layout: Layout, n_tokens: int, latent_rate: float, *, start_s: float = 0.0,
                  prompt_tokens: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(tokens (n_tokens, C + 1) float32, mask (n_tokens,) bool) for one window.

    Token j covers [τ_j, τ_j + 1/latent_rate) with τ_j = start_s + (j − prompt_tokens)/latent_rate;
    its values are the layout at the token's centre (edge values held past the layout's ends).
    Tokens before 0 s have no layout (all zeros, mask False)."""
    first = start_s - prompt_tokens / latent_rate
    values = layout_span(layout, first, n_tokens / latent_rate, n_tokens)
    mask = first + np.arange(n_tokens) / latent_rate > -0.5 / latent_rate  # float slack
    tokens = np.concatenate([values, np.ones((n_tokens, 1), np.float32)], axis=1)
    tokens[~mask] = 0.0
    return tokens, mask


def latent_rate_of(mode: Optional[str], name: str) -> float:
    from ..models.mmaudio.sequence import audio_mode_settings

    if mode is None:
        raise FoleyError(f"{name} cannot tell the latent rate: its metadata and the network lack the mode; "
                         "connect the codec to the sampler.")
    sample_rate, hop = audio_mode_settings(mode)
    return sample_rate / hop / 2


def check_layout(adapter: LayoutAdapter, layout, name: str) -> None:
    if layout is None:
        raise FoleyError(f"{name} needs a layout: connect Foley Layout Predict's layout to the sampler's "
                         "layout input (or disconnect the layout adapter).")
    if not isinstance(layout, Layout):
        raise FoleyError(f"{name}: the layout input is not a FOLEY_LAYOUT (got {type(layout).__name__}).")
    if layout.n_bands != adapter.config.bands:
        raise FoleyError(f"{name} reads layouts of {adapter.config.bands} bands, but the layout has "
                         f"{layout.n_bands}; set Foley Layout Predict's bands to {adapter.config.bands}.")


class LayoutAdaptedNetwork(LatentInputNetwork):
    """The backbone (or another wrapper) with the layout adapter on the conditional branch."""

    def __init__(self, network, adapter: LayoutAdapter, layout: Layout, *, strength: float = 1.0,
                 mode: Optional[str] = None, name: str = "The layout adapter"):
        super().__init__(network, adapter)
        self.adapter, self.layout, self.strength = adapter, layout, float(strength)
        self.rate = latent_rate_of(mode or getattr(network.config, "mode", None)
                                   or adapter.config.backbone.get("mode"), name)
        self.prompt_latents, self.start_s = 0, 0.0

    def aim(self, prompt_latents: int, start_s: float) -> None:
        self.prompt_latents, self.start_s = prompt_latents, start_s

    def latent_input(self, like: torch.Tensor) -> torch.Tensor:
        tokens, _ = layout_tokens(self.layout, self.network.latent_seq_len, self.rate, start_s=self.start_s,
                                  prompt_tokens=self.prompt_latents)
        module = self.module_for(like)
        with torch.no_grad():
            term = module(torch.from_numpy(tokens).to(like)[None])
        return term if self.strength == 1.0 else term * self.strength


def apply_layout_adapter(network, adapter: Optional[LayoutAdapter], layout, *, strength: float = 1.0,
                         mode: Optional[str] = None, name: str = "The layout adapter"):
    """`network` itself without an adapter, else a LayoutAdaptedNetwork fed with `layout`."""
    if adapter is None:
        return network
    check_layout(adapter, layout, name)
    cfg = adapter.config
    check_backbone_dims(cfg.width, cfg.latent_dim, cfg.backbone, network, name,
                        "train a layout adapter for this one (`python -m foley_core.training train-layout-adapter`)")
    return LayoutAdaptedNetwork(network, adapter, layout, strength=strength, mode=mode, name=name)


# ------------------------------------------------------------------------------------ files
def save_layout_adapter(adapter: LayoutAdapter, path: str | Path, training: Optional[dict] = None) -> Path:
    """Weights-only .safetensors with the config (and training summary) as metadata."""
    from ..models.add_on_files import save_add_on

    return save_add_on(adapter, path, kind=KIND, format_version=FORMAT_VERSION, label="a layout adapter",
                       training=training)


def load_layout_adapter(path: str | Path) -> tuple[LayoutAdapter, dict[str, Any]]:
    """(adapter in eval mode on the CPU, metadata) from a file written by `save_layout_adapter`."""
    from ..models.add_on_files import add_on_summary, load_matching_weights, parse_config, read_add_on_metadata

    path, metadata = read_add_on_metadata(
        path, kind=KIND, label="Layout adapter", noun="layout adapter", folder="foley_layout_adapters",
        made_by="layout adapters are exported by `python -m foley_core.training export-layout-adapter`",
        wrong_kind_hint="prompt channels go to Foley Load Prompt Channel, ControlNets to Foley Load ControlNet, "
                        "style adapters to Foley Load Adapter")
    config = parse_config(metadata, LayoutAdapterConfig.from_dict, "Layout adapter", path)
    adapter = LayoutAdapter(config)
    load_matching_weights(adapter, path, "Layout adapter")
    return adapter, add_on_summary(config, metadata)


def describe(adapter: LayoutAdapter) -> str:
    cfg = adapter.config
    backbone = cfg.backbone.get("file") or f"width {cfg.width}"
    return f"layout adapter: {cfg.bands} bands + presence → {cfg.width}, trained against {backbone}"
