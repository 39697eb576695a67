"""The small-VAE trainer exports raw weights that the plugin's loader turns back into the same model."""

import numpy as np
import torch

from foley_core.models.mel import MelConverter
from foley_core.models.vae import detect_weight_form, load_vae
from foley_core.training.vae_trainer import VAETrainingConfig, build_trainable_vae, export_raw_state_dict, mel_statistics, train_vae


def hit_track(seed: int, sr: int = 16000, seconds: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    wave = torch.zeros(int(sr * seconds))
    n = torch.arange(2000)
    for start in torch.rand(4, generator=g) * (seconds - 0.2):
        i = int(start * sr)
        wave[i:i + 2000] += 0.5 * torch.sin(2 * np.pi * (300 + 150 * seed) * n / sr) * torch.exp(-n / 500.0)
    return wave


def test_exported_raw_weights_load_as_the_trained_model():
    torch.manual_seed(0)
    mels = [MelConverter("16k")(hit_track(s)[None])[0] for s in range(2)]
    vae = build_trainable_vae(VAETrainingConfig(embed_dim=8, hidden_dim=8), mel_statistics(mels))
    with torch.no_grad():  # make the raw rows deliberately unequal in scale
        for module in vae.modules():
            if hasattr(module, "parametrizations"):
                module.parametrizations.weight.original.mul_(torch.rand(()) * 2 + 0.5)
    state = export_raw_state_dict(vae)
    assert detect_weight_form(state) == "raw"
    loaded = load_vae(state)
    z = torch.randn(1, 8, 20)
    with torch.no_grad():
        expected = vae.decode(z)
    assert torch.allclose(loaded.decode(z), expected, atol=1e-4, rtol=1e-4)


def test_training_reduces_reconstruction_error(tmp_path):
    waves = [hit_track(s) for s in range(4)]
    config = VAETrainingConfig(embed_dim=8, hidden_dim=8, crop_frames=32, batch_size=4, steps=80,
                               log_every=10, lr=3e-3)
    path = train_vae(waves, config, tmp_path, log=lambda _: None)
    error = __import__("json").loads((tmp_path / "vae_training.json").read_text())["reconstruction_error"]
    assert error["after"] < 0.8 * error["before"], error
    vae = load_vae(torch.load(path, weights_only=True))
    mel = MelConverter("16k")(waves[0][None])
    even = mel[..., : mel.shape[-1] // 2 * 2]  # the VAE halves the time axis once
    assert vae.decode(vae.encode(even).mean).shape == even.shape
