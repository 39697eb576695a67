"""The golden parity files in tests/data/parity (copied from the official implementation's outputs;
see its README): a component's build config, its weights, and its inputs/expected outputs."""

import json
from pathlib import Path

from safetensors.torch import load_file

PARITY = Path(__file__).resolve().parents[1] / "data" / "parity"


def config(name: str) -> dict:
    return json.loads((PARITY / f"{name}.json").read_text())["config"]


def weights(name: str) -> dict:
    return load_file(str(PARITY / f"{name}.weights.safetensors"))


def io(name: str) -> dict:
    return load_file(str(PARITY / f"{name}.io.safetensors"))
