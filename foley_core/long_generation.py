"""Videos of any length: a chain of backbone-sized windows joined by latent prompting.

Window 0 is a plain run (or continues a reference prompt, style.py). Each later window takes the
last `overlap` latents already generated as its prompt (sampling/latent_prompt.py) and generates
the next stretch, so the latent sequence continues the previous window instead of restarting.
Target starts sit on the Synchformer segment grid (0.32 s) so every window's sync tokens are the
video's own segments, not re-timed ones (clip tokens are then off by at most half a frame,
62.5 ms). Decoding runs per window and crossfades the waveforms over the prompt span; both
sides there are decoded from the same latents, so the signals are coherent and the fade keeps
the gains summing to one (sin²/cos², a linear-gain fade with smooth ends), not equal power.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .decoding import finish_waveform, latents_to_mel, mel_to_waveform
from .errors import FoleyError
from .features import VisualFeatures
from .generation import MAX_BATCH, GenerationSettings
from .models.mmaudio.sequence import (MIN_DURATION_S, SYNC_FPS, SYNC_SEGMENT_STRIDE, SYNC_TOKENS_PER_SEGMENT,
                                      SequenceLengths, audio_mode_settings, sequence_lengths)
from .sampling.flow import StepCallback, VelocityHook
from .sampling.latent_prompt import generate_with_prompt

GRID_S = SYNC_SEGMENT_STRIDE / SYNC_FPS  # 0.32 s: one Synchformer segment stride
CLIP_FPS = 8
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class WindowPlan:
    """One backbone run. Latent indices are on the output timeline (0 ... plan.latent)."""

    index: int
    segment: int  # target start in sync segments: start_s = segment · 0.32 s
    start: int  # first target latent
    end: int  # one past the last target latent
    prompt: int  # prompt latents in front of the target (0 = plain run)
    from_reference: bool  # the prompt is the reference recording, not earlier output
    target: SequenceLengths  # target token counts (latent == end - start)

    @property
    def start_s(self) -> float:
        return self.segment * GRID_S

    @property
    def clip_offset(self) -> int:
        return round(self.start_s * CLIP_FPS)

    @property
    def sync_offset(self) -> int:
        return SYNC_TOKENS_PER_SEGMENT * self.segment

    @property
    def decode_start(self) -> int:
        """Where this window's audio begins on the timeline (its prompt span, if that is output)."""
        return self.start if self.from_reference else self.start - self.prompt


@dataclass(frozen=True)
class LongPlan:
    mode: str
    duration_s: float
    latent: int  # N_total: latents covering the video (as a single run of duration_s would)
    samples: int  # round(duration_s · sample_rate): the output length
    sample_rate: int
    hop: int
    overlap: int  # prompt latents of the continuation windows
    windows: tuple[WindowPlan, ...]

    @property
    def samples_per_latent(self) -> int:
        return 2 * self.hop


def _target_lengths(duration_s: float, mode: str, latent: int) -> SequenceLengths:
    """Clip/sync counts for duration_s, with the latent count the timeline assigns."""
    lengths = sequence_lengths(duration_s, mode)
    return dataclasses.replace(lengths, latent=latent, samples=latent * 2 * lengths.hop)


def plan_long_generation(duration_s: float, mode: str, *, window_s: float = 8.0, overlap_s: float = 1.0,
                         reference_len: int = 0) -> LongPlan:
    """Split duration_s into windows of about window_s (prompt + target) with overlap_s prompts."""
    sample_rate, hop = audio_mode_settings(mode)
    rate = sample_rate / hop / 2  # latents per second
    if not duration_s >= MIN_DURATION_S:
        raise FoleyError(f"Duration {duration_s:.3f} s is below MMAudio's minimum of {MIN_DURATION_S} s.")
    overlap = max(1, math.ceil(overlap_s * rate))
    first_cap = window_s - reference_len / rate
    cap = window_s - overlap / rate
    # Each continuation must advance by whole grid steps and leave a final target >= the minimum.
    if min(first_cap, cap) < MIN_DURATION_S + 2 * GRID_S:
        raise FoleyError(
            f"A {window_s:.2f} s window leaves too little room after a {overlap / rate:.2f} s overlap "
            f"or a {reference_len / rate:.2f} s reference prompt; lengthen the window or shorten them.")
    total = sequence_lengths(duration_s, mode).latent

    windows: list[WindowPlan] = []
    segment, prompt, capacity = 0, reference_len, first_cap
    while True:
        start_s = segment * GRID_S
        index, from_reference = len(windows), (not windows and reference_len > 0)
        if start_s + capacity >= duration_s - 1e-9:  # the last window ends with the video
            remaining = duration_s - start_s
            start = 0 if not windows else min(total - sequence_lengths(remaining, mode).latent, windows[-1].end)
            windows.append(WindowPlan(index, segment, start, total, prompt, from_reference,
                                      _target_lengths(remaining, mode, total - start)))
            break
        lengths = sequence_lengths(capacity, mode)
        start = round(start_s * rate)
        windows.append(WindowPlan(index, segment, start, start + lengths.latent, prompt, from_reference, lengths))
        segment += math.floor(capacity / GRID_S + 1e-9)
        if duration_s - segment * GRID_S < MIN_DURATION_S:  # keep the last target long enough
            segment = math.floor((duration_s - MIN_DURATION_S) / GRID_S)
        prompt, capacity = overlap, cap
    return LongPlan(mode, float(duration_s), total, round(duration_s * sample_rate), sample_rate, hop, overlap,
                    tuple(windows))


def _stream_slice(stream: torch.Tensor, offset: int, count: int) -> torch.Tensor:
    """stream[:, offset:offset + count], padded by repeating the last token where the video ends
    a fraction of a token early (the timeline is rounded up to whole latents)."""
    part = stream[:, min(offset, stream.shape[1] - 1):offset + count]
    if part.shape[1] < count:
        part = torch.cat([part, part[:, -1:].expand(-1, count - part.shape[1], -1)], dim=1)
    return part


def window_features(features: VisualFeatures, window: WindowPlan) -> VisualFeatures:
    """The video's features for the window's target span."""
    target = window.target
    clip_f = sync_f = None
    if features.clip_f is not None:
        clip_f = _stream_slice(features.clip_f, window.clip_offset, target.clip)
        sync_f = _stream_slice(features.sync_f, window.sync_offset, target.sync)
    return dataclasses.replace(features, clip_f=clip_f, sync_f=sync_f, duration_s=target.duration_s)


def _reference_latent(reference) -> Optional[torch.Tensor]:
    if reference is None:
        return None
    return getattr(reference, "prompt_latent", reference)  # ReferenceStyle or a (1, N, C) tensor


@torch.no_grad()
def generate_long(network, features: VisualFeatures, mode: str, settings: GenerationSettings, *,
                  window_s: float = 8.0, overlap_s: float = 1.0, reference=None, device: torch.device,
                  callback: Optional[StepCallback] = None,
                  progress: Optional[ProgressCallback] = None,
                  velocity_hook: Optional[VelocityHook] = None) -> tuple[torch.Tensor, LongPlan]:
    """Latents (B, N_total, C), un-normalised float32, for the whole video, and the window plan.

    Window k uses seed + k. `callback` is the per-step sampler callback of every window (raise
    to stop); `progress(done_windows, total_windows)` runs after each window. A video that fits
    one window (and no reference) gives exactly `generation.generate`'s latents.
    `velocity_hook` is used in every window; a hook with a `for_window(prompt_latents, start_s)`
    method (guidance towards a whole-video target) is re-aimed at each window's span first.
    """
    if not 1 <= settings.batch_size <= MAX_BATCH:
        raise FoleyError(f"batch_size must be between 1 and {MAX_BATCH}.")
    duration = settings.duration_s if settings.duration_s and settings.duration_s > 0 else features.duration_s
    if features.clip_f is not None and duration > features.duration_s + 1e-6:
        raise FoleyError(f"Requested {duration:.2f} s but the video covers {features.duration_s:.2f} s; "
                         "set duration to 0 (= the video's).")
    ref_latent = _reference_latent(reference)
    plan = plan_long_generation(duration, mode, window_s=window_s, overlap_s=overlap_s,
                                reference_len=0 if ref_latent is None else ref_latent.shape[1])
    dim = network.config.latent_dim
    out = torch.zeros(settings.batch_size, plan.latent, dim, device=device)
    for window in plan.windows:
        if window.from_reference:
            prompt = ref_latent
        else:  # the tail of what is already generated (un-normalised; re-normalised inside)
            prompt = out[:, window.start - window.prompt:window.start]
        run = dataclasses.replace(settings, seed=settings.seed + window.index, duration_s=0.0)
        hook = velocity_hook
        if hook is not None and hasattr(hook, "for_window"):
            hook = hook.for_window(prompt.shape[1], window.start / (plan.sample_rate / plan.hop / 2))
        # A network with for_window (an envelope ControlNet, controls/controlnet.py) likewise.
        window_net = network
        if hasattr(type(network), "for_window"):
            window_net = network.for_window(prompt.shape[1], window.start / (plan.sample_rate / plan.hop / 2))
        out[:, window.start:window.end] = generate_with_prompt(
            window_net, window_features(features, window), mode, run, prompt, device, callback,
            target_lengths=window.target, velocity_hook=hook)
        if progress is not None:
            progress(window.index + 1, len(plan.windows))
    return out, plan


def _fade_in(n: int, device) -> torch.Tensor:
    """sin² ramp over n samples (0 → 1, sample-centred); 1 − ramp is the matching fade-out."""
    x = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n
    return torch.sin(0.5 * math.pi * x) ** 2


@torch.inference_mode()
def decode_long(vae, vocoder, latents: torch.Tensor, plan: LongPlan) -> torch.Tensor:
    """Waveform (B, 1, plan.samples) in [−1, 1]: each window decoded from its prompt span on and
    crossfaded into the output over that span."""
    if latents.shape[1] != plan.latent:
        raise FoleyError(f"Got {latents.shape[1]} latents for a plan of {plan.latent}.")
    per = plan.samples_per_latent
    out = None
    for window in plan.windows:
        first = window.decode_start
        wave = mel_to_waveform(vocoder, latents_to_mel(vae, latents[:, first:window.end])).float()
        length = (window.end - first) * per
        wave = torch.nn.functional.pad(wave, (0, max(0, length - wave.shape[-1])))[..., :length]
        if out is None:
            out = torch.zeros(*wave.shape[:-1], plan.latent * per, device=wave.device)
        begin, fade = first * per, (window.start - first) * per
        if fade:
            ramp = _fade_in(fade, wave.device)
            out[..., begin:begin + fade] = out[..., begin:begin + fade] * (1 - ramp) + wave[..., :fade] * ramp
        out[..., begin + fade:begin + length] = wave[..., fade:]
    return finish_waveform(out, plan.samples)
