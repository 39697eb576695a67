"""TiVA layout adapter training (controls/layout_adapter.py) on a frozen backbone, on training/driver.py.

    python -m foley_core.training layouts --features F [--bands 5 --frame-rate 10.2]
    python -m foley_core.training train-layout-adapter --features F --config layout.json --out RUN
    python -m foley_core.training export-layout-adapter --run RUN --out layout_adapter.safetensors

`layouts` computes TiVA's audio layout (controls/layout.py) of every clip's own audio — decoded,
mono, resampled and cut exactly as `extract` prepared the audio the latents were encoded from —
into F/layouts.safetensors (clips × frames × bands).

Training: the backbone is frozen; only the adapter learns, with the unchanged flow-matching loss
and the layout's term added to the latent stream. Per sample (drawn from the step generator after
the network trainer's draws): with `layout_dropout` the layout is dropped — the adapter runs on
"no layout" tokens (all zero, presence flag 0), the case of a reference prompt's tokens at
sampling; with `uncond_dropout` video, text and layout are dropped together and the adapter adds
nothing, exactly CFG's unconditional branch at sampling (the plain backbone). With the backbone
frozen those rows carry no gradient; they are kept so the loss is measured on the sampler's mix.
The usual video/text dropouts apply. DDP, EMA, checkpoints and exact resume: training/driver.py.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F

from ..controls.layout import LAYOUT_BANDS, LAYOUT_FRAME_RATE, Layout, audio_layout
from ..controls.layout_adapter import (HIDDEN, LayoutAdapter, LayoutAdapterConfig, latent_rate_of, layout_tokens,
                                       save_layout_adapter)
from ..errors import FoleyError
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .config import OptimRunConfig
from .cli_args import add_export_command, add_run_command, report_stop
from .clip_targets import read_clip_targets, write_clip_targets
from .driver import TrainingTask, prepare_run, run_training
from .flow_loss import FLOW_INPUTS, FlowMatchingObjective, flow_target
from .frozen_backbone import draw_control_step, load_frozen_backbone
from .prompt_channel import backbone_info
from .shards import ShardDataset

LAYOUTS_NAME = "layouts.safetensors"
KIND = "layout_adapter"
COMMANDS = ("layouts", "train-layout-adapter", "export-layout-adapter")


# --------------------------------------------------------------------------------- layouts
def extract_layouts(feature_dir: str | Path, *, bands: int = LAYOUT_BANDS, frame_rate: float = LAYOUT_FRAME_RATE,
                    report: Callable[[str], None] = print) -> dict[str, Any]:
    """Write FEATURES/layouts.safetensors (see the module doc); returns its metadata."""
    return write_clip_targets(feature_dir, LAYOUTS_NAME, "layout",
                              lambda audio, rate: audio_layout(audio, rate, bands=bands, frame_rate=frame_rate).values,
                              {"frame_rate": float(frame_rate), "bands": int(bands)}, report)


def load_layouts(feature_dir: str | Path) -> tuple[torch.Tensor, dict[str, Any]]:
    return read_clip_targets(feature_dir, LAYOUTS_NAME, "layout", "layouts")


def layout_features(layouts: torch.Tensor, frame_rate: float, n_tokens: int, latent_rate: float) -> torch.Tensor:
    """(clips, N, C + 1) adapter tokens of whole training clips."""
    return torch.stack([torch.from_numpy(layout_tokens(Layout(v.numpy(), frame_rate), n_tokens, latent_rate)[0])
                        for v in layouts])


# ---------------------------------------------------------------------------------- config
@dataclass
class LayoutAdapterTrainConfig(OptimRunConfig):
    config_name = "layout-adapter config"

    backbone: str = ""  # flow-network file (frozen)
    hidden: int = HIDDEN
    layout_dropout: float = 0.1
    video_dropout: float = 0.1
    text_dropout: float = 0.1
    uncond_dropout: float = 0.1  # layout, video and text dropped together (CFG's unconditional branch)
    holdout: int = 0  # the last `holdout` clips are not trained on (kept for measurements)
    # shared fields (OptimRunConfig) with this trainer's defaults
    warmup_steps: int = 20

    probabilities = ("layout_dropout", "video_dropout", "text_dropout", "uncond_dropout")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.backbone:
            raise ValueError("set 'backbone': the flow-network file the layout adapter is trained against")
        if self.hidden < 1 or self.holdout < 0:
            raise ValueError("hidden must be >= 1 and holdout >= 0")


# ------------------------------------------------------------------------------- objective
class LayoutAdapterObjective(nn.Module):
    """Flow-matching loss of the frozen backbone with the adapter's term in the latent stream."""

    def __init__(self, net, adapter: LayoutAdapter):
        super().__init__()
        self.net, self.adapter = net, adapter
        self._dropper = FlowMatchingObjective(net)

    def forward(self, latent_mean, latent_std, clip_f, sync_f, text_f, noise, tokens, keep, uncond) -> torch.Tensor:
        """tokens (B, N, C + 1); keep (B,) bool: False = no layout; uncond (B,) bool: no adapter term."""
        net = self.net
        x1 = net.normalize(latent_mean + latent_std * noise.posterior_eps)
        x_t, target = flow_target(noise.x0, x1, noise.t)
        clip_f, sync_f, text_f = self._dropper.dropped_conditions(clip_f, sync_f, text_f,
                                                                  noise.drop_video, noise.drop_text)
        term = self.adapter(tokens * keep.to(tokens.dtype).view(-1, 1, 1))
        term = term * (~uncond).to(term.dtype).view(-1, 1, 1)
        conditions = net.preprocess_conditions(clip_f, sync_f, text_f).with_extra_input(term)
        return F.mse_loss(net.predict_flow(x_t, noise.t, conditions).float(), target.float())


def train_layout_adapter(feature_dir: str | Path, config: Optional[LayoutAdapterTrainConfig], run_dir: str | Path,
                         *, resume: bool = False, stop_at: Optional[int] = None, device: str = "auto") -> dict[str, Any]:
    """Train (or continue) a layout adapter; returns the summary written to RUNDIR/final.json."""
    run_dir = Path(run_dir)
    state, config, ctx = prepare_run(run_dir, config, LayoutAdapterTrainConfig, resume=resume, device=device,
                                     label="layout-adapter run")
    dataset = ShardDataset(feature_dir)
    layouts, meta = load_layouts(feature_dir)
    if meta["clips"] != [c["name"] for c in dataset.clips]:
        raise ValueError("layouts.safetensors does not belong to this feature folder; re-run `layouts`")
    backbone_path, built, net, seq = load_frozen_backbone(config.backbone, dataset)
    usable = len(dataset) - config.holdout
    if usable < config.batch_size * ctx.world_size:
        raise FoleyError(f"{usable} training clips (after holding out {config.holdout}) < batch size × processes")
    tokens = layout_features(layouts, meta["frame_rate"], seq["latent"], latent_rate_of(dataset.mode, "training"))

    info = {**backbone_info(backbone_path, built), "mode": built.mode or dataset.mode}
    adapter_config = LayoutAdapterConfig(width=net.config.hidden_dim, latent_dim=net.config.latent_dim,
                                         bands=int(meta["bands"]), hidden=config.hidden, backbone=info)
    torch.manual_seed(config.seed)  # identical initialisation on every rank
    adapter = LayoutAdapter(adapter_config).train()
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    row_of = {c["name"]: i for i, c in enumerate(dataset.clips)}

    def step_loss(model, batch, generator, step) -> torch.Tensor:
        noise, keep, uncond = draw_control_step(generator, config, batch["has_text"], seq["latent"],
                                                net.config.latent_dim, config.layout_dropout)
        rows = torch.tensor([row_of[name] for name in batch["name"]])
        noise = noise.to(ctx.device)
        inputs = [batch[k].to(ctx.device) for k in FLOW_INPUTS]
        return model(*inputs, noise, tokens[rows].to(ctx.device), keep.to(ctx.device), uncond.to(ctx.device))

    task = TrainingTask(kind=KIND, config=config, trained=adapter, objective=LayoutAdapterObjective(net, adapter),
                        num_samples=usable, step_loss=step_loss, dataset=dataset, weights_key="adapter",
                        checkpoint_extra={"adapter_config": json.dumps(adapter_config.to_dict()),
                                          "features": str(feature_dir)})
    return run_training(task, ctx, run_dir, state=state, stop_at=stop_at)


def export_layout_adapter(run_dir: str | Path, out_file: str | Path, *, use_ema: bool = True) -> Path:
    """Write the run's (EMA) adapter as .safetensors + metadata (kind, bands, backbone it was trained against)."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    if ckpt.get("kind") != KIND:
        raise ValueError(f"{run_dir} is not a layout-adapter run (checkpoint kind {ckpt.get('kind')!r})")
    config = LayoutAdapterTrainConfig.from_dict(ckpt["config"])
    adapter = LayoutAdapter(LayoutAdapterConfig.from_dict(json.loads(ckpt["adapter_config"])))
    adapter.load_state_dict(ckpt["ema"] if use_ema else ckpt["adapter"])
    training = {"step": ckpt["step"], "weights": "ema" if use_ema else "model", "backbone_frozen": True,
                **{k: getattr(config, k) for k in ("layout_dropout", "video_dropout", "text_dropout",
                                                    "uncond_dropout", "holdout", "lr", "batch_size", "seed")}}
    return save_layout_adapter(adapter, out_file, training)


# ------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m foley_core.training", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    la = sub.add_parser("layouts", help="TiVA audio layout of every clip's audio (layout-adapter training)")
    la.add_argument("--features", required=True, help="feature folder from `extract` (written into)")
    la.add_argument("--bands", type=int, default=LAYOUT_BANDS)
    la.add_argument("--frame-rate", type=float, default=LAYOUT_FRAME_RATE)
    add_run_command(sub, "train-layout-adapter", "train a layout adapter on a frozen backbone",
                    "feature folder with layouts.safetensors", "LayoutAdapterTrainConfig")
    add_export_command(sub, "export-layout-adapter", "foley_layout_adapters")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "layouts":
        extract_layouts(args.features, bands=args.bands, frame_rate=args.frame_rate)
    elif args.command == "train-layout-adapter":
        config = (LayoutAdapterTrainConfig.from_dict(json.loads(Path(args.config).read_text()))
                  if args.config else None)
        summary = train_layout_adapter(args.features, config, args.out, resume=args.resume,
                                       stop_at=args.stop_at, device=args.device)
        report_stop(summary, args.out)
    else:
        print(f"wrote {export_layout_adapter(args.run, args.out, use_ema=not args.raw)}")
    return 0
