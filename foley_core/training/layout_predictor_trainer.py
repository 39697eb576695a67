"""Layout-predictor training (models/layout_predictor.py, TiVA's 𝒯): extract features, train (L2), export.

    python -m foley_core.training layout-predictor extract --clips DIR --out FEATURES [--clip CLIP] [--duration 4]
    python -m foley_core.training layout-predictor train --features FEATURES --out RUN [--steps N ...] [--resume]
    python -m foley_core.training layout-predictor export --run RUN --out predictor.safetensors [--raw]
    python -m foley_core.training layout-predictor joint|joint-export|joint-eval ...   (training/layout_joint.py)
    (multi-process: `torchrun --nproc_per_node N -m foley_core.training layout-predictor train ...`)

`extract` reads every video of DIR with its sound (a sibling .wav of the same stem, else the
video's own track — the RMS-Mapper trainer's rule). Frames: the plugin's own CLIP stream
(media.sample_video: 8 fps, 384 px squash, what Foley Load Video hands the node); features: the
CLIP's CLS + grid-pooled patch tokens of TiVA's layers (layout_predictor.clip_layer_features; the
embedded CLIP by default). Target: controls/layout.audio_layout of the first `duration` seconds.

`train`: TiVA's separate stage (Eq. 8): mean squared error between predicted and true layouts, on
the shared driver (training/driver.py: DDP, EMA, checkpoints, bit-exact resume). The last
`val_clips` clips are held out; their layout L2 (mean squared error per cell) of the raw and EMA
weights is written to RUN/validation.json at the end.

`joint` (TiVA's joint stage, Eq. 10, training/layout_joint.py): the L2-stage predictor and a
layout adapter trained together on the frozen backbone, the generator's flow loss taken with the
*predicted* layout (+ an L2 anchor); `joint-export` writes the pair, `joint-eval` measures a pair.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from ..controls.layout import LAYOUT_BANDS, LAYOUT_FRAME_RATE, audio_layout, layout_frames
from ..errors import FoleyError
from ..models.layout_predictor import (FEATURE_VERSION, FRAME_RATE, LayoutPredictor, LayoutPredictorConfig,
                                       clip_layer_features, clip_signature, frame_times, query_times,
                                       save_predictor, tiva_layers)
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .cli_args import report_stop
from .config import OptimRunConfig
from .driver import TrainingTask, prepare_run, run_training
from .rms_mapper_trainer import VIDEO_SUFFIXES, _clip_audio

FEATURES_NAME = "layout_predictor_features.safetensors"
KIND = "layout_predictor"
DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "embedded_models" / "foley_embedded_clip.safetensors"


# ------------------------------------------------------------------------------ extraction
def clip_stream_frames(path: Path, duration_s: float) -> torch.Tensor:
    """uint8 [round(8·duration), 3, 384, 384]: the clip's first seconds as the node's CLIP stream."""
    from ..media.frame_sampling import CLIP_STREAM, sample_video

    return sample_video(str(path), 0.0, duration_s, streams=(CLIP_STREAM,)).clip_frames


def extract_features(clips_dir: str | Path, out_dir: str | Path, *, clip_path: str | Path = DEFAULT_CLIP,
                     duration_s: float = 4.0, layers: Optional[list[int]] = None, grid: int = 3,
                     bands: int = LAYOUT_BANDS, layout_rate: float = LAYOUT_FRAME_RATE,
                     limit: Optional[int] = None, report: Callable[[str], None] = print) -> dict[str, Any]:
    """Write OUT/layout_predictor_features.safetensors (cls, patches, layouts); returns its meta."""
    from ..models.builders import build_clip

    clips_dir, out_dir, clip_path = Path(clips_dir), Path(out_dir), Path(clip_path)
    videos = sorted(p for p in clips_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)[:limit]
    if not videos:
        raise FoleyError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {clips_dir}")
    encoder = build_clip(clip_path)
    layers = list(layers) if layers else list(tiva_layers(encoder.vision_layers))
    n_frames, n_out = int(round(FRAME_RATE * duration_s)), layout_frames(duration_s, layout_rate)
    cls_rows, patch_rows, layouts, names, seeds, skipped = [], [], [], [], [], []
    started = time.time()
    for number, path in enumerate(videos):
        wave, rate = _clip_audio(path)
        frames = clip_stream_frames(path, duration_s)
        if wave.shape[-1] < duration_s * rate - 1 or frames.shape[0] < n_frames:
            skipped.append(path.name)
            continue
        target = audio_layout(wave[..., : int(round(duration_s * rate))], rate, bands=bands, frame_rate=layout_rate)
        cls, patches = clip_layer_features(encoder, frames[:n_frames], layers, grid)
        cls_rows.append(cls.half())
        patch_rows.append(patches.half())
        layouts.append(torch.from_numpy(target.values[:n_out]).float())
        names.append(path.name)
        meta_file = path.with_suffix(".json")
        seeds.append(json.loads(meta_file.read_text()).get("seed") if meta_file.is_file() else None)
        if (number + 1) % 25 == 0:
            report(f"extract: {number + 1}/{len(videos)} clips, {time.time() - started:.0f} s")
    if not names:
        raise FoleyError(f"no clip in {clips_dir} is at least {duration_s} s long with sound")
    meta = {"duration_s": duration_s, "frame_rate": FRAME_RATE, "layout_rate": layout_rate, "bands": bands,
            "layers": layers, "grid": grid, "clip_file": clip_path.name, "clip_signature": clip_signature(encoder),
            "clip_width": int(encoder.model.visual.conv1.weight.shape[0]), "feature_version": FEATURE_VERSION,
            "clips": names, "seeds": seeds, "skipped": skipped, "source": str(clips_dir)}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (FEATURES_NAME + ".tmp")
    save_file({"cls": torch.stack(cls_rows).contiguous(), "patches": torch.stack(patch_rows).contiguous(),
               "layouts": torch.stack(layouts).contiguous()}, str(tmp),
              metadata={"layout_predictor_features": json.dumps(meta)})
    tmp.replace(out_dir / FEATURES_NAME)
    report(f"wrote {out_dir / FEATURES_NAME}: {len(names)} clips ({len(skipped)} skipped), CLIP "
           f"{clip_path.name} layers {layers}, {time.time() - started:.0f} s")
    return meta


def load_features(feature_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(cls [N, T, F], patches [N, T, P, F], layouts [N, M, C], meta), features as float32."""
    path = Path(feature_dir) / FEATURES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `layout-predictor extract` first")
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        meta = json.loads(handle.metadata()["layout_predictor_features"])
        return (handle.get_tensor("cls").float(), handle.get_tensor("patches").float(),
                handle.get_tensor("layouts").float(), meta)


# ---------------------------------------------------------------------------------- config
@dataclass
class LayoutTrainConfig(OptimRunConfig):
    config_name = "layout-predictor training"

    # shared fields (OptimRunConfig) with this trainer's defaults
    steps: int = 1500
    batch_size: int = 16
    weight_decay: float = 1e-2
    # own fields
    val_clips: int = 32
    width: int = 64
    heads: int = 4
    encoder_blocks: int = 1
    decoder_blocks: int = 2
    ffn_mult: int = 2
    dropout: float = 0.1
    window_s: float = 0.5
    frame_deltas: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.val_clips < 0:
            raise ValueError("val_clips must be >= 0")


def build_predictor(config: LayoutTrainConfig, meta: dict[str, Any], cls: torch.Tensor, patches: torch.Tensor,
                    layouts: torch.Tensor) -> LayoutPredictor:
    predictor = LayoutPredictor(LayoutPredictorConfig(
        clip_file=meta["clip_file"], clip_signature=meta["clip_signature"], layers=meta["layers"],
        clip_width=int(meta["clip_width"]), grid=int(meta["grid"]), frame_rate=float(meta["frame_rate"]),
        bands=int(meta["bands"]), layout_rate=float(meta["layout_rate"]), width=config.width, heads=config.heads,
        encoder_blocks=config.encoder_blocks, decoder_blocks=config.decoder_blocks, ffn_mult=config.ffn_mult,
        dropout=config.dropout, window_s=config.window_s, frame_deltas=config.frame_deltas, context_s=float(meta["duration_s"]),
        feature_version=meta["feature_version"]))
    predictor.set_statistics(cls, patches, layouts)
    return predictor


def layout_l2(predictor: LayoutPredictor, cls: torch.Tensor, patches: torch.Tensor, layouts: torch.Tensor) -> float:
    """Mean squared error per layout cell (TiVA's L2(t_a, t_v)), predictions clamped to [0, 1]."""
    if cls.shape[0] == 0:
        return float("nan")
    cfg = predictor.config
    was_training = predictor.training
    predictor.eval()
    with torch.no_grad():
        pred = predictor(cls, patches, frame_times(cls.shape[1], cfg.frame_rate),
                         query_times(layouts.shape[1], cfg.layout_rate)).clamp(0, 1)
    predictor.train(was_training)
    return float(F.mse_loss(pred, layouts).item())


def train_predictor(feature_dir: str | Path, config: Optional[LayoutTrainConfig], run_dir: str | Path, *,
                    resume: bool = False, stop_at: Optional[int] = None, device: str = "auto",
                    report: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or continue) a predictor; returns the driver's summary plus the held-out L2."""
    run_dir = Path(run_dir)
    config = config if (config is not None or resume) else LayoutTrainConfig()
    state, config, ctx = prepare_run(run_dir, config, LayoutTrainConfig, resume=resume, device=device,
                                     label="layout-predictor run")
    if state is not None and state.get("kind") != KIND:
        raise ValueError(f"{run_dir / CHECKPOINT_NAME} is not a layout-predictor run")
    cls, patches, layouts, meta = load_features(feature_dir)
    n_val = min(config.val_clips, max(0, cls.shape[0] - config.batch_size * ctx.world_size))
    n_train = cls.shape[0] - n_val
    torch.manual_seed(config.seed)  # same initial weights on every rank
    predictor = build_predictor(config, meta, cls[:n_train], patches[:n_train], layouts[:n_train]).train()
    if ctx.is_main and state is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    times_f = frame_times(cls.shape[1], predictor.config.frame_rate)
    times_q = query_times(layouts.shape[1], predictor.config.layout_rate)

    def step_loss(model, indices, generator, step):
        rows = torch.as_tensor(indices)
        dev = next(predictor.parameters()).device
        pred = model(cls[rows].to(dev), patches[rows].to(dev), times_f, times_q)
        return F.mse_loss(pred, layouts[rows].to(dev))  # Eq. 8

    features = {k: v for k, v in meta.items() if k not in ("clips", "seeds", "skipped")}
    task = TrainingTask(kind=KIND, config=config, trained=predictor, objective=predictor, num_samples=n_train,
                        step_loss=step_loss, checkpoint_extra={
                            "predictor_config": json.dumps(predictor.config.to_dict()),
                            "features": json.dumps({**features, "seeds": meta.get("seeds", [])}),
                            "train_clips": n_train, "val_clips": n_val})
    started = time.time()
    summary = run_training(task, ctx, run_dir, state=state, stop_at=stop_at)
    if ctx.is_main:
        predictor.cpu()
        ema = LayoutPredictor(predictor.config)
        ema.load_state_dict(load_checkpoint(run_dir / CHECKPOINT_NAME)["ema"])
        val = {"step": summary["step"], "val_clips": n_val, "train_clips": n_train,
               "val_l2": layout_l2(predictor, cls[n_train:], patches[n_train:], layouts[n_train:]),
               "val_l2_ema": layout_l2(ema, cls[n_train:], patches[n_train:], layouts[n_train:]),
               "val_l2_mean_layout": float(F.mse_loss(layouts[:n_train].mean(0, keepdim=True).mean(1, keepdim=True)
                                                      .expand_as(layouts[n_train:]), layouts[n_train:]).item())
               if n_val else float("nan"),
               "seconds": round(time.time() - started, 1)}
        (run_dir / "validation.json").write_text(json.dumps(val, indent=1) + "\n")
        report(f"step {summary['step']}: held-out layout L2 {val['val_l2']:.4f} (EMA {val['val_l2_ema']:.4f}; "
               f"constant mean layout {val['val_l2_mean_layout']:.4f}) on {n_val} clips")
        summary.update(val)
    return summary


def export_predictor(run_dir: str | Path, out_file: str | Path, *, use_ema: bool = True) -> Path:
    """Write the run's (EMA) predictor as .safetensors with kind "foley_layout_predictor"."""
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
    if ckpt.get("kind") != KIND:
        raise ValueError(f"{run_dir} is not a layout-predictor run")
    predictor = LayoutPredictor(LayoutPredictorConfig.from_dict(json.loads(ckpt["predictor_config"])))
    predictor.load_state_dict(ckpt["ema"] if use_ema else ckpt["model"])
    config = LayoutTrainConfig.from_dict(ckpt["config"])
    validation = run_dir / "validation.json"
    training = {"stage": "L2 (TiVA Eq. 8)", "step": int(ckpt["step"]), "weights": "ema" if use_ema else "model",
                "train_clips": int(ckpt["train_clips"]), "val_clips": int(ckpt["val_clips"]),
                "batch_size": config.batch_size, "lr": config.lr, "seed": config.seed,
                "features": json.loads(ckpt["features"]),
                "validation": json.loads(validation.read_text()) if validation.is_file() else None}
    return save_predictor(predictor, out_file, training)


# ------------------------------------------------------------------------------------- CLI
def _flag(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1", "yes")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m foley_core.training layout-predictor",
                                     description="Train TiVA's audio-layout predictor (video → layout).")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="CLIP layer features + target layouts of a folder of clips")
    ex.add_argument("--clips", required=True, help="folder of videos (+ same-stem .wav, optional)")
    ex.add_argument("--out", required=True, help="feature folder to write")
    ex.add_argument("--clip", default=str(DEFAULT_CLIP), help="CLIP weights (default: the embedded CLIP)")
    ex.add_argument("--duration", type=float, default=4.0, help="seconds per clip (longer are cut, shorter skipped)")
    ex.add_argument("--layers", type=int, nargs="*", help="CLIP layers (default: TiVA's 4/8/11 of 12, as fractions)")
    ex.add_argument("--grid", type=int, default=3, help="patch cells per side after pooling")
    ex.add_argument("--limit", type=int, help="use only the first N videos")
    tr = sub.add_parser("train", help="L2 training (plain, or under torchrun)")
    tr.add_argument("--features", required=True)
    tr.add_argument("--out", required=True, help="run folder (config.json, log.jsonl, checkpoint.pt)")
    tr.add_argument("--resume", action="store_true")
    tr.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--threads", type=int, help="torch CPU threads")
    for f in fields(LayoutTrainConfig):
        if f.name not in ("deterministic", "betas"):
            kind = _flag if isinstance(f.default, bool) else type(f.default)
            tr.add_argument("--" + f.name.replace("_", "-"), type=kind, default=None)
    exp = sub.add_parser("export", help="write the predictor for ComfyUI/models/foley_layout_predictor/")
    exp.add_argument("--run", required=True)
    exp.add_argument("--out", required=True, help="output .safetensors file")
    exp.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    from .layout_joint import add_parsers  # here, not at the top: layout_joint imports this module

    add_parsers(sub, _flag)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "extract":
        torch.set_num_threads(1)
        extract_features(args.clips, args.out, clip_path=args.clip, duration_s=args.duration, layers=args.layers,
                         grid=args.grid, limit=args.limit)
    elif args.command == "train":
        if args.threads:
            torch.set_num_threads(args.threads)
        given = {f.name: getattr(args, f.name) for f in fields(LayoutTrainConfig)
                 if getattr(args, f.name, None) is not None}
        config = LayoutTrainConfig(**given) if (given or not args.resume) else None
        summary = train_predictor(args.features, config, args.out, resume=args.resume, stop_at=args.stop_at,
                                  device=args.device)
        report_stop(summary, args.out)
    elif args.command == "export":
        print(f"wrote {export_predictor(args.run, args.out, use_ema=not args.raw)}")
    else:
        from .layout_joint import run_command

        return run_command(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
