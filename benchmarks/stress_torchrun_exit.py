"""Run the toy 2-process training many times and count the runs that never exit.

Why: before `training/driver.py`'s `end_process_group`, a 2-process gloo run could hang at exit
(about 1 run in 40 on a busy 2-core box). A hang is rare, so only a long loop shows whether it is
gone. On a timeout the script dumps every process of the stuck run with py-spy when py-spy is on
PATH (`pip install py-spy`), then kills the run and goes on.

    python benchmarks/stress_torchrun_exit.py --runs 150 --out /tmp/stress
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "unit")]

from harness.torchrun import torchrun_command, torchrun_env  # noqa: E402
from test_training import run_config, write_toy_features  # noqa: E402  (the toy data the tests train on)


def process_tree(root: int) -> list[str]:
    """The launcher and all its descendants (the ranks run in sessions of their own)."""
    tree, frontier = [str(root)], [str(root)]
    while frontier:
        children = subprocess.run(["pgrep", "-P", frontier.pop()], capture_output=True, text=True).stdout.split()
        tree += children
        frontier += children
    return tree


def kill_all(pids: list[str]) -> None:
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def dump_stacks(pids: list[str], into: Path) -> None:
    py_spy = shutil.which("py-spy")
    with into.open("w") as report:
        for pid in pids:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            report.write(f"===== pid {pid}: {command}\n")
            if py_spy:
                stack = subprocess.run([py_spy, "dump", "--native", "--pid", pid], capture_output=True, text=True)
                report.write(stack.stdout + stack.stderr + "\n")
        if not py_spy:
            report.write("py-spy is not on PATH: no stacks (pip install py-spy)\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a run counts as hung")
    parser.add_argument("--out", type=Path, required=True, help="work folder (toy data, runs, hang reports)")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    features = write_toy_features(args.out / "features")
    config = args.out / "run.json"
    run_config().save(config)
    env = torchrun_env()

    hangs, failures, seconds = [], [], []
    for index in range(args.runs):
        run = args.out / "run"
        shutil.rmtree(run, ignore_errors=True)
        command = torchrun_command(["foley_core.training", "train", "--features", str(features), "--out", str(run),
                                    "--device", "cpu", "--config", str(config)])
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            output, _ = process.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            report = args.out / f"hang_{index}.txt"
            stuck = process_tree(process.pid)
            dump_stacks(stuck, report)
            kill_all(stuck)
            process.communicate()
            hangs.append(index)
            print(f"run {index}: HUNG after {args.timeout:.0f} s, stacks in {report}", flush=True)
            continue
        seconds.append(time.monotonic() - started)
        if process.returncode != 0:
            failures.append(index)
            (args.out / f"failed_{index}.txt").write_bytes(output)
        print(f"run {index}: rc {process.returncode}, {seconds[-1]:.1f} s", flush=True)

    timing = f", {sum(seconds) / len(seconds):.1f} s per finished run" if seconds else ""
    print(f"{args.runs} runs: {len(hangs)} hung {hangs}, {len(failures)} failed {failures}{timing}")
    return 1 if hangs or failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
