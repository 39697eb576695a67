"""Style adapters (FOLEY_ADAPTER) from models/foley_adapters, or the embedded one.

Weights-only .safetensors written by `python -m foley_core.training export-adapter`; the file's
metadata says what it is (kind "foley_style_adapter"), which reference inputs it reads and which
backbone it was trained against. Nothing is guessed: a missing or foreign file is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folder_paths

from ..foley_core.errors import CheckpointError
from ..foley_core.models.style_adapter import StyleAdapter, describe, load_adapter
from . import embedded, folders

SLOT = "Style adapter"
EMBEDDED_KEY = "style_adapter"  # manifest "files" entry of the embedded adapter


@dataclass
class FoleyAdapter:
    """FOLEY_ADAPTER: a loaded style adapter (small; kept on the CPU, its vector moves to the sampler)."""

    adapter: StyleAdapter
    file_name: str
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    strength: float = 1.0  # multiplies F_style (1 = as trained)

    def describe(self) -> str:
        return f"{self.file_name} (strength {self.strength:g}): {describe(self.adapter)}"


def choices() -> list[str]:
    return embedded.choices(EMBEDDED_KEY) + folders.model_files(folders.ADAPTER_FOLDER)


def locate(name: str) -> tuple[Path, str]:
    """The adapter file for a combo value: "(embedded) <file>" or a file in models/foley_adapters."""
    if isinstance(name, str) and name.startswith(embedded.EMBEDDED_PREFIX):
        path, note = embedded.locate(name, EMBEDDED_KEY, SLOT)
        return path, note
    if not isinstance(name, str) or name not in folder_paths.get_filename_list(folders.ADAPTER_FOLDER):
        # No silent stand-in: an adapter changes the sound, so a missing one is an error.
        embedded_choice = embedded.choices(EMBEDDED_KEY)
        hint = f" (or pick {embedded_choice[0]!r}, made for the embedded flow network)" if embedded_choice else ""
        raise CheckpointError(
            f"{SLOT}: {name!r} is not installed. Put the adapter (.safetensors from `python -m "
            f"foley_core.training export-adapter`) into ComfyUI/models/{folders.ADAPTER_FOLDER}/ and refresh, "
            f"or pick another adapter{hint}.")
    return folders.resolve(name, SLOT, folders.ADAPTER_FOLDER), ""


def load_style_adapter(name: str, strength: float = 1.0) -> FoleyAdapter:
    path, note = locate(name)
    adapter, metadata = load_adapter(path)
    return FoleyAdapter(adapter, path.name, metadata, note, float(strength))
