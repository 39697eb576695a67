"""Model folders (`models/mmaudio`, `models/foley_style`, `models/foley_adapters`): registered with
the host, listed, and resolved safely."""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths

from ..foley_core.errors import CheckpointError

FOLDER = "mmaudio"  # the MMAudio backbone: networks, VAEs, vocoders, CLIP, Synchformer
STYLE_FOLDER = "foley_style"  # reference-audio encoders: BEATs, the style conditioner, MERT
ADAPTER_FOLDER = "foley_adapters"  # trained style adapters (the global style path)
RMS_MAPPER_FOLDER = "foley_rms_mapper"  # trained RMS-Mappers (video → envelope, issue #6)
FLOW_FOLDER = "foley_optical_flow"  # optional torchvision RAFT weights for the RMS-Mapper's features
CONTROLNET_FOLDER = "foley_controlnet"  # trained envelope ControlNets (issue #6)
PROMPT_CHANNEL_FOLDER = "foley_prompt_channels"  # AudioIM prompt channels (issue #5)
LAYOUT_PREDICTOR_FOLDER = "foley_layout_predictor"  # TiVA layout predictors (video → layout, issue #6)
LAYOUT_ADAPTER_FOLDER = "foley_layout_adapters"  # TiVA layout adapters (issue #6)
EXTENSIONS = {".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".sft"}


def register() -> None:
    for folder in (FOLDER, STYLE_FOLDER, ADAPTER_FOLDER):
        _register(folder)
    for folder in (RMS_MAPPER_FOLDER, FLOW_FOLDER):
        _register(folder)
    _register(CONTROLNET_FOLDER)
    _register(PROMPT_CHANNEL_FOLDER)
    _register(LAYOUT_PREDICTOR_FOLDER)
    _register(LAYOUT_ADAPTER_FOLDER)


def _register(folder: str) -> None:
    """Add models/<folder> (keeping any paths the user set in extra_model_paths.yaml)."""
    default = os.path.join(folder_paths.models_dir, folder)
    entry = folder_paths.folder_names_and_paths.get(folder)
    if entry is None:
        folder_paths.folder_names_and_paths[folder] = ([default], set(EXTENSIONS))
        return
    paths, extensions = entry
    if default not in paths:
        paths.append(default)
    if isinstance(extensions, set):
        extensions.update(EXTENSIONS)
    else:  # some hosts keep a list; replace the entry with a set that accepts our formats
        folder_paths.folder_names_and_paths[folder] = (paths, set(extensions) | EXTENSIONS)


def model_files(folder: str = FOLDER, *, exclude_suffixes: tuple[str, ...] = (".json",)) -> list[str]:
    names = folder_paths.get_filename_list(folder)
    return sorted(n for n in names if not n.lower().endswith(exclude_suffixes))


def resolve(name: str, slot: str, folder: str = FOLDER) -> Path:
    """The full path of a file picked in a loader combo. Only listed files are accepted, so a
    crafted name sent through the API cannot reach files outside the models folders."""
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{slot}: no model file selected. Put the file into "
                              f"ComfyUI/models/{folder}/ and pick it.")
    if name not in folder_paths.get_filename_list(folder):
        raise CheckpointError(
            f"{slot}: {name!r} is not a file in the models/{folder} folders "
            f"({', '.join(folder_paths.get_folder_paths(folder))}). Put it there and refresh.")
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        raise CheckpointError(f"{slot}: {name!r} could not be found.")
    return Path(path)
