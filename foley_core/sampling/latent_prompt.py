"""Training-free latent prompting on the unchanged MMAudio backbone (AudioIM's prompt-only
inference, "MMAudio w/ Prompt Masking").

The backbone samples one window [prompt | target]. The prompt latent occupies the first N_p
positions; at every Euler step its span of the state is overwritten with the point the flow
would have reached from the same noise, x_t = (1 - t)·x0 + t·x1_prompt, so the network only ever
sees prompt latents that are consistent with the current time and the target continues them.
After the last step the span equals the (normalised) prompt exactly.

The video conditions of the prompt span are the learned EMPTY clip/sync features (the prompt has
no picture); the target span gets the real features. The counts of empty tokens are taken at the
target's own token-per-latent rates so the target's tokens land on the same latent positions
(after RoPE scaling and the nearest-exact sync upsampling) as in a plain run of the target alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import FoleyError
from ..features import VisualFeatures
from ..generation import MAX_BATCH, plan_lengths
from ..models.mmaudio.sequence import SYNC_TOKENS_PER_SEGMENT, SequenceLengths
from .flow import StepCallback, VelocityHook, draw_noise, generate_latents


@dataclass(frozen=True)
class PromptWindow:
    """Token layout of one backbone window: [prompt | target] on every stream."""

    prompt: int  # N_p prompt latents
    target: SequenceLengths  # the target part (latent/clip/sync counts of the real features)
    clip_prompt: int  # empty clip tokens in front of the target's
    sync_prompt: int  # empty sync tokens in front of the target's (multiple of 8)

    @property
    def latent(self) -> int:
        return self.prompt + self.target.latent

    @property
    def clip(self) -> int:
        return self.clip_prompt + self.target.clip

    @property
    def sync(self) -> int:
        return self.sync_prompt + self.target.sync


def plan_prompt_window(target: SequenceLengths, prompt_len: int) -> PromptWindow:
    """Window layout for `prompt_len` prompt latents in front of `target`."""
    if prompt_len < 0:
        raise ValueError(f"prompt length must be >= 0, got {prompt_len}")
    # Same tokens-per-latent as the target alone, so RoPE (clip) and the nearest-exact upsampling
    # (sync) put the target's tokens where a plain run would; sync whole 8-token segments only,
    # or the per-segment position embedding would shift.
    clip_prompt = round(prompt_len * target.clip / target.latent)
    segments = round(prompt_len * target.sync / target.latent / SYNC_TOKENS_PER_SEGMENT)
    return PromptWindow(prompt_len, target, clip_prompt, SYNC_TOKENS_PER_SEGMENT * segments)


def window_features(network, window: PromptWindow, clip_f: Optional[torch.Tensor],
                    sync_f: Optional[torch.Tensor]) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """[empty features for the prompt | the target's real features] for clip and sync.

    None (text-only) stays None: the network then uses empty features for the whole window.
    """
    if clip_f is None or sync_f is None:
        return None, None
    batch = clip_f.shape[0]

    def empty(feat: torch.nn.Parameter, n: int, like: torch.Tensor) -> torch.Tensor:
        return feat.detach().to(device=like.device, dtype=like.dtype).expand(batch, n, -1)

    clip = torch.cat([empty(network.empty_clip_feat, window.clip_prompt, clip_f), clip_f], dim=1)
    sync = torch.cat([empty(network.empty_sync_feat, window.sync_prompt, sync_f), sync_f], dim=1)
    return clip, sync


class PromptReplacement:
    """State hook for `sample_euler`: x[:, :N_p] = (1 - t)·x0[:, :N_p] + t·prompt at every t."""

    def __init__(self, x0: torch.Tensor, prompt: torch.Tensor):
        n = prompt.shape[1]
        self.noise = x0[:, :n]
        self.prompt = prompt.to(device=x0.device, dtype=x0.dtype).expand(x0.shape[0], -1, -1)

    def __call__(self, k: int, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n = self.prompt.shape[1]
        if n == 0:
            return x
        x = x.clone()
        t = t.to(device=x.device, dtype=x.dtype)
        # At t = 1 this is 0·noise + prompt: the prompt bit for bit.
        x[:, :n] = (1.0 - t) * self.noise + t * self.prompt
        return x


def sample_with_prompt(network, x0: torch.Tensor, prompt_normalized: torch.Tensor, window: PromptWindow,
                       clip_f: Optional[torch.Tensor], sync_f: Optional[torch.Tensor],
                       text_f: Optional[torch.Tensor], *, negative_text_f: Optional[torch.Tensor] = None,
                       steps: int, cfg_strength: float,
                       callback: Optional[StepCallback] = None,
                       velocity_hook: Optional[VelocityHook] = None) -> torch.Tensor:
    """Sample the whole window (B, N_p + N_t, C); returns the final *normalised* state.

    x0 covers the whole window; clip_f/sync_f are the target's features only. `velocity_hook`
    sees the whole window's state and velocity.
    """
    if x0.shape[1] != window.latent or prompt_normalized.shape[1] != window.prompt:
        raise ValueError(f"noise {tuple(x0.shape)} / prompt {tuple(prompt_normalized.shape)} do not fit "
                         f"a window of {window.prompt} + {window.target.latent} latents")
    clip_w, sync_w = window_features(network, window, clip_f, sync_f)
    network.update_seq_lengths(window.latent, window.clip, window.sync)
    # A trained prompt channel (models/prompt_channel.py) gets this window's prompt; it may also
    # switch the training-free replacement off ("channel only").
    if hasattr(type(network), "with_prompt"):
        network = network.with_prompt(prompt_normalized, window.latent)
    replace = getattr(network, "replaces_prompt", True)
    return generate_latents(network, x0, clip_w, sync_w, text_f, negative_text_f=negative_text_f,
                            steps=steps, cfg_strength=cfg_strength, callback=callback, normalized=True,
                            state_hook=PromptReplacement(x0, prompt_normalized) if replace else None,
                            velocity_hook=velocity_hook)


def _check_prompt(network, prompt_latent: torch.Tensor, batch: int) -> None:
    if prompt_latent.ndim != 3 or prompt_latent.shape[-1] != network.config.latent_dim:
        raise FoleyError(f"The prompt latent has shape {tuple(prompt_latent.shape)}; expected "
                         f"(B, N, {network.config.latent_dim}) from the codec that matches the network.")
    if prompt_latent.shape[0] not in (1, batch):
        raise FoleyError(f"The prompt latent has batch {prompt_latent.shape[0]}, the run {batch}.")
    if not bool(torch.isfinite(prompt_latent).all()):
        raise FoleyError("The prompt latent contains NaN or infinite values; re-encode the reference.")


@torch.no_grad()
def generate_with_prompt(network, features: VisualFeatures, mode: str, settings, prompt_latent: torch.Tensor,
                         device: torch.device, callback: Optional[StepCallback] = None, *,
                         target_lengths: Optional[SequenceLengths] = None,
                         velocity_hook: Optional[VelocityHook] = None) -> torch.Tensor:
    """Target latents (B, N_t, C), un-normalised float32, continuing `prompt_latent`.

    prompt_latent: un-normalised VAE latent (1 or B, N_p, C), e.g. ReferenceStyle.prompt_latent or
    the tail of a previous window. The target duration comes from `settings`/`features` as in
    `generation.generate`, or from `target_lengths` (used by long generation). With N_p = 0 this
    is `generate` exactly. `velocity_hook` (e.g. guidance) sees the whole [prompt | target] window.
    """
    if not 1 <= settings.batch_size <= MAX_BATCH:
        raise FoleyError(f"batch_size must be between 1 and {MAX_BATCH}.")
    _check_prompt(network, prompt_latent, settings.batch_size)
    target = target_lengths or plan_lengths(features, mode, settings.duration_s)
    window = plan_prompt_window(target, prompt_latent.shape[1])
    dtype = network.weight_dtype
    clip_f, sync_f = features.sliced(target.clip, target.sync)

    def prepare(t):
        return None if t is None else t.to(device=device, dtype=dtype)

    x0 = draw_noise(settings.batch_size, window.latent, network.config.latent_dim, settings.seed, device=device)
    prompt = network.normalize(prompt_latent.to(device=device, dtype=torch.float32))
    state = sample_with_prompt(
        network, x0, prompt, window, prepare(clip_f), prepare(sync_f), prepare(features.text_f),
        negative_text_f=prepare(features.negative_text_f), steps=settings.steps,
        cfg_strength=settings.cfg_strength, callback=callback, velocity_hook=velocity_hook)
    return network.unnormalize(state[:, window.prompt:]).float()

