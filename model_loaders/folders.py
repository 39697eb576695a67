"""The `models/mmaudio` folder: registered with the host, listed, and resolved safely."""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths

from ..foley_core.errors import CheckpointError

FOLDER = "mmaudio"
EXTENSIONS = {".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".sft"}


def register() -> None:
    """Add models/mmaudio (keeping any paths the user set in extra_model_paths.yaml)."""
    default = os.path.join(folder_paths.models_dir, FOLDER)
    entry = folder_paths.folder_names_and_paths.get(FOLDER)
    if entry is None:
        folder_paths.folder_names_and_paths[FOLDER] = ([default], set(EXTENSIONS))
        return
    paths, extensions = entry
    if default not in paths:
        paths.append(default)
    if isinstance(extensions, set):
        extensions.update(EXTENSIONS)
    else:  # some hosts keep a list; replace the entry with a set that accepts our formats
        folder_paths.folder_names_and_paths[FOLDER] = (paths, set(extensions) | EXTENSIONS)


def model_files(*, exclude_suffixes: tuple[str, ...] = (".json",)) -> list[str]:
    names = folder_paths.get_filename_list(FOLDER)
    return sorted(n for n in names if not n.lower().endswith(exclude_suffixes))


def resolve(name: str, slot: str) -> Path:
    """The full path of a file picked in a loader combo. Only listed files are accepted, so a
    crafted name sent through the API cannot reach files outside the models folders."""
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{slot}: no model file selected. Put the file into "
                              f"ComfyUI/models/{FOLDER}/ and pick it.")
    if name not in folder_paths.get_filename_list(FOLDER):
        raise CheckpointError(
            f"{slot}: {name!r} is not a file in the models/{FOLDER} folders "
            f"({', '.join(folder_paths.get_folder_paths(FOLDER))}). Put it there and refresh.")
    path = folder_paths.get_full_path(FOLDER, name)
    if path is None:
        raise CheckpointError(f"{slot}: {name!r} could not be found.")
    return Path(path)
