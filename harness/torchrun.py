"""Run a 2-process CPU torchrun for the tests, robust to a rank that never exits.

The rare hang these runs used to show was diagnosed with py-spy on a hung rank: the DDP wrapper
outlived `destroy_process_group`, so its Reducer's destructor ended the gloo group while holding
the GIL, joining a gloo worker that was itself waiting for the GIL (training/driver.py,
`end_process_group`, now drops the wrapper first). The re-run stays as a safety net: a try that
has not finished in `try_timeout_s` is killed and run once more on a fresh port, from the run
folder as it was before the try. Two hangs in a row fail with what the ranks printed; a non-zero
exit is never retried. `benchmarks/stress_torchrun_exit.py` loops a run to count hangs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_env() -> dict:
    """The environment of a local CPU torchrun of this repository's modules."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only: never an interface picked from the host name
    return env


def torchrun_command(module_args: list[str], nproc: int = 2) -> list[str]:
    """`python -m torch.distributed.run … -m MODULE ARGS` on a fresh local port."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", *module_args]


def run_torchrun(module_args: list[str], run_dir: Path, *, nproc: int = 2, try_timeout_s: int = 300,
                 tries: int = 2) -> subprocess.CompletedProcess:
    env = torchrun_env()
    run_dir = Path(run_dir)
    snapshot: Optional[Path] = None
    if run_dir.exists():  # a resume: every try starts from the folder as it is now
        snapshot = Path(tempfile.mkdtemp()) / "run"
        shutil.copytree(run_dir, snapshot)
    try:
        return _run_tries(module_args, run_dir, snapshot, env, nproc, try_timeout_s, tries)
    finally:
        if snapshot is not None:
            shutil.rmtree(snapshot.parent, ignore_errors=True)


def _run_tries(module_args, run_dir: Path, snapshot: Optional[Path], env: dict, nproc: int, try_timeout_s: int,
               tries: int) -> subprocess.CompletedProcess:
    hung = []
    for attempt in range(tries):
        if attempt:
            shutil.rmtree(run_dir, ignore_errors=True)
            if snapshot is not None:
                shutil.copytree(snapshot, run_dir)
        try:
            result = subprocess.run(torchrun_command(module_args, nproc), cwd=REPO, env=env, capture_output=True,
                                    text=True, timeout=try_timeout_s)
        except subprocess.TimeoutExpired as e:
            hung.append(f"try {attempt + 1}: no exit in {e.timeout} s\n{(e.stdout or b'')[-2000:]!r}\n"
                        f"{(e.stderr or b'')[-2000:]!r}")
            continue
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        if hung:
            print("torchrun hung and was re-run:\n" + "\n".join(hung), file=sys.stderr)
        return result
    raise AssertionError("torchrun hung on every try:\n" + "\n".join(hung))
