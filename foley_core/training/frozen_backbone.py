"""What the add-on trainers (ControlNet, layout adapter, style adapter, prompt channel) share about
the frozen flow backbone they train against: loading and checking it for a feature folder, and the
per-step control/unconditional dropout draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..errors import FoleyError
from ..models import builders
from .flow_loss import StepNoise, draw_step_noise
from .shards import ShardDataset


class FrozenBackbone(NamedTuple):
    path: Path
    built: Any  # builders.BuiltNetwork
    net: Any  # its network: eval mode, no gradients, token counts set to the features'
    seq: dict[str, int]  # the feature folder's token counts (dataset.index["seq"])


def load_frozen_backbone(backbone: str | Path, dataset: ShardDataset, *, check_mode: bool = True) -> FrozenBackbone:
    """Build the flow-network file, freeze it, check it fits the features, set its token counts.

    `check_mode`: also refuse a backbone made for the other audio mode (the style-adapter and
    prompt-channel trainers have not checked that; they keep only the latent-channel check)."""
    path = Path(backbone)
    built = builders.build_network(path)
    net = built.network.eval().requires_grad_(False)
    seq = dataset.index["seq"]
    if dataset.shapes["latent_mean"][1] != net.config.latent_dim:
        raise FoleyError(f"the features have {dataset.shapes['latent_mean'][1]} latent channels, the backbone "
                         f"{path.name} {net.config.latent_dim}")
    if check_mode and built.mode not in (None, dataset.mode):
        raise FoleyError(f"the features are {dataset.mode} audio, the backbone {path.name} makes {built.mode}")
    net.update_seq_lengths(seq["latent"], seq["clip"], seq["sync"])
    return FrozenBackbone(path, built, net, seq)


def control_dropout_coins(generator: torch.Generator, noise, has_text: torch.Tensor, control_dropout: float,
                          uncond_dropout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The add-on's per-sample draws, taken after `draw_step_noise`'s in a fixed order (exact resume
    depends on it): one (batch, 2) draw; column 1 < uncond_dropout drops video, text and control
    together (CFG's unconditional branch), column 0 < control_dropout drops the control alone.
    Widens `noise.drop_text` (also where there is no caption) and `noise.drop_video` in place;
    returns (keep, uncond), (batch,) bools: keep False = no control for that sample."""
    coins = torch.rand(noise.drop_text.shape[0], 2, generator=generator)
    uncond = coins[:, 1] < uncond_dropout
    noise.drop_text |= ~has_text | uncond
    noise.drop_video |= uncond
    keep = (coins[:, 0] >= control_dropout) & ~uncond
    return keep, uncond


def draw_control_step(generator: torch.Generator, config, has_text: torch.Tensor, latent_len: int, latent_dim: int,
                      control_dropout: float) -> tuple[StepNoise, torch.Tensor, torch.Tensor]:
    """One add-on training step's random draws, in the fixed order exact resume depends on: the
    flow network's (`draw_step_noise`, with `config`'s video/text dropouts), then the control's coins
    (`control_dropout_coins`, with `config.uncond_dropout`). Returns (noise, keep, uncond)."""
    noise = draw_step_noise(generator, config.batch_size, latent_len, latent_dim, config.video_dropout,
                            config.text_dropout)
    keep, uncond = control_dropout_coins(generator, noise, has_text, control_dropout, config.uncond_dropout)
    return noise, keep, uncond
