"""Train a small mel VAE in the official MMAudio layout (for the embedded model set).

EDM2-style forced weight normalisation: during training every conv uses the MP-normalised
version of a free "raw" weight (the same normalisation the loader applies to official files), so
the exported file holds raw weights exactly like `v1-16.pth` and loads through the same path.
Loss: L1 + L2 on the normalised mel, plus a small KL term to keep the latent Gaussian-like.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models.mel import MelConverter
from ..models.vae import MelVAE, VAEConfig, detect_weight_form, normalize_mp_weight


@dataclass
class VAETrainingConfig:
    mode: str = "16k"
    embed_dim: int = 20
    hidden_dim: int = 16
    crop_frames: int = 256  # mel frames per training crop (must be even)
    batch_size: int = 16
    steps: int = 3000
    lr: float = 2e-3
    kl_weight: float = 1e-4
    seed: int = 0
    log_every: int = 100


class _MPNormalized(nn.Module):
    """Parametrisation: the conv sees exactly what the loader makes of a raw weight."""

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return normalize_mp_weight(raw)


def _conv_modules(vae: MelVAE):
    return [m for m in vae.modules() if isinstance(m, nn.Conv1d)]


def build_trainable_vae(config: VAETrainingConfig, mel_stats: tuple[torch.Tensor, torch.Tensor]) -> MelVAE:
    n_mels = 80 if config.mode == "16k" else 128
    vae = MelVAE(VAEConfig(n_mels=n_mels, embed_dim=config.embed_dim, hidden_dim=config.hidden_dim))
    vae.data_mean.copy_(mel_stats[0].view(1, -1, 1))
    vae.data_std.copy_(mel_stats[1].view(1, -1, 1))
    for conv in _conv_modules(vae):
        with torch.no_grad():  # raw EDM2 weights start with rows of norm ≈ sqrt(fan_in)
            conv.weight.normal_()
        parametrize.register_parametrization(conv, "weight", _MPNormalized())
    return vae


def export_raw_state_dict(vae: MelVAE) -> dict[str, torch.Tensor]:
    """Official key layout with RAW conv weights — the form the plugin's loader expects from
    `v1-*.pth`. The trained raw weights reproduce the model exactly; only if their row norms
    drifted so far that the loader would take them for baked weights are the rows rescaled to
    norm sqrt(fan_in) (which the normalisation nearly ignores: relative change ≈ 1e-4)."""
    exact = {}
    for name, tensor in vae.state_dict().items():
        exact[name.replace(".parametrizations.weight.original", ".weight")] = tensor.detach().clone().contiguous()
    if detect_weight_form(exact) == "raw":
        return exact
    rescaled = {}
    for name, tensor in exact.items():
        if name.startswith(("encoder.", "decoder.")) and tensor.dim() == 3:
            norm = torch.linalg.vector_norm(tensor.flatten(1), dim=1).view(-1, 1, 1)
            tensor = tensor / norm * math.sqrt(tensor[0].numel())
        rescaled[name] = tensor
    return rescaled


def mel_statistics(mels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    stacked = torch.cat([m.reshape(m.shape[-2], -1) for m in mels], dim=1)
    return stacked.mean(dim=1), stacked.std(dim=1).clamp_min(1e-3)


def _random_crops(mels: list[torch.Tensor], count: int, frames: int, generator) -> torch.Tensor:
    crops = []
    for _ in range(count):
        mel = mels[int(torch.randint(len(mels), (1,), generator=generator))]
        start = int(torch.randint(max(mel.shape[-1] - frames, 0) + 1, (1,), generator=generator))
        crop = mel[..., start:start + frames]
        if crop.shape[-1] < frames:  # pad short clips with their quietest value (silence)
            crop = torch.nn.functional.pad(crop, (0, frames - crop.shape[-1]), value=float(mel.min()))
        crops.append(crop)
    return torch.stack(crops)


@torch.no_grad()
def reconstruction_error(vae: MelVAE, mels: Sequence[torch.Tensor]) -> float:
    """Mean absolute error of mean-latent reconstructions of whole mels (normalised domain)."""
    errors = []
    for mel in mels:
        mel = mel[..., : mel.shape[-1] // 2 * 2][None]
        target = vae.normalize_mel(mel)
        errors.append(float((vae.decoder(vae.encoder(target).chunk(2, dim=1)[0]) - target).abs().mean()))
    return sum(errors) / len(errors)


def train_vae(waveforms: Sequence[torch.Tensor], config: VAETrainingConfig, out_dir: Path,
              log: Callable[[str], None] = print) -> Path:
    """waveforms: mono float tensors at the mode's sample rate. Writes out_dir/vae.pth (raw
    weights, official layout) and out_dir/vae_training.json; returns the .pth path."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    converter = MelConverter(config.mode)
    with torch.no_grad():
        mels = [converter(w.reshape(1, -1))[0] for w in waveforms]
    vae = build_trainable_vae(config, mel_statistics(mels))
    optimizer = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps,
                                                   pct_start=max(0.05, 3.0 / config.steps))
    history, started = [], time.monotonic()
    evaluation = {"before": reconstruction_error(vae, mels)}
    for step in range(1, config.steps + 1):
        target = vae.normalize_mel(_random_crops(mels, config.batch_size, config.crop_frames, generator))
        moments = vae.encoder(target)
        mean, logvar = moments.chunk(2, dim=1)
        logvar = logvar.clamp(-30, 20)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator)
        recon = vae.decoder(z)
        loss_rec = (recon - target).abs().mean() + ((recon - target) ** 2).mean()
        loss_kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        loss = loss_rec + config.kl_weight * loss_kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % config.log_every == 0 or step == config.steps:
            history.append({"step": step, "recon": loss_rec.item(), "kl": loss_kl.item(),
                            "seconds": round(time.monotonic() - started, 1)})
            log(f"[vae] step {step}/{config.steps} recon {history[-1]['recon']:.4f} kl {history[-1]['kl']:.3f}")
    evaluation["after"] = reconstruction_error(vae, mels)
    log(f"[vae] reconstruction error {evaluation['before']:.4f} -> {evaluation['after']:.4f}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "vae.pth"
    torch.save(export_raw_state_dict(vae), path)
    (out_dir / "vae_training.json").write_text(json.dumps({"config": asdict(config), "reconstruction_error": evaluation, "log": history}, indent=1))
    return path
