"""The shared training driver: one process, or one per device under torchrun (torch.distributed + DDP).

A trainer builds its modules and data, describes them as a `TrainingTask`, and hands it over:

    state, config, ctx = prepare_run(run_dir, config, MyTrainConfig, resume=resume, device=device)
    ...  # load data, build the frozen parts and the trained module (torch.manual_seed(config.seed) first,
         # so every rank starts from the same weights), write run_dir/config.json on a new run
    task = TrainingTask(kind="my_kind", config=config, trained=module, objective=objective,
                        num_samples=len(dataset), step_loss=step_loss, dataset=dataset,
                        checkpoint_extra={"my_config": json.dumps(module.config.to_dict())})
    return run_training(task, ctx, run_dir, state=state, stop_at=stop_at)

- `config` needs: seed, batch_size, steps, lr, betas, weight_decay, warmup_steps, lr_schedule,
  min_lr_ratio, grad_clip, ema_decay, checkpoint_every, log_every, num_workers, deterministic,
  to_dict()/from_dict().
- `trained` is what is optimised (its parameters with requires_grad), EMA-averaged and checkpointed
  (under `weights_key`); on resume the driver loads it from the checkpoint. `objective` is the
  module DDP wraps; it contains `trained` and any frozen parts, and the driver moves it to the device.
- `step_loss(model, batch, generator, step) -> loss`: one step's scalar loss. `model` is the
  (DDP-wrapped) objective — call it, not `objective`, so gradients are all-reduced. `batch` is the
  collated DataLoader batch of `dataset` rows when `dataset` is given, else this rank's list of
  `batch_size` sample indices (for trainers that hold their features as tensors). `generator` is
  the step's CPU generator, seeded by (seed, step, rank): draw every random thing of the step from
  it, in a fixed order (append new draws after the existing ones, never in between).
- `sample_ids` maps the sampler's 0..num_samples-1 to dataset rows (e.g. only clips with a reference).
- Buffers are neither broadcast by DDP (broadcast_buffers=False) nor updated by the EMA (it tracks
  parameters only): prefer LayerNorm/GroupNorm to BatchNorm in a trained module.

Reproducibility contract (what makes a resume bit-identical to an uninterrupted run on the same
world size and device type):
- data order: per epoch, DistributedSampler(shuffle, seed=config.seed).set_epoch(epoch), split
  into full batches; a checkpoint stores (epoch, batches consumed) and resuming skips exactly those;
- randomness: per-(seed, step, rank) step generators (flow_loss.step_generator);
- state: trained weights, EMA, optimizer, scheduler, loss-window accumulator and all ranks' RNG states.

Run folder: config.json (the trainer's), log.jsonl (one line per `log_every` steps: mean loss of the
window, last loss, lr, grad norm, epoch, elapsed seconds), checkpoint.pt (every `checkpoint_every`
steps and at the end; format "foley-imitator-train-checkpoint", with `kind` so exports can check it),
final.json (step, epoch, position, world size, per-rank weight digests: equal ranks = DDP kept the
replicas in step).
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from .checkpoint import CHECKPOINT_NAME, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .ema import EMA
from .flow_loss import step_generator

LOG_NAME = "log.jsonl"
FINAL_NAME = "final.json"


# ------------------------------------------------------------------------------- processes
@dataclass
class Context:
    rank: int
    world_size: int
    device: torch.device
    distributed: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def make_deterministic() -> None:
    """Bit-reproducible CUDA kernels (cuBLAS workspace, no atomics-based backward, no autotune).

    Must run before the first CUDA op: cuBLAS reads its workspace setting once.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def setup_context(device: str = "auto", deterministic: bool = True) -> Context:
    """Join the process group when launched by torchrun (WORLD_SIZE etc. in the environment)."""
    if deterministic:
        make_deterministic()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    return Context(rank, world, dev, distributed)


def end_process_group() -> None:
    """Destroy the default process group; call it only after dropping every DDP wrapper.

    A DDP wrapper alive at this point would hold the last reference to the gloo group, and its
    Reducer's destructor joins gloo's worker threads while holding the GIL. A worker still
    releasing a finished collective's tensors needs the GIL, so both wait forever: the rare hang
    of the 2-process runs (py-spy on a hung rank: ~ProcessGroupGloo joining under
    ~Reducer, a worker in ~AsyncAllgatherWork waiting for the GIL). Destroyed through the
    registry instead, the group's destructor releases the GIL first. The gc pass frees a wrapper
    kept alive only by a reference cycle, which would otherwise be collected at a random moment."""
    gc.collect()
    dist.destroy_process_group()


def all_gather(ctx: Context, value: Any) -> list[Any]:
    if not ctx.distributed:
        return [value]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, value)
    return out


def prepare_run(run_dir: str | Path, config: Any, config_cls: type, *, resume: bool, device: str = "auto",
                label: str = "run", mismatch: str = "--resume: the given config differs from the run's; "
                                                  "omit --config") -> tuple[Optional[dict], Any, Context]:
    """The shared preamble: (checkpoint or None, the config to use, process context).

    On resume the run's saved config is used and a given one must equal it; the world size must
    be the run's."""
    state = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME) if resume else None
    if state is not None:
        saved = config_cls.from_dict(state["config"])
        if config is not None and config.to_dict() != saved.to_dict():
            raise ValueError(mismatch)
        config = saved
    elif config is None:
        raise ValueError(f"a new {label} needs --config")
    ctx = setup_context(device, deterministic=config.deterministic)
    if state is not None and state["world_size"] != ctx.world_size:
        raise ValueError(f"the run was made with {state['world_size']} processes; resume with the same")
    return state, config, ctx


# -------------------------------------------------------------------------- data and schedule
def lr_factor(config: Any, step: int) -> float:
    """Linear warmup over warmup_steps, then constant or cosine down to min_lr_ratio."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return 1.0
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def epoch_batches(dataset_len: int, ctx: Context, config: Any, epoch: int) -> list[int]:
    """This rank's sample indices for `epoch`, cut to whole batches (same count on every rank)."""
    sampler = DistributedSampler(range(dataset_len), num_replicas=ctx.world_size, rank=ctx.rank,
                                 shuffle=True, seed=config.seed, drop_last=True)
    sampler.set_epoch(epoch)
    indices = list(sampler)
    return indices[: len(indices) // config.batch_size * config.batch_size]


def weights_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def truncate_log(path: Path, last_step: int) -> None:
    """Drop entries written after the checkpoint we resume from (they will be written again)."""
    if path.is_file():
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= last_step]
        path.write_text("".join(line + "\n" for line in kept))


# ---------------------------------------------------------------------------------- driver
StepLoss = Callable[[nn.Module, Any, torch.Generator, int], torch.Tensor]


@dataclass
class TrainingTask:
    kind: Optional[str]  # stored in the checkpoint (exports check it); None: not stored
    config: Any  # see the module doc for the fields the driver reads
    trained: nn.Module  # optimised, EMA-averaged, checkpointed
    objective: nn.Module  # what DDP wraps (contains `trained`)
    num_samples: int  # what the DistributedSampler shuffles
    step_loss: StepLoss
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)
    weights_key: str = "model"  # checkpoint and final.json key of `trained`'s weights
    dataset: Optional[Dataset] = None  # given: step_loss gets collated batches of its rows
    sample_ids: Optional[Sequence[int]] = None  # sampler index → dataset row (default: the same)
    samples_name: str = "clips"  # for the "too few samples" message


def run_training(task: TrainingTask, ctx: Context, run_dir: str | Path, *, state: Optional[dict] = None,
                 stop_at: Optional[int] = None) -> dict[str, Any]:
    """Train (or continue from `state`, a checkpoint) up to config.steps or `stop_at`; returns the
    summary written to RUNDIR/final.json. `state` is emptied once restored (frees its memory)."""
    config, trained, run_dir = task.config, task.trained, Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    if state is not None:
        trained.load_state_dict(state[task.weights_key])
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    task.objective.to(ctx.device)
    ema = EMA(trained, config.ema_decay)
    model = (DistributedDataParallel(task.objective, device_ids=[ctx.device] if ctx.device.type == "cuda" else None,
                                     broadcast_buffers=False) if ctx.distributed else task.objective)
    trainable = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
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
        state.clear()
    elif ctx.is_main:
        (run_dir / LOG_NAME).write_text("")

    end = config.steps if stop_at is None else min(config.steps, stop_at)
    batch_size = config.batch_size
    batches_per_epoch = len(epoch_batches(task.num_samples, ctx, config, 0)) // batch_size
    if batches_per_epoch == 0:
        raise ValueError(f"{task.num_samples} {task.samples_name} are fewer than batch_size × processes")

    def save() -> None:
        rng = all_gather(ctx, capture_rng_state())
        if ctx.is_main:
            kind = {} if task.kind is None else {"kind": task.kind}
            save_checkpoint(ckpt_path, {
                "config": config.to_dict(), **kind, "step": step, "epoch": epoch, "position": position,
                "world_size": ctx.world_size, task.weights_key: trained.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "loss_window": window, "rng": rng, **task.checkpoint_extra})
        if ctx.distributed:
            dist.barrier()

    started = time.time()
    while step < end:
        order = epoch_batches(task.num_samples, ctx, config, epoch)[position * batch_size:]
        if task.sample_ids is not None:
            order = [task.sample_ids[i] for i in order]
        if task.dataset is not None:
            batches = DataLoader(Subset(task.dataset, order), batch_size=batch_size, shuffle=False,
                                 num_workers=config.num_workers)
        else:
            batches = (order[first: first + batch_size] for first in range(0, len(order), batch_size))
        for batch in batches:
            loss = task.step_loss(model, batch, step_generator(config.seed, step, ctx.rank), step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
            optimizer.step()
            scheduler.step()
            ema.update(trained)
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

    digests = all_gather(ctx, {task.weights_key: weights_digest(trained), "ema": weights_digest(ema.shadow)})
    summary = {"step": step, "epoch": epoch, "position": position, "world_size": ctx.world_size,
               "rank_digests": digests}
    if ctx.is_main:
        (run_dir / FINAL_NAME).write_text(json.dumps(summary, indent=1))
    if ctx.distributed:
        dist.barrier()
        del model  # before the group goes: see end_process_group
        end_process_group()
    return summary
