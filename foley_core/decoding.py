"""Latents → mel → waveform, cut to an exact number of samples (host-independent)."""

from __future__ import annotations

import torch

from .errors import FoleyError


def _placement(module) -> torch.Tensor:
    """A tensor whose device/dtype tells where the module runs (weight-free vocoders have
    only buffers)."""
    for tensor in module.parameters():
        return tensor
    for tensor in module.buffers():
        return tensor
    return torch.zeros(())


@torch.inference_mode()
def latents_to_mel(vae, latents: torch.Tensor) -> torch.Tensor:
    """(B, N, C) channel-last latents → log-mel (B, n_mels, 2N) in the VAE's dtype."""
    return latents_to_mel_differentiable(vae, latents)


def latents_to_mel_differentiable(vae, latents: torch.Tensor) -> torch.Tensor:
    """`latents_to_mel` without inference mode: gradients flow back to `latents` when grad is
    enabled (training-free guidance, controls/guidance.py)."""
    if latents.shape[-1] != vae.cfg.embed_dim:
        raise FoleyError(
            f"These latents have {latents.shape[-1]} channels but the VAE expects "
            f"{vae.cfg.embed_dim}; decode with the codec that matches the flow network "
            "(44.1 kHz nets: v1-44 VAE, 40 channels; small_16k: v1-16 VAE, 20 channels).")
    weight = _placement(vae)
    z = latents.transpose(1, 2).to(device=weight.device, dtype=weight.dtype)
    return vae.decode(z)


@torch.inference_mode()
def mel_to_waveform(vocoder, mel: torch.Tensor) -> torch.Tensor:
    anchor = _placement(vocoder)
    dtype = anchor.dtype if anchor.is_floating_point() else mel.dtype
    return vocoder(mel.to(device=anchor.device, dtype=dtype))


def finish_waveform(wave: torch.Tensor, n_samples: int | None = None) -> torch.Tensor:
    """float32, cut to n_samples (generation covers a little more), no NaN, within [−1, 1]."""
    wave = wave.float()
    if n_samples is not None:
        if wave.shape[-1] < n_samples:
            raise FoleyError(f"Decoded {wave.shape[-1]} samples, fewer than the {n_samples} needed.")
        wave = wave[..., :n_samples]
    return torch.nan_to_num(wave, nan=0.0, posinf=1.0, neginf=-1.0).clamp_(-1.0, 1.0)


def decode_latents(vae, vocoder, latents: torch.Tensor, n_samples: int | None = None) -> torch.Tensor:
    """Waveform (B, 1, T) float32 in [−1, 1], exactly n_samples long when given."""
    return finish_waveform(mel_to_waveform(vocoder, latents_to_mel(vae, latents)), n_samples)
