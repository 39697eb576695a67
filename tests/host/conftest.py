"""One real ComfyUI server for the whole test session (see harness/comfy_host.py).

The host is the one scripts/bootstrap.sh provisioned (or an existing ComfyUI named by
FOLEY_COMFYUI_DIR); the plugin is linked into a private custom_nodes folder.
"""

import os
import sys
from pathlib import Path

import pytest

from harness.comfy_host import ComfyHost

NODE_IDS = ("FoleyLoadVideo", "FoleyLoadAudio", "FoleyMux")


def _comfy_dir() -> Path:
    configured = os.environ.get("FOLEY_COMFYUI_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "foley-imitator" / "ComfyUI"


@pytest.fixture(scope="session")
def comfy_host(tmp_path_factory):
    comfy_dir = _comfy_dir()
    if not (comfy_dir / "main.py").exists():
        pytest.fail(f"no ComfyUI at {comfy_dir}: run scripts/bootstrap.sh (or set FOLEY_COMFYUI_DIR)")
    host = ComfyHost(comfy_dir, tmp_path_factory.mktemp("comfy_host"), python=sys.executable)
    host.start()
    try:
        info = host.object_info()
        missing = [node for node in NODE_IDS if node not in info]
        if missing:
            pytest.fail(f"plugin nodes missing from /object_info: {missing}\n{host.log_tail()}")
        yield host
    finally:
        host.stop()
