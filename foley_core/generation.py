"""One MMAudio generation run: features → latents for an exact duration (host-independent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .errors import FoleyError
from .features import VisualFeatures
from .models.mmaudio.sequence import MIN_DURATION_S, SequenceLengths, sequence_lengths
from .sampling.flow import StepCallback, VelocityHook, draw_noise, generate_latents

MAX_BATCH = 64


@dataclass
class GenerationSettings:
    seed: int = 42
    steps: int = 25
    cfg_strength: float = 4.5
    duration_s: float = 0.0  # 0 = what the video covers
    batch_size: int = 1


def plan_lengths(features: VisualFeatures, mode: str, requested_s: float) -> SequenceLengths:
    """Sequence lengths for the requested duration (0 = the video's), checked against the video."""
    duration = float(requested_s) if requested_s and requested_s > 0 else features.duration_s
    if duration < MIN_DURATION_S:
        raise FoleyError(f"Duration {duration:.3f} s is below MMAudio's minimum of {MIN_DURATION_S} s.")
    if features.clip_f is not None and duration > features.duration_s + 1e-6:
        raise FoleyError(
            f"Requested {duration:.2f} s but the video segment covers {features.duration_s:.2f} s; "
            "set duration to 0 (= the video's) or load a longer segment.")
    return sequence_lengths(duration, mode)


@torch.no_grad()
def generate(network, features: VisualFeatures, mode: str, settings: GenerationSettings, *,
             device: torch.device, callback: Optional[StepCallback] = None,
             velocity_hook: Optional[VelocityHook] = None) -> tuple[torch.Tensor, SequenceLengths]:
    """Sample latents (B, N, C), un-normalised, float32 on `device`.

    `velocity_hook` (sampling/flow.py), e.g. envelope/layout guidance; None = plain sampling."""
    if not 1 <= settings.batch_size <= MAX_BATCH:
        raise FoleyError(f"batch_size must be between 1 and {MAX_BATCH}.")
    lengths = plan_lengths(features, mode, settings.duration_s)
    dtype = network.weight_dtype
    clip_f, sync_f = features.sliced(lengths.clip, lengths.sync)
    network.update_seq_lengths(lengths.latent, lengths.clip, lengths.sync)

    def prepare(t):
        return None if t is None else t.to(device=device, dtype=dtype)

    x0 = draw_noise(settings.batch_size, lengths.latent, network.config.latent_dim, settings.seed,
                    device=device)
    latents = generate_latents(
        network, x0, prepare(clip_f), prepare(sync_f), prepare(features.text_f),
        negative_text_f=prepare(features.negative_text_f), steps=settings.steps,
        cfg_strength=settings.cfg_strength, callback=callback, velocity_hook=velocity_hook)
    return latents.float(), lengths
