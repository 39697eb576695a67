"""Small random-weight model files in the OFFICIAL formats, for end-to-end runs without downloads.

They exercise exactly the code paths users' files take: an MMAudio net as a plain fp32 `.pth`
state dict and as an fp16 `.safetensors` (kijai's format), a VAE with raw (un-normalised) MP
weights, a BigVGAN folder with NVIDIA's `config.json` + `bigvgan_generator.pt` ({"generator": …}
with weight_g/weight_v), the Synchformer under `vfeat_extractor.`, and CLIP in open_clip names.
The widths are tiny, so the sound is noise-like: these files prove mechanics, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from foley_core.models.bigvgan import BigVGANConfig, BigVGANGenerator
from foley_core.models.clip_encoder import build_clip_model
from foley_core.models.mmaudio import MMAudioNetwork, NetworkConfig
from foley_core.models.synchformer import SynchformerConfig, SynchformerVisualEncoder
from foley_core.models.vae import MelVAE, VAEConfig

LATENT_DIM = 40  # a 44.1 kHz latent width, so the net's audio mode is known from its shape
CLIP_CONFIG = {
    "embed_dim": 32, "quick_gelu": True,
    "vision_cfg": {"image_size": 378, "layers": 1, "width": 64, "head_width": 64, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}
SYNC_CONFIG = SynchformerConfig(embed_dim=64, depth=1, num_heads=1)
NET_CONFIG = NetworkConfig(latent_dim=LATENT_DIM, hidden_dim=64, depth=2, fused_depth=1, num_heads=1,
                           clip_dim=32, sync_dim=64, text_dim=64, v2=True)
VAE_CONFIG = VAEConfig(n_mels=128, embed_dim=LATENT_DIM, hidden_dim=8)
VOCODER_CONFIG = {
    "resblock": "1", "num_mels": 128, "upsample_rates": [8, 8, 8],
    "upsample_kernel_sizes": [16, 16, 16], "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5]] * 3,
    "activation": "snakebeta", "snake_logscale": True, "use_tanh_at_final": False,
    "use_bias_at_final": False, "sampling_rate": 44100,
}

NAMES = {
    "network_pth": "foley_small_random_44k.pth",
    "network_fp16": "foley_small_random_44k_fp16.safetensors",
    "vae": "foley_small_random_vae_44k.pth",
    "vocoder": "foley_small_random_bigvgan/bigvgan_generator.pt",
    "synchformer": "foley_small_random_synchformer.pth",
    "clip": "foley_small_random_clip.safetensors",
}


# Which small file stands in for each official file name used by the shipped workflows.
STANDS_IN_FOR = {
    "mmaudio_large_44k_v2.pth": NAMES["network_pth"],
    "mmaudio_large_44k_v2_fp16.safetensors": NAMES["network_fp16"],
    "apple_DFN5B-CLIP-ViT-H-14-384_fp16.safetensors": NAMES["clip"],
    "synchformer_state_dict.pth": NAMES["synchformer"],
    "v1-44.pth": NAMES["vae"],
    "bigvgan_v2_44khz_128band_512x/bigvgan_generator.pt": NAMES["vocoder"],
}


def use_small_models(prompt: dict) -> dict:
    """A copy of an API prompt whose official model file names point at the small stand-ins."""
    swapped = json.loads(json.dumps(prompt))
    for node in swapped.values():
        for name, value in node["inputs"].items():
            if isinstance(value, str) and value in STANDS_IN_FOR:
                node["inputs"][name] = STANDS_IN_FOR[value]
    return swapped


def _contiguous(state_dict):
    return {k: v.detach().clone().contiguous() for k, v in state_dict.items()}


def _network_state(seed: int):
    torch.manual_seed(seed)
    net = MMAudioNetwork(NET_CONFIG)
    state = net.state_dict()
    # Non-zero empty features / statistics so the unconditional branch and de-normalisation
    # are exercised, as in real checkpoints.
    for key in ("empty_clip_feat", "empty_sync_feat", "empty_string_feat"):
        state[key] = torch.randn_like(state[key]) * 0.1
    state["latent_std"] = torch.full_like(state["latent_std"], 0.5)
    return _contiguous(state)


def _vae_state(seed: int):
    torch.manual_seed(seed)
    state = MelVAE(VAE_CONFIG).state_dict()
    # Raw EDM2 weights have rows of norm ≈ sqrt(fan_in) (that is how the loader tells them apart).
    for key, value in state.items():
        if key.endswith(".weight") and value.dim() == 3:
            state[key] = torch.randn_like(value)
    return _contiguous(state)


def _vocoder_checkpoint(seed: int):
    """{"generator": state} with weight_g / weight_v, as NVIDIA's bigvgan_generator.pt."""
    torch.manual_seed(seed)
    folded = BigVGANGenerator(BigVGANConfig.from_dict(VOCODER_CONFIG)).state_dict()
    state = {}
    for key, value in folded.items():
        is_conv = key.endswith(".weight") and value.dim() == 3 and not key.endswith("filter")
        if not is_conv:
            state[key] = value
            continue
        # Transposed convs keep the norm over dim 1..; weight norm treats dim 0 as the output.
        norm = torch.linalg.vector_norm(value.flatten(1), dim=1).view(-1, 1, 1)
        state[key[: -len("weight")] + "weight_g"] = norm
        state[key[: -len("weight")] + "weight_v"] = value
    return {"generator": _contiguous(state)}


def write_small_model_set(models_dir: Path, seed: int = 0) -> dict[str, str]:
    """Write every file into models_dir (ComfyUI's models/mmaudio); returns slot -> name."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    net_state = _network_state(seed)
    torch.save(net_state, models_dir / NAMES["network_pth"])
    save_file({k: v.half() for k, v in net_state.items()}, str(models_dir / NAMES["network_fp16"]))
    torch.save(_vae_state(seed + 1), models_dir / NAMES["vae"])
    vocoder_path = models_dir / NAMES["vocoder"]
    vocoder_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_vocoder_checkpoint(seed + 2), vocoder_path)
    (vocoder_path.parent / "config.json").write_text(json.dumps(VOCODER_CONFIG, indent=1))
    torch.manual_seed(seed + 3)
    sync_state = SynchformerVisualEncoder(SYNC_CONFIG).state_dict()
    torch.save(_contiguous(sync_state), models_dir / NAMES["synchformer"])
    torch.manual_seed(seed + 4)
    clip_state = build_clip_model(CLIP_CONFIG).state_dict()
    save_file(_contiguous(clip_state), str(models_dir / NAMES["clip"]))
    return dict(NAMES)
