"""The command-line arguments every frozen-backbone add-on trainer shares (`train-…` / `export-…`)."""

from __future__ import annotations

import argparse
import os


def add_run_command(sub, name: str, help: str, features: str, config: str) -> argparse.ArgumentParser:
    """`name --features F --config C --out RUN [--resume] [--stop-at N] [--device D]`."""
    run = sub.add_parser(name, help=help)
    run.add_argument("--features", required=True, help=features)
    run.add_argument("--config", help=f"{config} JSON; not needed with --resume")
    run.add_argument("--out", required=True, help="run folder (config, log.jsonl, checkpoint.pt)")
    run.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    run.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step")
    run.add_argument("--device", default="auto", help="auto = cuda:LOCAL_RANK if available, else cpu")
    return run


def add_export_command(sub, name: str, folder: str) -> argparse.ArgumentParser:
    """`name --run RUN --out FILE [--raw]`: the run's weights (EMA unless --raw) for models/<folder>/."""
    export = sub.add_parser(name, help=f"write the run's weights for ComfyUI/models/{folder}/")
    export.add_argument("--run", required=True, help="run folder with checkpoint.pt")
    export.add_argument("--out", required=True, help="output .safetensors file")
    export.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    return export


def report_stop(summary: dict, out: str) -> None:
    """Say where a run stopped, once (from rank 0 under torchrun)."""
    if int(summary["world_size"]) == 1 or os.environ.get("RANK", "0") == "0":
        print(f"stopped at step {summary['step']}; run folder {out}")
