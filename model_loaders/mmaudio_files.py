"""Build the MMAudio modules from files in models/mmaudio and wrap them for the host."""

from __future__ import annotations

import json
from pathlib import Path

from ..foley_core.errors import CheckpointError
from ..foley_core.models.bigvgan import load_bigvgan
from ..foley_core.models.checkpoint_io import read_state_dict, require_kind
from ..foley_core.models.clip_encoder import ClipEncoder
from ..foley_core.models.griffin_lim import GriffinLimVocoder
from ..foley_core.models.mel import MEL_SETTINGS
from ..foley_core.models.mmaudio import MMAudioNetwork, detect_network_config, load_network_weights
from ..foley_core.models.mmaudio.sequence import audio_mode_settings
from ..foley_core.models.synchformer import SynchformerVisualEncoder
from ..foley_core.models.vae import load_vae
from . import devices, folders
from .handles import FoleyCodec, FoleyEncoders, FoleyModel

# The vocoder choice that needs no file (see foley_core/models/griffin_lim.py).
GRIFFIN_LIM = "(built-in) Griffin-Lim, no weights"

# MMAudio networks whose latent width fixes the audio mode (spec §3.1); other widths are custom
# nets whose mode comes from the codec they are decoded with.
MODE_BY_LATENT_DIM = {20: "16k", 40: "44k"}


def _read(name: str, slot: str, kind: str):
    path = folders.resolve(name, slot)
    state_dict = read_state_dict(path, slot)
    require_kind(state_dict, kind, slot, path.name)
    return path, state_dict


def load_flow_model(name: str, dtype_choice: str = "auto") -> FoleyModel:
    slot = "Flow network"
    path, state_dict = _read(name, slot, "flow network")
    variant, config = detect_network_config(state_dict)
    dtype = devices.compute_dtype(dtype_choice)
    import torch

    with torch.device("meta"):
        network = MMAudioNetwork(config)
    try:
        load_network_weights(network, {k: v.to(dtype) for k, v in state_dict.items()})
    except CheckpointError as error:
        raise CheckpointError(f"{slot}: {path.name}: {error}") from None
    mode = config.mode or MODE_BY_LATENT_DIM.get(config.latent_dim)
    return FoleyModel(devices.wrap(network), variant, mode, dtype, path.name)


def load_encoders(clip_name: str, synchformer_name: str, dtype_choice: str = "auto") -> FoleyEncoders:
    dtype = devices.compute_dtype(dtype_choice)
    clip_path, clip_sd = _read(clip_name, "CLIP", "CLIP")
    try:
        clip = ClipEncoder.from_state_dict(clip_sd, dtype=dtype)
    except CheckpointError as error:
        raise CheckpointError(f"CLIP: {clip_path.name}: {error}") from None
    sync_path, sync_sd = _read(synchformer_name, "Synchformer", "Synchformer")
    try:
        synchformer = SynchformerVisualEncoder.from_state_dict(sync_sd, dtype=dtype)
    except CheckpointError as error:
        raise CheckpointError(f"Synchformer: {sync_path.name}: {error}") from None
    return FoleyEncoders(devices.wrap(clip), devices.wrap(synchformer), dtype,
                         (clip_path.name, sync_path.name))


def _vocoder_config(path: Path):
    """NVIDIA ships config.json beside bigvgan_generator.pt; other files use the known configs."""
    config_file = path.with_name("config.json")
    if config_file.is_file():
        try:
            return json.loads(config_file.read_text())
        except ValueError as error:
            raise CheckpointError(f"Vocoder: {config_file} is not valid JSON ({error}).") from None
    return None


def load_codec(vae_name: str, vocoder_name: str, dtype_choice: str = "auto") -> FoleyCodec:
    dtype = devices.compute_dtype(dtype_choice)
    vae_path, vae_sd = _read(vae_name, "VAE", "VAE")
    try:
        vae = load_vae(vae_sd, dtype=dtype)
    except CheckpointError as error:
        raise CheckpointError(f"VAE: {vae_path.name}: {error}") from None
    config = vae.cfg
    mode = config.mode
    sample_rate, hop = audio_mode_settings(mode)
    mel = MEL_SETTINGS[mode]
    if vocoder_name == GRIFFIN_LIM:
        vocoder = GriffinLimVocoder(mel)
        return FoleyCodec(devices.wrap(vae), devices.wrap(vocoder), mode, sample_rate, mel.hop,
                          config.embed_dim, dtype, (vae_path.name, GRIFFIN_LIM))
    voc_path, voc_sd = _read(vocoder_name, "Vocoder", "vocoder")
    try:
        vocoder = load_bigvgan(voc_sd, _vocoder_config(voc_path), dtype=dtype)
    except (CheckpointError, ValueError, KeyError) as error:
        raise CheckpointError(f"Vocoder: {voc_path.name}: {error}") from None
    if vocoder.cfg.num_mels != mel.n_mels:
        raise CheckpointError(
            f"Vocoder: {voc_path.name} expects {vocoder.cfg.num_mels} mel bands but the VAE "
            f"{vae_path.name} makes {mel.n_mels} ({mode}). Use the {mode} vocoder "
            f"({'BigVGAN v2 44 kHz 128-band' if mode == '44k' else 'best_netG.pt, 16 kHz'}).")
    upsampling = 1
    for rate in vocoder.cfg.upsample_rates:
        upsampling *= rate
    if upsampling != mel.hop:
        raise CheckpointError(
            f"Vocoder: {voc_path.name} makes {upsampling} samples per mel frame, but {mode} mels "
            f"have a hop of {mel.hop}; it is not a vocoder for this VAE.")
    return FoleyCodec(devices.wrap(vae), devices.wrap(vocoder), mode, sample_rate, mel.hop,
                      config.embed_dim, dtype, (vae_path.name, voc_path.name))
