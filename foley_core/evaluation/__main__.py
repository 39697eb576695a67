"""python -m foley_core.evaluation --models embedded_models --clips 40 --out results.json"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .synthetic_benchmark import markdown_table, run


def main() -> None:
    parser = argparse.ArgumentParser(description="Synthetic Foley benchmark (held-out clips).")
    parser.add_argument("--models", required=True, help="folder with manifest.json (e.g. embedded_models)")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="held-out clip seeds start here (offset)")
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=4.5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--envelope-from-video", action="store_true",
                        help="video condition = RMS-Mapper envelope of the frames driving the envelope ControlNet")
    parser.add_argument("--out", required=True, help="JSON results file (a .md table is written beside it)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(Path(args.models), args.clips, args.seed, args.duration, args.steps, args.cfg,
                 envelope_from_video=args.envelope_from_video)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    table = markdown_table(report)
    out.with_suffix(".md").write_text(
        f"Command: `python -m foley_core.evaluation --models {args.models} --clips {args.clips} "
        f"--seed {args.seed} --duration {args.duration} --steps {args.steps} --cfg {args.cfg}"
        f"{' --envelope-from-video' if args.envelope_from_video else ''}`\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
