"""MMAudio mel VAE: model, EDM2 primitives and checkpoint loading (spec §6, §9)."""

from .checkpoint import (
    detect_vae_config,
    detect_weight_form,
    extract_vae_state_dict,
    load_vae,
    normalize_mp_weight,
    normalize_vae_state_dict,
)
from .mel_vae import VAE_16K, VAE_44K, MelVAE, Posterior, VAEConfig

__all__ = [
    "MelVAE",
    "Posterior",
    "VAEConfig",
    "VAE_16K",
    "VAE_44K",
    "detect_vae_config",
    "detect_weight_form",
    "extract_vae_state_dict",
    "load_vae",
    "normalize_mp_weight",
    "normalize_vae_state_dict",
]
