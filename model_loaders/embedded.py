"""The embedded default model set (embedded_models/, trained by this project on synthetic Foley)
and how loader slots resolve a file name:

1. "(embedded) <file>" → that file of the embedded set;
2. a file installed in models/mmaudio → that file;
3. a name that is not installed (e.g. the official file named by a shared workflow) → the
   embedded set's file for that slot, with a note saying so (the node shows it), so a fresh
   install still produces sound. Without an embedded file for the slot it is an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import folder_paths

from ..foley_core.errors import CheckpointError
from . import folders

EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "embedded_models"
EMBEDDED_PREFIX = "(embedded) "


def manifest() -> dict:
    path = EMBEDDED_DIR / "manifest.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def choices(slot_key: str) -> list[str]:
    name = manifest().get("files", {}).get(slot_key)
    return [EMBEDDED_PREFIX + name] if name else []


def _embedded_file(slot_key: str) -> Path | None:
    name = manifest().get("files", {}).get(slot_key)
    path = EMBEDDED_DIR / name if name else None
    return path if path is not None and path.is_file() else None


def locate(name: str, slot_key: str, slot_label: str) -> tuple[Path | None, str]:
    """(path to build from — None means the weight-free vocoder —, a note for the user)."""
    if isinstance(name, str) and name.startswith(EMBEDDED_PREFIX):
        path = _embedded_file(slot_key)
        if path is None or path.name != name[len(EMBEDDED_PREFIX):]:
            raise CheckpointError(f"{slot_label}: the embedded file {name!r} is missing from "
                                  f"{EMBEDDED_DIR}; reinstall the plugin.")
        return path, f"{slot_label}: embedded {path.name}."
    if isinstance(name, str) and name in folder_paths.get_filename_list(folders.FOLDER):
        return folders.resolve(name, slot_label), ""
    if slot_key == "vocoder":
        return None, (f"{slot_label}: {name!r} is not installed in models/{folders.FOLDER}; using "
                      "the built-in Griffin-Lim vocoder instead.")
    fallback = _embedded_file(slot_key)
    if fallback is None:
        raise CheckpointError(
            f"{slot_label}: {name!r} is not installed. Put it into ComfyUI/models/{folders.FOLDER}/ "
            "(see the README's model table) and refresh.")
    return fallback, (f"{slot_label}: {name!r} is not installed in models/{folders.FOLDER}; using "
                      f"the embedded {fallback.name} instead (the small set built for the synthetic Foley scenes; "
                      "see the README).")
