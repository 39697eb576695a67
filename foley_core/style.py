"""Reference-audio style (FOLEY_STYLE): what a reference recording contributes to generation.

Today: the VAE latent of a short segment (the latent prompt, AudioIM §2.1) and its time-pooled
mean (the AC-Foley acoustic vector), plus AudioIM §2.2's timbre (BEATs) and tempo (style
conditioner) embeddings when those encoders are loaded. The embeddings and the acoustic vector
reach the network through a trained style adapter (models/style_adapter.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .errors import FoleyError
from .media.audio import resample, to_mono, validate_waveform
from .models.mel import MelConverter
from .models.mmaudio.sequence import audio_mode_settings

DEFAULT_PROMPT_S = 3.0  # AudioIM uses a 3 s prompt in an 8 s window
RESAMPLE_MARGIN_S = 0.05


@dataclass
class ReferenceStyle:
    """FOLEY_STYLE. Latents are un-normalised VAE latents, channel-last, float32 on the CPU."""

    prompt_latent: torch.Tensor  # (1, N_p, C): posterior mean of the reference segment
    acoustic_vector: torch.Tensor  # (1, C): prompt_latent averaged over time
    prompt_seconds: float  # requested segment length (N_p covers it, rounded up to a latent)
    mode: str  # "16k" / "44k": the codec the latent belongs to
    source_sample_rate: int
    offset_s: float
    padded_s: float = 0.0  # silence appended because the recording ended early
    timbre_embedding: Optional[torch.Tensor] = None  # AudioIM timbre encoder (not yet)
    tempo_embedding: Optional[torch.Tensor] = None  # AudioIM tempo encoder (not yet)

    @property
    def prompt_length(self) -> int:
        return self.prompt_latent.shape[1]

    @property
    def active_parts(self) -> tuple[str, ...]:
        """Which style signals this reference carries (e.g. for node tooltips and checks)."""
        parts = ["latent_prompt", "acoustic_vector"]
        if self.timbre_embedding is not None:
            parts.append("timbre")
        if self.tempo_embedding is not None:
            parts.append("tempo")
        return tuple(parts)


    def describe(self) -> str:
        """One line for the node's display: what is active and what is not."""
        missing = [name for name, value in (("timbre (BEATs)", self.timbre_embedding),
                                            ("tempo (style conditioner)", self.tempo_embedding))
                   if value is None]
        text = (f"reference {self.prompt_seconds:.2f} s from {self.offset_s:.2f} s "
                f"({self.source_sample_rate} Hz source, {self.mode}): active {', '.join(self.active_parts)}")
        if self.padded_s > 0:
            text += f"; {self.padded_s:.2f} s of silence padded (recording too short)"
        if missing:
            text += f"; not loaded: {', '.join(missing)}"
        if len(missing) < 2:
            text += ("; the timbre/tempo embeddings steer generation only through a style adapter "
                     "(Foley Load Adapter → the sampler's adapter input)")
        return text


def prompt_latent_length(prompt_s: float, mode: str) -> int:
    """Latents covering `prompt_s` seconds: ceil(prompt_s · sr / hop / 2), as for any duration."""
    sample_rate, hop = audio_mode_settings(mode)
    return math.ceil(prompt_s * sample_rate / hop / 2)


def _reference_segment(waveform, sample_rate: int, offset_s: float, seconds: float) -> tuple[torch.Tensor, float]:
    """Mono segment [1, T] at the source rate starting at offset_s, and the seconds it is short."""
    wave = validate_waveform(waveform, sample_rate, "reference audio")[:1]  # first batch item
    total = wave.shape[-1]
    start = round(offset_s * sample_rate)
    if start >= total:
        raise FoleyError(f"The reference offset {offset_s:.2f} s is past the end of the recording "
                         f"({total / sample_rate:.2f} s); lower the offset.")
    wanted = math.ceil(seconds * sample_rate)
    # A little extra audio after the segment keeps the resampler's filter away from the cut.
    margin = math.ceil(RESAMPLE_MARGIN_S * sample_rate)
    segment = to_mono(wave[..., start:start + wanted + margin])[0]
    return segment, max(0.0, (wanted - segment.shape[-1]) / sample_rate)


@torch.inference_mode()
def encode_reference(vae, waveform, sample_rate: int, mode: str, *, offset_s: float = 0.0,
                     prompt_s: float = DEFAULT_PROMPT_S) -> ReferenceStyle:
    """Encode prompt_s seconds of a reference recording ([C, T] or [B, C, T]; batch item 0).

    Mono → the mode's sample rate → log-mel → VAE posterior mean. A recording that ends early is
    padded with silence up to the prompt length.
    """
    if vae.cfg.mode != mode:
        raise FoleyError(f"The VAE encodes {vae.cfg.mode} audio but the network runs in {mode} mode; "
                         "use the codec that matches the flow network.")
    if not (math.isfinite(prompt_s) and prompt_s > 0):
        raise FoleyError(f"The reference prompt length must be a positive number of seconds, got {prompt_s}.")
    if not (math.isfinite(offset_s) and offset_s >= 0):
        raise FoleyError(f"The reference offset must be >= 0 s, got {offset_s}.")
    target_sr, hop = audio_mode_settings(mode)
    n_latent = prompt_latent_length(prompt_s, mode)
    n_samples = n_latent * 2 * hop  # exactly 2·N_p mel frames → N_p latents
    # Read what the whole latent span covers (prompt_s rounded up to a latent), not just prompt_s.
    segment, padded_s = _reference_segment(waveform, sample_rate, offset_s, n_samples / target_sr)
    audio = resample(segment, int(sample_rate), target_sr)[..., :n_samples]
    audio = torch.nn.functional.pad(audio, (0, n_samples - audio.shape[-1]))

    anchor = next(vae.parameters())
    mel = MelConverter(mode).to(anchor.device)(audio.to(anchor.device).unsqueeze(0))
    latent = vae.encode(mel).mean.transpose(1, 2).float().cpu()  # (1, N_p, C)
    if latent.shape[1] != n_latent or not bool(torch.isfinite(latent).all()):
        raise FoleyError("The VAE did not produce a usable latent for the reference audio "
                         f"(shape {tuple(latent.shape)}); check the codec file.")
    return ReferenceStyle(
        prompt_latent=latent, acoustic_vector=latent.mean(dim=1), prompt_seconds=float(prompt_s), mode=mode,
        source_sample_rate=int(sample_rate), offset_s=float(offset_s), padded_s=padded_s)


@torch.no_grad()
def add_style_embeddings(style: ReferenceStyle, waveform, sample_rate: int, *, timbre_encoder=None,
                         tempo_conditioner=None, mert=None) -> ReferenceStyle:
    """Fill in AudioIM's timbre (BEATs, clip mean of its features) and tempo (style-conditioner
    tokens, averaged over valid positions) embeddings for the same reference segment, for the
    encoders that are loaded; the others stay None and `describe()` says so."""
    segment, _ = _reference_segment(waveform, sample_rate, style.offset_s, style.prompt_seconds)
    mono = segment.mean(dim=0, keepdim=True)
    if timbre_encoder is not None:
        style.timbre_embedding = timbre_encoder.timbre_embedding(mono, sample_rate).float().cpu()
    if tempo_conditioner is not None:
        if mert is None:
            raise FoleyError("The tempo encoder needs MERT-v1-95M (its frozen audio features); load "
                             "it too, or leave the tempo encoder out.")
        embeds, mask = tempo_conditioner.tempo_embedding(mono, sample_rate, mert)
        weights = mask.float().unsqueeze(-1)
        style.tempo_embedding = ((embeds * weights).sum(1) / weights.sum(1).clamp_min(1.0)).float().cpu()
    return style
