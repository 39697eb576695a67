"""CLI: python -m foley_core.synthetic_foley --out DIR --n 100 --seed 0 [--duration 8 ...]."""

from __future__ import annotations

import argparse
import sys
import time

from .dataset import generate_dataset
from .materials import MATERIALS
from .scenes import SCENES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m foley_core.synthetic_foley",
                                     description="Write a synthetic Foley dataset with ground truth.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=100, help="number of clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per clip")
    parser.add_argument("--fps", default="25", help="frame rate, e.g. 25 or 30000/1001")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels")
    parser.add_argument("--scenes", nargs="*", choices=SCENES, help="restrict scenes")
    parser.add_argument("--materials", nargs="*", choices=sorted(MATERIALS), help="restrict materials")
    parser.add_argument("--no-wav", action="store_true", help="skip the clean WAV files")
    args = parser.parse_args(argv)
    from fractions import Fraction

    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done == total or done % 10 == 0:
            rate = done / max(1e-9, time.perf_counter() - start)
            print(f"{done}/{total} clips ({rate:.1f} clips/s)", file=sys.stderr)

    generate_dataset(args.out, args.n, args.seed, args.duration, Fraction(args.fps), args.sample_rate,
                     args.size, args.scenes, args.materials, with_wav=not args.no_wav,
                     progress=progress)
    print(f"wrote {args.n} clips and index.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
