"""Latents → mel → waveform, cut to an exact number of samples (host-independent)."""

from __future__ import annotations

import torch

from .errors import FoleyError


@torch.inference_mode()
def latents_to_mel(vae, latents: torch.Tensor) -> torch.Tensor:
    """(B, N, C) channel-last latents → log-mel (B, n_mels, 2N) in the VAE's dtype."""
    if latents.shape[-1] != vae.cfg.embed_dim:
        raise FoleyError(
            f"These latents have {latents.shape[-1]} channels but the VAE expects "
            f"{vae.cfg.embed_dim}; decode with the codec that matches the flow network "
            "(44.1 kHz nets: v1-44 VAE, 40 channels; small_16k: v1-16 VAE, 20 channels).")
    weight = next(vae.parameters())
    z = latents.transpose(1, 2).to(device=weight.device, dtype=weight.dtype)
    return vae.decode(z)


@torch.inference_mode()
def mel_to_waveform(vocoder, mel: torch.Tensor) -> torch.Tensor:
    weight = next(vocoder.parameters())
    return vocoder(mel.to(device=weight.device, dtype=weight.dtype))


def decode_latents(vae, vocoder, latents: torch.Tensor, n_samples: int | None = None) -> torch.Tensor:
    """Waveform (B, 1, T) float32 in [−1, 1]; cut to n_samples (generation covers a little more)."""
    wave = mel_to_waveform(vocoder, latents_to_mel(vae, latents)).float()
    if n_samples is not None:
        if wave.shape[-1] < n_samples:
            raise FoleyError(f"Decoded {wave.shape[-1]} samples, fewer than the {n_samples} needed.")
        wave = wave[..., :n_samples]
    return torch.nan_to_num(wave, nan=0.0, posinf=1.0, neginf=-1.0).clamp_(-1.0, 1.0)
