"""Envelope ControlNets (FOLEY_CONTROLNET) from models/foley_controlnet, or the embedded one.

Weights-only .safetensors written by `python -m foley_core.training export-controlnet`; the file's
metadata says what it is (kind "foley_controlnet"), which backbone architecture it was trained
against and how many blocks it copies. A missing or foreign file is an error, never a stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folder_paths

from ..foley_core.controls.controlnet import EnvelopeControlNet, describe, load_controlnet
from ..foley_core.errors import CheckpointError
from . import embedded, folders

SLOT = "Envelope ControlNet"
EMBEDDED_KEY = "controlnet"  # manifest "files" entry of the embedded ControlNet


@dataclass
class FoleyControlNet:
    """FOLEY_CONTROLNET: a loaded envelope ControlNet (small; moved to the sampler's device at use)."""

    controlnet: EnvelopeControlNet
    file_name: str
    strength: float = 1.0
    cfg_mode: str = "conditional"
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def describe(self) -> str:
        return (f"{self.file_name}: {describe(self.controlnet)}; strength {self.strength:g}, "
                f"CFG mode {self.cfg_mode}")


def choices() -> list[str]:
    return embedded.choices(EMBEDDED_KEY) + folders.model_files(folders.CONTROLNET_FOLDER)


def locate(name: str) -> tuple[Path, str]:
    if isinstance(name, str) and name.startswith(embedded.EMBEDDED_PREFIX):
        return embedded.locate(name, EMBEDDED_KEY, SLOT)
    if not isinstance(name, str) or name not in folder_paths.get_filename_list(folders.CONTROLNET_FOLDER):
        embedded_choice = embedded.choices(EMBEDDED_KEY)
        hint = f" (or pick {embedded_choice[0]!r}, made for the embedded flow network)" if embedded_choice else ""
        raise CheckpointError(
            f"{SLOT}: {name!r} is not installed. Put the ControlNet (.safetensors from `python -m "
            f"foley_core.training export-controlnet`) into ComfyUI/models/{folders.CONTROLNET_FOLDER}/ and "
            f"refresh, or pick another{hint}.")
    return folders.resolve(name, SLOT, folders.CONTROLNET_FOLDER), ""


def load_envelope_controlnet(name: str, strength: float = 1.0, cfg_mode: str = "conditional") -> FoleyControlNet:
    path, note = locate(name)
    controlnet, metadata = load_controlnet(path)
    return FoleyControlNet(controlnet, path.name, float(strength), cfg_mode, metadata, note)
