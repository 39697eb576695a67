"""The search's `sample_fn` and `score_fn` built from what the Flow Sampler would do.

`make_sampler` returns a callable noise [B, N, C] → un-normalised latents [B, N_t, C] for ONE
backbone window: a plain MMAudio run, or — with a reference style — latent prompting, where the
noise covers the whole [prompt | target] window exactly as `generate_with_prompt` draws it. The
same noise therefore gives the same latents as the Flow Sampler with that noise. Videos longer
than one window are refused by the caller (the search space would be one noise per window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..decoding import decode_latents
from ..errors import FoleyError
from ..features import VisualFeatures
from ..generation import MAX_BATCH, plan_lengths
from ..models.mmaudio.sequence import SequenceLengths
from ..sampling.flow import StepCallback, generate_latents
from ..sampling.latent_prompt import _check_prompt, plan_prompt_window, sample_with_prompt
from .verifiers import CombinedVerifier, Verifier, VerifierContext


@dataclass
class WindowSampler:
    network: object
    features: VisualFeatures
    lengths: SequenceLengths  # the target's lengths
    steps: int
    cfg_strength: float
    device: torch.device
    prompt_latent: Optional[torch.Tensor] = None  # un-normalised (1, N_p, C) reference latent
    callback: Optional[StepCallback] = None
    # Velocity guidance (envelope/layout, sampling/flow.py's velocity_hook), passed on untouched.
    velocity_hook: Optional[object] = None

    @property
    def prompt_len(self) -> int:
        return 0 if self.prompt_latent is None else int(self.prompt_latent.shape[1])

    @property
    def noise_shape(self) -> tuple[int, int]:
        return (self.prompt_len + self.lengths.latent, int(self.network.config.latent_dim))

    @torch.no_grad()
    def __call__(self, noise: torch.Tensor) -> torch.Tensor:
        if tuple(noise.shape[1:]) != self.noise_shape:
            raise FoleyError(f"Noise of shape {tuple(noise.shape)} does not fit the window {self.noise_shape}.")
        if noise.shape[0] > 2 * MAX_BATCH:
            raise FoleyError(f"{noise.shape[0]} candidates in one batch is too many; lower the population.")
        dtype = self.network.weight_dtype
        x0 = noise.to(device=self.device, dtype=torch.float32)
        clip_f, sync_f = self.features.sliced(self.lengths.clip, self.lengths.sync)

        def prepare(t):
            return None if t is None else t.to(device=self.device, dtype=dtype)

        text, negative = prepare(self.features.text_f), prepare(self.features.negative_text_f)
        hook = {} if self.velocity_hook is None else {"velocity_hook": self.velocity_hook}
        if self.prompt_latent is None:
            self.network.update_seq_lengths(self.lengths.latent, self.lengths.clip, self.lengths.sync)
            return generate_latents(self.network, x0, prepare(clip_f), prepare(sync_f), text,
                                    negative_text_f=negative, steps=self.steps, cfg_strength=self.cfg_strength,
                                    callback=self.callback, **hook).float()
        window = plan_prompt_window(self.lengths, self.prompt_len)
        prompt = self.network.normalize(self.prompt_latent.to(device=self.device, dtype=torch.float32))
        state = sample_with_prompt(self.network, x0, prompt, window, prepare(clip_f), prepare(sync_f), text,
                                   negative_text_f=negative, steps=self.steps, cfg_strength=self.cfg_strength,
                                   callback=self.callback, **hook)
        return self.network.unnormalize(state[:, window.prompt:]).float()


def make_sampler(network, features: VisualFeatures, mode: str, *, steps: int, cfg_strength: float,
                 duration_s: float = 0.0, reference=None, device: torch.device,
                 callback: Optional[StepCallback] = None, velocity_hook=None) -> WindowSampler:
    lengths = plan_lengths(features, mode, duration_s)
    prompt = None
    if reference is not None:
        prompt = getattr(reference, "prompt_latent", reference)
        _check_prompt(network, prompt, 1)
    return WindowSampler(network, features, lengths, int(steps), float(cfg_strength), device, prompt, callback,
                         velocity_hook)


def make_scorer(vae, vocoder, verifier: Verifier, sample_rate: int, n_samples: int,
                context: VerifierContext) -> Callable[[torch.Tensor], dict]:
    """latents [B, N, C] → decode (one batch) → {"total": F, parts...}."""
    combined = verifier if isinstance(verifier, CombinedVerifier) else CombinedVerifier([verifier])

    def score(latents: torch.Tensor) -> dict:
        wave = decode_latents(vae, vocoder, latents, n_samples)[:, 0].cpu().numpy()
        if not np.all(np.isfinite(wave)):
            raise FoleyError("Decoded audio contains NaN; check the codec files.")
        return combined.score_parts(wave, sample_rate, context)

    return score
