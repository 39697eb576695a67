"""Small pictures for progress previews and node outputs (spectrograms, latent maps)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# A dark-to-bright perceptual ramp (black → purple → orange → pale yellow), 5 anchors.
_RAMP = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]],
                 dtype=np.float32)


def colorize(values: np.ndarray) -> np.ndarray:
    """Map a 2-D array to RGB uint8 with the ramp, after robust min/max scaling."""
    values = np.nan_to_num(values.astype(np.float32))
    low, high = np.percentile(values, 1), np.percentile(values, 99)
    scaled = np.clip((values - low) / max(high - low, 1e-6), 0, 1) * (len(_RAMP) - 1)
    index = np.floor(scaled).astype(int).clip(0, len(_RAMP) - 2)
    frac = (scaled - index)[..., None]
    return (_RAMP[index] * (1 - frac) + _RAMP[index + 1] * frac).astype(np.uint8)


def spectrogram_image(mel: torch.Tensor, height: int = 128, max_width: int = 512) -> Image.Image:
    """Log-mel (n_mels, T) → image with low frequencies at the bottom."""
    picture = colorize(mel.detach().float().cpu().numpy()[::-1])
    image = Image.fromarray(picture)
    width = min(max_width, max(picture.shape[1], 1))
    return image.resize((width, height), Image.BILINEAR)


def latent_image(latent: torch.Tensor, height: int = 96, max_width: int = 512) -> Image.Image:
    """Channel-last latent (N, C) → image of channels over time (a stand-in when no VAE is at hand)."""
    return spectrogram_image(latent.detach().float().t(), height, max_width)


def to_comfy_image(image: Image.Image) -> torch.Tensor:
    """PIL → ComfyUI IMAGE [1, H, W, 3] float 0..1."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)[None]
