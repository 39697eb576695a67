"""Training of AudioIM's prompt channel (models/prompt_channel.py) on a frozen backbone.

    python -m foley_core.training train-prompt-channel --features F --backbone NET.safetensors \
        --out channel.safetensors [--steps 300 --batch-size 16 --holdout 48]

AudioIM §2.1/§3.1: each training clip's VAE latent is split 3:5 — the first 3/8 of the window is
the prompt x_p (given to the channel, clean, with its mask), the rest is the target x_1 that is
noised and learned with the flow-matching loss. The loss covers the target span only (the prompt
span is given, not generated — as in the masked training of F5-TTS/Voicebox the paper follows).
The prompt is dropped with probability 0.1 (channel input and mask all zero), as the paper does
for classifier-free guidance. The noisy state covers the whole window, prompt span included
((1 - t)·x0 + t·x_p there), which is exactly what the training-free replacement feeds at sampling,
so "channel+replacement" sees the training distribution; "channel only" does too.

Video features over the prompt span are the learned empty ones, as at sampling (a reference
recording has no picture; sampling/latent_prompt.py lays the window out the same way).

Choice (documented): the backbone stays frozen and only the channel learns. The paper fine-tunes
all of MMAudio L-44k (lr 1e-5, batch 512, 800 steps); that is out of reach of a CPU budget, and
a frozen backbone keeps the channel a separate add-on that works with the official weights.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Optional

import torch
from torch.nn import functional as F

from ..errors import FoleyError
from ..models.prompt_channel import PromptChannel, PromptChannelConfig, masked_prompt, save_channel, split_3_5
from ..sampling.latent_prompt import plan_prompt_window
from .flow_loss import draw_step_noise, flow_target, step_generator
from .frozen_backbone import load_frozen_backbone
from .shards import ShardDataset


@dataclass
class PromptChannelTrainConfig:
    backbone: str = ""  # flow-network file (frozen)
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    prompt_dropout: float = 0.1  # AudioIM: 10 %
    video_dropout: float = 0.1
    text_dropout: float = 0.1
    holdout: int = 0  # the last `holdout` clips are not trained on (kept for measurements)
    seed: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        if not self.backbone:
            raise ValueError("set the backbone: the flow-network file the channel is trained against")
        for name in ("prompt_dropout", "video_dropout", "text_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        if min(self.steps, self.batch_size, self.log_every) < 1 or self.holdout < 0:
            raise ValueError("steps, batch_size, log_every must be >= 1 and holdout >= 0")


def prompt_span_features(net, clip_f: torch.Tensor, sync_f: torch.Tensor, n_prompt: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip/sync features with the prompt span's tokens set to the learned empty features.

    The empty-token counts come from latent_prompt.plan_prompt_window (at the clip's token rates),
    so they match what sampling puts in front of a target."""
    rates = SimpleNamespace(latent=net.latent_seq_len, clip=clip_f.shape[1], sync=sync_f.shape[1])
    window = plan_prompt_window(rates, n_prompt)  # reads only the three token counts
    clip_f, sync_f = clip_f.clone(), sync_f.clone()
    clip_f[:, :window.clip_prompt] = net.empty_clip_feat.to(clip_f)
    sync_f[:, :window.sync_prompt] = net.empty_sync_feat.to(sync_f)
    return clip_f, sync_f


def prompt_channel_loss(net, channel: PromptChannel, batch: dict[str, torch.Tensor], noise,
                        keep_prompt: torch.Tensor, n_prompt: int) -> torch.Tensor:
    """Flow-matching MSE on the target span, with the 3:5 prompt given through the channel."""
    x1 = net.normalize(batch["latent_mean"] + batch["latent_std"] * noise.posterior_eps)
    x_t, target = flow_target(noise.x0, x1, noise.t)
    clip_f, sync_f = prompt_span_features(net, batch["clip_f"], batch["sync_f"], n_prompt)
    video = noise.drop_video.view(-1, 1, 1)
    clip_f = torch.where(video, net.empty_clip_feat.to(clip_f).expand_as(clip_f), clip_f)
    sync_f = torch.where(video, net.empty_sync_feat.to(sync_f).expand_as(sync_f), sync_f)
    text_f = torch.where(noise.drop_text.view(-1, 1, 1),
                         net.empty_string_feat.to(batch["text_f"]).expand_as(batch["text_f"]), batch["text_f"])
    values, mask = masked_prompt(x1[:, :n_prompt], x1.shape[1], keep=keep_prompt)
    conditions = net.preprocess_conditions(clip_f, sync_f, text_f).with_extra_input(channel(values, mask))
    velocity = net.predict_flow(x_t, noise.t, conditions)
    return F.mse_loss(velocity[:, n_prompt:].float(), target[:, n_prompt:].float())


def backbone_info(path: Path, built) -> dict[str, Any]:
    cfg = built.network.config
    return {"file": path.name, "variant": built.variant, "mode": built.mode, "hidden_dim": cfg.hidden_dim,
            "latent_dim": cfg.latent_dim, "duration_s": built.trained_window_s}


def _batch(dataset: ShardDataset, indices: list[int]) -> dict[str, torch.Tensor]:
    rows = [dataset[i] for i in indices]
    return {k: torch.stack([r[k] for r in rows]) for k in ("latent_mean", "latent_std", "clip_f", "sync_f",
                                                           "text_f", "has_text")}


def train_prompt_channel(feature_dir: str | Path, config: PromptChannelTrainConfig, out_file: str | Path, *,
                         report: Callable[[str], None] = print, time_limit_s: Optional[float] = None
                         ) -> dict[str, Any]:
    """Train a channel on the frozen backbone; writes `out_file` (+ `<out>.log.jsonl`); returns a summary.

    Runs on the CPU (the channel is tiny; the backbone's forward/backward dominates)."""
    torch.manual_seed(config.seed)
    dataset = ShardDataset(feature_dir)
    backbone_path, built, net, seq = load_frozen_backbone(config.backbone, dataset, check_mode=False)
    n_prompt = split_3_5(seq["latent"])
    usable = len(dataset) - config.holdout
    if usable < config.batch_size:
        raise FoleyError(f"{usable} training clips (after holding out {config.holdout}) < batch size")
    channel = PromptChannel(PromptChannelConfig(width=net.config.hidden_dim, latent_dim=net.config.latent_dim,
                                                backbone=backbone_info(backbone_path, built))).train()
    optimizer = torch.optim.AdamW(channel.parameters(), lr=config.lr, weight_decay=0.0)
    order_gen = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    log_path = Path(str(out_file) + ".log.jsonl")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    started, window, step = time.time(), [], 0
    for step in range(1, config.steps + 1):
        if len(order) < config.batch_size:
            order += torch.randperm(usable, generator=order_gen).tolist()
        indices, order = order[:config.batch_size], order[config.batch_size:]
        batch = _batch(dataset, indices)
        generator = step_generator(config.seed, step, 0)
        noise = draw_step_noise(generator, config.batch_size, seq["latent"], net.config.latent_dim,
                                config.video_dropout, config.text_dropout)
        noise.drop_text |= ~batch["has_text"].bool()
        keep = torch.rand(config.batch_size, generator=generator) >= config.prompt_dropout
        loss = prompt_channel_loss(net, channel, batch, noise, keep, n_prompt)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.append(loss.item())
        if step % config.log_every == 0 or step == config.steps:
            entry = {"step": step, "loss": sum(window) / len(window), "elapsed_s": round(time.time() - started, 1)}
            with open(log_path, "a") as log:
                log.write(json.dumps(entry) + "\n")
            report(json.dumps(entry))
            window = []
            # Save as we go, so a time-boxed run always leaves a usable file.
            save_channel(channel, out_file, _training(config, step, n_prompt, seq, feature_dir))
        if time_limit_s is not None and time.time() - started > time_limit_s:
            break
    save_channel(channel, out_file, _training(config, step, n_prompt, seq, feature_dir))
    return {"steps": step, "n_prompt": n_prompt, "elapsed_s": round(time.time() - started, 1), "out": str(out_file)}


def _training(config: PromptChannelTrainConfig, step: int, n_prompt: int, seq: dict, feature_dir) -> dict:
    data = asdict(config)
    data["backbone"] = Path(config.backbone).name
    return {**data, "steps_done": step, "masking": "3:5", "prompt_latents": n_prompt,
            "window_latents": seq["latent"], "loss_span": "target", "backbone_frozen": True,
            "features": str(feature_dir)}
