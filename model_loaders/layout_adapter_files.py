"""Layout adapters (FOLEY_LAYOUT_ADAPTER) from models/foley_layout_adapters, or the embedded one.

Weights-only .safetensors written by `python -m foley_core.training export-layout-adapter`; the
metadata says what it is (kind "foley_layout_adapter"), how many layout bands it reads and which
backbone it was trained against. A missing or foreign file is an error, never a silent stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folder_paths

from ..foley_core.controls.layout_adapter import LayoutAdapter, describe, load_layout_adapter
from ..foley_core.errors import CheckpointError
from . import embedded, folders

SLOT = "Layout adapter"
EMBEDDED_KEY = "layout_adapter"  # manifest "files" entry of an embedded layout adapter (if shipped)


@dataclass
class FoleyLayoutAdapter:
    """FOLEY_LAYOUT_ADAPTER: a loaded layout adapter (tiny; moved to the sampler's device at use)."""

    adapter: LayoutAdapter
    file_name: str
    strength: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def describe(self) -> str:
        return f"{self.file_name}: {describe(self.adapter)}; strength {self.strength:g}"


def choices() -> list[str]:
    return embedded.choices(EMBEDDED_KEY) + folders.model_files(folders.LAYOUT_ADAPTER_FOLDER)


def locate(name: str) -> tuple[Path, str]:
    if isinstance(name, str) and name.startswith(embedded.EMBEDDED_PREFIX):
        return embedded.locate(name, EMBEDDED_KEY, SLOT)
    if not isinstance(name, str) or name not in folder_paths.get_filename_list(folders.LAYOUT_ADAPTER_FOLDER):
        raise CheckpointError(
            f"{SLOT}: {name!r} is not installed. Put the adapter (.safetensors from `python -m "
            f"foley_core.training export-layout-adapter`) into ComfyUI/models/{folders.LAYOUT_ADAPTER_FOLDER}/ "
            "and refresh.")
    return folders.resolve(name, SLOT, folders.LAYOUT_ADAPTER_FOLDER), ""


def load(name: str, strength: float = 1.0) -> FoleyLayoutAdapter:
    path, note = locate(name)
    adapter, metadata = load_layout_adapter(path)
    return FoleyLayoutAdapter(adapter, path.name, float(strength), metadata, note)
