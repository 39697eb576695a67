"""Training loop: one process, or one per device under torchrun (torch.distributed + DDP).

Reproducibility contract (what makes `--resume` bit-identical to an uninterrupted run on the
same world size and device type):
- data order: per epoch, DistributedSampler(shuffle, seed=config.seed).set_epoch(epoch), split
  into full batches; a checkpoint stores (epoch, batches consumed) and resuming skips exactly those;
- noise: every step draws posterior ε, x0, t and the dropout coins from a CPU generator seeded by
  (seed, step, rank) — see flow_loss.step_generator;
- state: model, EMA, optimizer, scheduler, loss-window accumulator and all ranks' RNG states.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from ..models.checkpoint_io import read_state_dict
from ..models.mmaudio import MMAudioNetwork, load_network_weights
from .checkpoint import (CHECKPOINT_NAME, capture_rng_state, load_checkpoint, restore_rng_state,
                         save_checkpoint)
from .config import TrainConfig
from .driver import FINAL_NAME, LOG_NAME, all_gather, epoch_batches, lr_factor, setup_context, truncate_log, \
    weights_digest
from .ema import EMA
from .flow_loss import FlowMatchingObjective, draw_step_noise, step_generator
from .shards import ShardDataset

EMPTY_FEATURE_INIT_STD = 0.02  # learned empty clip/sync features start small and random


def initialise_new_network(net: MMAudioNetwork, dataset: ShardDataset,
                           stats: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Fresh weights: DiT-style zero modulation/output (blocks start as identity), the dataset's
    latent statistics, small random empty video features and CLIP("") as empty_string_feat."""
    with torch.no_grad():
        for name, module in net.named_modules():
            if name.endswith("adaLN_modulation"):
                torch.nn.init.zeros_(module[-1].weight)
                torch.nn.init.zeros_(module[-1].bias)
        torch.nn.init.zeros_(net.final_layer.conv.weight)
        torch.nn.init.zeros_(net.final_layer.conv.bias)
        net.latent_mean.copy_(stats[0].view_as(net.latent_mean))
        net.latent_std.copy_(stats[1].view_as(net.latent_std))
        net.empty_clip_feat.normal_(0.0, EMPTY_FEATURE_INIT_STD)
        net.empty_sync_feat.normal_(0.0, EMPTY_FEATURE_INIT_STD)
        empty_text = dataset.empty_text_features()
        if empty_text is not None and empty_text.shape == net.empty_string_feat.shape:
            net.empty_string_feat.copy_(empty_text)


def check_dataset(config: TrainConfig, dataset: ShardDataset) -> None:
    net = config.network_config()
    if dataset.mode != config.mode or abs(dataset.duration_s - config.duration_s) > 1e-9:
        raise ValueError(f"features are {dataset.mode}/{dataset.duration_s:g} s but the config asks "
                         f"for {config.mode}/{config.duration_s:g} s")
    want = {"clip_f": [net.clip_seq_len, net.clip_dim], "sync_f": [net.sync_seq_len, net.sync_dim],
            "text_f": [net.text_seq_len, net.text_dim], "latent_mean": [net.latent_seq_len, net.latent_dim]}
    for key, shape in want.items():
        if dataset.shapes[key] != shape:
            raise ValueError(f"feature {key} has shape {dataset.shapes[key]}, the network needs {shape}")


def train(feature_dir: str | Path, config: TrainConfig | None, run_dir: str | Path, *,
          resume: bool = False, stop_at: int | None = None, device: str = "auto") -> dict[str, Any]:
    """Run (or continue) training; returns the final summary written to RUNDIR/final.json."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    state = load_checkpoint(ckpt_path) if resume else None
    wanted = TrainConfig.from_dict(state["config"]) if state is not None else config
    ctx = setup_context(device, deterministic=wanted is None or wanted.deterministic)
    if resume:
        saved = TrainConfig.from_dict(state["config"])
        if config is not None and config.to_dict() != saved.to_dict():
            raise ValueError("--resume: the given config differs from the run's; omit --config")
        config = saved
        if state["world_size"] != ctx.world_size:
            raise ValueError(f"the run was made with {state['world_size']} processes; resume with the same")
    elif config is None:
        raise ValueError("a new run needs --config")
    dataset = ShardDataset(feature_dir)
    check_dataset(config, dataset)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            config.save(run_dir / "config.json")

    torch.manual_seed(config.seed)  # identical initial weights on every rank
    net = MMAudioNetwork(config.network_config())
    if state is not None:
        net.load_state_dict(state["model"])
        stats = state["latent_stats"]
    elif config.init_weights:
        load_network_weights(net, read_state_dict(config.init_weights, "init_weights"))
        stats = {"mean": net.latent_mean.flatten().tolist(), "std": net.latent_std.flatten().tolist()}
    else:
        mean, std = dataset.latent_statistics()
        initialise_new_network(net, dataset, (mean, std))
        stats = {"mean": mean.tolist(), "std": std.tolist()}
    torch.manual_seed(config.seed + ctx.rank)  # per-rank global RNG for anything outside the step noise
    net.to(ctx.device)
    ema = EMA(net, config.ema_decay)
    objective = FlowMatchingObjective(net)
    model = (DistributedDataParallel(objective, device_ids=[ctx.device] if ctx.device.type == "cuda" else None,
                                     broadcast_buffers=False) if ctx.distributed else objective)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config, s))

    step = epoch = position = 0
    window = [0.0, 0]  # loss sum and count since the last log line
    if state is not None:
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, position = state["step"], state["epoch"], state["position"]
        window = list(state["loss_window"])
        restore_rng_state(state["rng"][ctx.rank])
        if ctx.is_main:
            truncate_log(run_dir / LOG_NAME, step)
    del state
    if ctx.is_main and not resume:
        (run_dir / "latent_stats.json").write_text(json.dumps(stats))
        (run_dir / LOG_NAME).write_text("")

    seq = net.config
    end = config.steps if stop_at is None else min(config.steps, stop_at)
    use_bf16 = config.precision == "bf16"
    # The fused CUDA attention backwards use atomics (non-deterministic); MMAudio's sequences are
    # short (< 600 tokens), so the plain math kernel costs little.
    math_attention = config.deterministic and ctx.device.type == "cuda"

    def forward_context() -> ExitStack:  # fresh per step: sdpa_kernel is single-use
        stack = ExitStack()
        if use_bf16:
            stack.enter_context(torch.autocast(ctx.device.type, dtype=torch.bfloat16))
        if math_attention:
            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        return stack

    batches_per_epoch = len(epoch_batches(len(dataset), ctx, config, 0)) // config.batch_size
    if batches_per_epoch == 0:
        raise ValueError(f"{len(dataset)} clips are fewer than batch_size × processes")

    def save() -> None:
        rng = all_gather(ctx, capture_rng_state())
        if ctx.is_main:
            save_checkpoint(ckpt_path, {
                "config": config.to_dict(), "step": step, "epoch": epoch, "position": position,
                "world_size": ctx.world_size, "model": net.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "loss_window": window, "latent_stats": stats, "rng": rng})
        if ctx.distributed:
            dist.barrier()

    started = time.time()
    while step < end:
        indices = epoch_batches(len(dataset), ctx, config, epoch)[position * config.batch_size:]
        loader = DataLoader(Subset(dataset, indices), batch_size=config.batch_size, shuffle=False,
                            num_workers=config.num_workers)
        for batch in loader:
            noise = draw_step_noise(step_generator(config.seed, step, ctx.rank), config.batch_size,
                                    seq.latent_seq_len, seq.latent_dim, config.video_dropout,
                                    config.text_dropout)
            noise.drop_text |= ~batch["has_text"]  # captionless clips always train as text-free
            noise = noise.to(ctx.device)
            tensors = [batch[k].to(ctx.device) for k in ("latent_mean", "latent_std", "clip_f", "sync_f", "text_f")]
            with forward_context():
                loss = model(*tensors, noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
            optimizer.step()
            scheduler.step()
            ema.update(net)
            step, position = step + 1, position + 1
            if position >= batches_per_epoch:
                epoch, position = epoch + 1, 0

            reported = loss.detach().float()
            if ctx.distributed:
                dist.all_reduce(reported)
                reported /= ctx.world_size
            window = [window[0] + reported.item(), window[1] + 1]
            if step % config.log_every == 0 and ctx.is_main:
                entry = {"step": step, "loss": window[0] / window[1], "last_loss": reported.item(),
                         "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                         "epoch": epoch, "elapsed_s": round(time.time() - started, 3)}
                with open(run_dir / LOG_NAME, "a") as log:
                    log.write(json.dumps(entry) + "\n")
            if step % config.log_every == 0:
                window = [0.0, 0]
            if step % config.checkpoint_every == 0 or step == end:
                save()
            if step >= end or position == 0:
                break  # a new epoch re-cuts the order; the end stops the run

    digests = all_gather(ctx, {"model": weights_digest(net), "ema": weights_digest(ema.shadow)})
    summary = {"step": step, "epoch": epoch, "position": position, "world_size": ctx.world_size,
               "rank_digests": digests}
    if ctx.is_main:
        (run_dir / FINAL_NAME).write_text(json.dumps(summary, indent=1))
    if ctx.distributed:
        dist.barrier()
        dist.destroy_process_group()
    return summary
