"""Flow-network training: one process, or one per device under torchrun.

What is specific to the network lives here (dataset checks, fresh-weight initialisation, latent
statistics, bf16/deterministic-attention forward, the flow-matching step). The shared machinery —
DDP, data order, per-(seed, step, rank) noise generators, EMA, checkpoints, exact resume — is
training/driver.py; its module doc states the reproducibility contract. Every step draws posterior
ε, x0, t and the dropout coins from the step generator (flow_loss.draw_step_noise).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..models.checkpoint_io import read_state_dict
from ..models.mmaudio import MMAudioNetwork, load_network_weights
from .config import TrainConfig
from .driver import TrainingTask, lr_factor, prepare_run, run_training  # noqa: F401 (lr_factor: kept importable here)
from .flow_loss import FlowMatchingObjective, draw_step_noise
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
    state, config, ctx = prepare_run(run_dir, config, TrainConfig, resume=resume, device=device)
    dataset = ShardDataset(feature_dir)
    check_dataset(config, dataset)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            config.save(run_dir / "config.json")

    torch.manual_seed(config.seed)  # identical initial weights on every rank
    net = MMAudioNetwork(config.network_config())
    if state is not None:  # the weights themselves are restored by run_training
        stats = state["latent_stats"]
    elif config.init_weights:
        load_network_weights(net, read_state_dict(config.init_weights, "init_weights"))
        stats = {"mean": net.latent_mean.flatten().tolist(), "std": net.latent_std.flatten().tolist()}
    else:
        mean, std = dataset.latent_statistics()
        initialise_new_network(net, dataset, (mean, std))
        stats = {"mean": mean.tolist(), "std": std.tolist()}
    torch.manual_seed(config.seed + ctx.rank)  # per-rank global RNG for anything outside the step noise
    if ctx.is_main and not resume:
        (run_dir / "latent_stats.json").write_text(json.dumps(stats))

    seq = net.config
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

    def step_loss(model, batch, generator, step) -> torch.Tensor:
        noise = draw_step_noise(generator, config.batch_size, seq.latent_seq_len, seq.latent_dim,
                                config.video_dropout, config.text_dropout)
        noise.drop_text |= ~batch["has_text"]  # captionless clips always train as text-free
        noise = noise.to(ctx.device)
        tensors = [batch[k].to(ctx.device) for k in ("latent_mean", "latent_std", "clip_f", "sync_f", "text_f")]
        with forward_context():
            return model(*tensors, noise)

    # kind stays unset: network checkpoints predate the field (export and embedded recipes read them).
    task = TrainingTask(kind=None, config=config, trained=net, objective=FlowMatchingObjective(net),
                        num_samples=len(dataset), step_loss=step_loss, dataset=dataset,
                        checkpoint_extra={"latent_stats": stats})
    return run_training(task, ctx, run_dir, state=state, stop_at=stop_at)
