"""Build ready-to-run modules from model files (host-independent; the plugin's loaders, the
training engine and the benchmark all go through here, so a file that works in one works in all).

Every builder reads weights-only, checks that the file is of the kind the slot wants, and puts the
slot and file name into its errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from .bigvgan import load_bigvgan
from .checkpoint_io import read_metadata, read_state_dict, require_kind
from .clip_encoder import ClipEncoder
from .griffin_lim import GriffinLimVocoder
from .mel import MEL_SETTINGS
from .mmaudio import MMAudioNetwork, detect_network_config, load_network_weights
from .mmaudio.sequence import audio_mode_settings
from .synchformer import SynchformerVisualEncoder
from .vae import load_vae

# MMAudio networks whose latent width fixes the audio mode (spec §3.1); other widths are custom
# nets whose mode comes from the codec they are decoded with.
MODE_BY_LATENT_DIM = {20: "16k", 40: "44k"}
# Clip length the official networks were trained on; our exports record their own in metadata.
DEFAULT_TRAINED_WINDOW_S = 8.0


def read_checked(path: Path, slot: str, kind: str) -> dict[str, torch.Tensor]:
    state_dict = read_state_dict(path, slot)
    require_kind(state_dict, kind, slot, Path(path).name)
    return state_dict


@dataclass
class BuiltNetwork:
    network: MMAudioNetwork
    variant: str
    mode: str | None
    trained_window_s: float = DEFAULT_TRAINED_WINDOW_S  # the clip length it was trained on


def build_network(path: Path, dtype: torch.dtype = torch.float32) -> BuiltNetwork:
    slot = "Flow network"
    state_dict = read_checked(path, slot, "flow network")
    variant, config = detect_network_config(state_dict)
    with torch.device("meta"):
        network = MMAudioNetwork(config)
    try:
        load_network_weights(network, {k: v.to(dtype) for k, v in state_dict.items()})
    except CheckpointError as error:
        raise CheckpointError(f"{slot}: {Path(path).name}: {error}") from None
    try:
        window = float(read_metadata(path).get("duration_s", DEFAULT_TRAINED_WINDOW_S))
    except ValueError:
        window = DEFAULT_TRAINED_WINDOW_S
    return BuiltNetwork(network.eval().requires_grad_(False), variant,
                        config.mode or MODE_BY_LATENT_DIM.get(config.latent_dim), window)


def build_clip(path: Path, dtype: torch.dtype = torch.float32) -> ClipEncoder:
    state_dict = read_checked(path, "CLIP", "CLIP")
    try:
        return ClipEncoder.from_state_dict(state_dict, dtype=dtype)
    except CheckpointError as error:
        raise CheckpointError(f"CLIP: {Path(path).name}: {error}") from None


def build_synchformer(path: Path, dtype: torch.dtype = torch.float32) -> SynchformerVisualEncoder:
    state_dict = read_checked(path, "Synchformer", "Synchformer")
    try:
        return SynchformerVisualEncoder.from_state_dict(state_dict, dtype=dtype)
    except CheckpointError as error:
        raise CheckpointError(f"Synchformer: {Path(path).name}: {error}") from None


def build_vae(path: Path, dtype: torch.dtype = torch.float32):
    state_dict = read_checked(path, "VAE", "VAE")
    try:
        return load_vae(state_dict, dtype=dtype)
    except CheckpointError as error:
        raise CheckpointError(f"VAE: {Path(path).name}: {error}") from None


def _vocoder_config(path: Path):
    """NVIDIA ships config.json beside bigvgan_generator.pt; other files use the known configs."""
    config_file = path.with_name("config.json")
    if not config_file.is_file():
        return None
    try:
        return json.loads(config_file.read_text())
    except ValueError as error:
        raise CheckpointError(f"Vocoder: {config_file} is not valid JSON ({error}).") from None


def build_vocoder(path: Path | None, mode: str, dtype: torch.dtype = torch.float32, *,
                  vae_name: str = "the VAE"):
    """BigVGAN from a file, or the weight-free Griffin-Lim vocoder when path is None; checked
    against the mode's mel bands and hop so a vocoder for another VAE is refused."""
    mel = MEL_SETTINGS[mode]
    if path is None:
        return GriffinLimVocoder(mel)
    state_dict = read_checked(path, "Vocoder", "vocoder")
    try:
        vocoder = load_bigvgan(state_dict, _vocoder_config(Path(path)), dtype=dtype)
    except (CheckpointError, ValueError, KeyError) as error:
        raise CheckpointError(f"Vocoder: {Path(path).name}: {error}") from None
    name = Path(path).name
    if vocoder.cfg.num_mels != mel.n_mels:
        raise CheckpointError(
            f"Vocoder: {name} expects {vocoder.cfg.num_mels} mel bands but {vae_name} makes "
            f"{mel.n_mels} ({mode}). Use the {mode} vocoder "
            f"({'BigVGAN v2 44 kHz 128-band' if mode == '44k' else 'best_netG.pt, 16 kHz'}).")
    upsampling = 1
    for rate in vocoder.cfg.upsample_rates:
        upsampling *= rate
    if upsampling != mel.hop:
        raise CheckpointError(
            f"Vocoder: {name} makes {upsampling} samples per mel frame, but {mode} mels have a "
            f"hop of {mel.hop}; it is not a vocoder for this VAE.")
    return vocoder


def codec_rates(mode: str) -> tuple[int, int]:
    """(sample_rate, hop) of a mode's waveform."""
    sample_rate, _ = audio_mode_settings(mode)
    return sample_rate, MEL_SETTINGS[mode].hop


def build_beats(path: Path):
    """BEATs timbre encoder from an official .pt ({"cfg", "model"}) or a flat state dict."""
    from .beats import BEATsEncoder

    try:
        return BEATsEncoder.from_checkpoint(Path(path))
    except CheckpointError as error:
        raise CheckpointError(f"Timbre encoder (BEATs): {Path(path).name}: {error}") from None


def build_style_conditioner(path: Path):
    """MusicGen-Style style conditioner (the tempo encoder's transformer + RVQ)."""
    from .style_conditioner import StyleConditioner

    state_dict = read_state_dict(path, "Tempo encoder")
    try:
        return StyleConditioner.from_state_dict(state_dict)
    except CheckpointError as error:
        raise CheckpointError(f"Tempo encoder (style conditioner): {Path(path).name}: {error}") from None


def build_mert(path: Path):
    from .style_conditioner import load_mert

    try:
        return load_mert(Path(path))
    except CheckpointError as error:
        raise CheckpointError(f"MERT: {Path(path).name}: {error}") from None
