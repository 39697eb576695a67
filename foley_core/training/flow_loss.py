"""Flow-matching objective of MMAudio (spec §4) with per-sample condition dropout.

t = 0 is noise, t = 1 is data: x_t = (1 − t)·x0 + t·x1, target x1 − x0, t = sigmoid(n), n ~ N(0,1)
(logit-normal), loss = MSE over (N, C) averaged over the batch. x1 is the *normalised* latent
drawn from the stored VAE posterior. All randomness of a step comes from one CPU generator
seeded by (seed, step, rank), so a step's noise does not depend on the device or on history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..models.mmaudio import MMAudioNetwork


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """A CPU generator for (seed, step, rank); SeedSequence mixes the three into independent streams."""
    state = np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(2, np.uint32)
    return torch.Generator("cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


@dataclass
class StepNoise:
    """Random draws of one training step (CPU, fp32 / bool)."""

    posterior_eps: torch.Tensor  # (B, N, C): latent = mean + std·eps
    x0: torch.Tensor  # (B, N, C) Gaussian start point of the flow
    t: torch.Tensor  # (B,) logit-normal flow time
    drop_video: torch.Tensor  # (B,) replace clip + sync by the learned empty features
    drop_text: torch.Tensor  # (B,) replace text by empty_string_feat

    def to(self, device: torch.device | str) -> "StepNoise":
        return StepNoise(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


# The per-clip feature tensors a flow-loss step reads from a shard batch, in the objectives' argument order.
FLOW_INPUTS = ("latent_mean", "latent_std", "clip_f", "sync_f", "text_f")


def draw_step_noise(generator: torch.Generator, batch: int, latent_len: int, latent_dim: int,
                    video_dropout: float, text_dropout: float) -> StepNoise:
    """Everything random in one step, in a fixed draw order (part of the reproducibility contract)."""
    shape = (batch, latent_len, latent_dim)
    eps = torch.randn(shape, generator=generator)
    x0 = torch.randn(shape, generator=generator)
    t = torch.sigmoid(torch.randn(batch, generator=generator))
    keep = torch.rand(batch, 2, generator=generator)
    return StepNoise(eps, x0, t, keep[:, 0] < video_dropout, keep[:, 1] < text_dropout)


def flow_target(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, velocity target) for the straight path from noise x0 (t=0) to data x1 (t=1)."""
    t = t.view(-1, 1, 1).to(x0)
    return (1 - t) * x0 + t * x1, x1 - x0


class FlowMatchingObjective(nn.Module):
    """Wraps the network so that DDP sees every trainable parameter used inside forward —
    the learned empty features included, which take part only through dropout."""

    def __init__(self, net: MMAudioNetwork):
        super().__init__()
        self.net = net

    def dropped_conditions(self, clip_f: torch.Tensor, sync_f: torch.Tensor, text_f: torch.Tensor,
                           drop_video: torch.Tensor, drop_text: torch.Tensor):
        """Per-sample replacement by the empty features (torch.where keeps the graph dense, so
        the empty parameters get a (possibly zero) gradient every step, as DDP expects)."""
        net = self.net
        video = drop_video.view(-1, 1, 1)
        clip_f = torch.where(video, net.empty_clip_feat.to(clip_f.dtype).expand_as(clip_f), clip_f)
        sync_f = torch.where(video, net.empty_sync_feat.to(sync_f.dtype).expand_as(sync_f), sync_f)
        text = net.empty_string_feat.to(text_f.dtype).expand_as(text_f)
        text_f = torch.where(drop_text.view(-1, 1, 1), text, text_f)
        return clip_f, sync_f, text_f

    def forward(self, latent_mean: torch.Tensor, latent_std: torch.Tensor, clip_f: torch.Tensor,
                sync_f: torch.Tensor, text_f: torch.Tensor, noise: StepNoise) -> torch.Tensor:
        """Scalar loss for a batch; latent_mean/std are the stored posterior, channel-last."""
        x1 = self.net.normalize(latent_mean + latent_std * noise.posterior_eps)
        x_t, target = flow_target(noise.x0, x1, noise.t)
        clip_f, sync_f, text_f = self.dropped_conditions(clip_f, sync_f, text_f,
                                                         noise.drop_video, noise.drop_text)
        velocity = self.net(x_t, noise.t, clip_f, sync_f, text_f)
        return F.mse_loss(velocity.float(), target.float())
