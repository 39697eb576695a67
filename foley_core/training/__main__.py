"""Command line: `python -m foley_core.training {extract,train,export,references,train-adapter,export-adapter,
envelopes,train-controlnet,export-controlnet,
train-prompt-channel,layouts,train-layout-adapter,export-layout-adapter} ...`, `... rms-mapper ...`,
`... layout-predictor {extract,train,export,joint,joint-export,joint-eval} ...`
(see docs/training.md; the style-adapter commands are described in training/adapter.py).

Multi-process training: `python -m torch.distributed.run --nproc_per_node N -m foley_core.training train ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_args import add_export_command, add_run_command, report_stop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m foley_core.training",
                                     description="Train MMAudio flow networks for Foley Imitator.")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("extract", help="encode a folder of videos into training features")
    ex.add_argument("--videos", required=True, help="folder of .mp4/.mov/.mkv files with audio")
    ex.add_argument("--out", required=True, help="feature folder to write")
    ex.add_argument("--clip", required=True, help="CLIP weights (open_clip names)")
    ex.add_argument("--synchformer", required=True, help="Synchformer weights")
    ex.add_argument("--vae", required=True, help="MMAudio VAE weights of the chosen mode")
    ex.add_argument("--mode", required=True, choices=["16k", "44k"])
    ex.add_argument("--duration", type=float, default=8.0, help="seconds per clip (longer are cut)")
    ex.add_argument("--captions", help='JSON file {"video file name": "caption"}')
    ex.add_argument("--shard-size", type=int, default=64, help="clips per shard file")
    ex.add_argument("--batch-size", type=int, default=4, help="clips encoded together")
    ex.add_argument("--device", default="cpu")

    tr = sub.add_parser("train", help="train (plain, or under torchrun for several processes)")
    tr.add_argument("--features", required=True, help="feature folder from `extract`")
    tr.add_argument("--config", help="run config JSON (TrainConfig fields); not needed with --resume")
    tr.add_argument("--out", required=True, help="run folder (config, log.jsonl, checkpoint.pt)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    tr.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step")
    tr.add_argument("--device", default="auto", help="auto = cuda:LOCAL_RANK if available, else cpu")

    exp = sub.add_parser("export", help="write the network for ComfyUI/models/mmaudio/")
    exp.add_argument("--run", required=True, help="run folder with checkpoint.pt")
    exp.add_argument("--out", required=True, help="output .safetensors file")
    exp.add_argument("--ema", action="store_true", help="export the EMA weights (recommended)")
    exp.add_argument("--fp16", action="store_true", help="store fp16 (half the size)")

    ref = sub.add_parser("references", help="encode reference segments of every clip (style adapter)")
    ref.add_argument("--features", required=True, help="feature folder from `extract` (written into)")
    ref.add_argument("--vae", required=True, help="the VAE the features were extracted with")
    ref.add_argument("--sources", help="folder of longer recordings <clip stem>.wav for stage-2 segments")
    ref.add_argument("--segment", type=float, default=2.0, help="seconds per reference segment")
    ref.add_argument("--per-stage", type=int, default=4, help="segments per clip and stage")
    ref.add_argument("--beats", help="BEATs checkpoint (adds the timbre embedding)")
    ref.add_argument("--tempo", help="style-conditioner weights (adds the tempo embedding; needs --mert)")
    ref.add_argument("--mert", help="MERT-v1-95M weights for --tempo")
    ref.add_argument("--seed", type=int, default=0)

    add_run_command(sub, "train-adapter", "train a style adapter on a frozen backbone",
                    "feature folder with references.safetensors", "AdapterTrainConfig")
    add_export_command(sub, "export-adapter", "foley_adapters")

    # Envelope ControlNet (training/controlnet.py).
    en = sub.add_parser("envelopes", help="RMS envelope of every clip's audio (ControlNet training)")
    en.add_argument("--features", required=True, help="feature folder from `extract` (written into)")

    add_run_command(sub, "train-controlnet", "train an envelope ControlNet on a frozen backbone",
                    "feature folder with envelopes.safetensors", "ControlNetTrainConfig")
    ec = add_export_command(sub, "export-controlnet", "foley_controlnet")
    ec.add_argument("--fp16", action="store_true", help="store fp16 (half the size)")
    pc = sub.add_parser("train-prompt-channel",
                        help="train AudioIM's prompt channel (3:5 masking) on a frozen backbone")
    pc.add_argument("--features", required=True, help="feature folder from `extract`")
    pc.add_argument("--backbone", required=True, help="flow-network file (kept frozen)")
    pc.add_argument("--out", required=True, help="prompt channel .safetensors for models/foley_prompt_channels/")
    pc.add_argument("--steps", type=int, default=300)
    pc.add_argument("--batch-size", type=int, default=16)
    pc.add_argument("--lr", type=float, default=1e-3)
    pc.add_argument("--prompt-dropout", type=float, default=0.1)
    pc.add_argument("--holdout", type=int, default=0, help="leave the last N clips out (for measurements)")
    pc.add_argument("--seed", type=int, default=0)
    pc.add_argument("--time-limit", type=float, help="stop after this many seconds (the file is kept)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["rms-mapper"]:  # RMS-Mapper extract/train/export (training/rms_mapper_trainer.py)
        from .rms_mapper_trainer import main as rms_mapper_main

        return rms_mapper_main(argv[1:])
    if argv[:1] == ["layout-predictor"]:  # TiVA layout predictor (training/layout_predictor_trainer.py)
        from .layout_predictor_trainer import main as layout_predictor_main

        return layout_predictor_main(argv[1:])
    if argv[:1] and argv[0] in ("layouts", "train-layout-adapter", "export-layout-adapter"):
        from .layout_adapter import main as layout_adapter_main  # TiVA layout adapter (training/layout_adapter.py)

        return layout_adapter_main(argv)
    args = _parser().parse_args(argv)
    if args.command == "extract":
        from .extract import extract_features, load_encoders

        captions = json.loads(Path(args.captions).read_text(encoding="utf-8")) if args.captions else {}
        encoders = load_encoders(args.clip, args.synchformer, args.vae, args.mode, args.device)
        extract_features(args.videos, args.out, encoders, mode=args.mode, duration_s=args.duration,
                         captions=captions, shard_size=args.shard_size, batch_size=args.batch_size)
    elif args.command == "train":
        from .config import TrainConfig
        from .loop import train

        config = TrainConfig.load(args.config) if args.config else None
        summary = train(args.features, config, args.out, resume=args.resume, stop_at=args.stop_at,
                        device=args.device)
        report_stop(summary, args.out)
    elif args.command == "references":
        from ..models import builders
        from .adapter import extract_references

        encoders = {}
        if args.beats:
            encoders["timbre_encoder"] = builders.build_beats(Path(args.beats))
        if args.tempo:
            if not args.mert:
                raise SystemExit("--tempo needs --mert (the style conditioner's frozen audio features)")
            encoders["tempo_conditioner"] = builders.build_style_conditioner(Path(args.tempo))
            encoders["mert"] = builders.build_mert(Path(args.mert))
        extract_references(args.features, builders.build_vae(Path(args.vae)), segment_s=args.segment,
                           per_stage=args.per_stage, sources_dir=args.sources, seed=args.seed,
                           vae_file=Path(args.vae).name, **encoders)
    elif args.command == "train-adapter":
        from .adapter import AdapterTrainConfig, train_adapter

        config = AdapterTrainConfig.load(args.config) if args.config else None
        summary = train_adapter(args.features, config, args.out, resume=args.resume, stop_at=args.stop_at,
                                device=args.device)
        report_stop(summary, args.out)
    elif args.command == "train-prompt-channel":
        from .prompt_channel import PromptChannelTrainConfig, train_prompt_channel

        config = PromptChannelTrainConfig(backbone=args.backbone, steps=args.steps, batch_size=args.batch_size,
                                          lr=args.lr, prompt_dropout=args.prompt_dropout, holdout=args.holdout,
                                          seed=args.seed)
        print(json.dumps(train_prompt_channel(args.features, config, args.out, time_limit_s=args.time_limit)))
    elif args.command == "envelopes":
        from .controlnet import extract_envelopes

        extract_envelopes(args.features)
    elif args.command == "train-controlnet":
        from .controlnet import ControlNetTrainConfig, train_controlnet

        config = ControlNetTrainConfig.load(args.config) if args.config else None
        summary = train_controlnet(args.features, config, args.out, resume=args.resume, stop_at=args.stop_at,
                                   device=args.device)
        report_stop(summary, args.out)
    elif args.command == "export-controlnet":
        from .controlnet import export_controlnet

        print(f"wrote {export_controlnet(args.run, args.out, use_ema=not args.raw, fp16=args.fp16)}")
    elif args.command == "export-adapter":
        from .adapter import export_adapter

        print(f"wrote {export_adapter(args.run, args.out, use_ema=not args.raw)}")
    else:
        from .export import export_network

        path = export_network(args.run, args.out, use_ema=args.ema, fp16=args.fp16)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
