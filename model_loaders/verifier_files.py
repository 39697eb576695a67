"""Where verifier models live: models/clap/<name>/ holds a local transformers CLAP
(config.json, model.safetensors, preprocessor/tokenizer files). Nothing is ever downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths

from ..foley_core.errors import FoleyError

CLAP_FOLDER = "clap"
NONE = "none"


def register() -> None:
    """models/clap, kept beside any path the user set in extra_model_paths.yaml."""
    default = os.path.join(folder_paths.models_dir, CLAP_FOLDER)
    entry = folder_paths.folder_names_and_paths.get(CLAP_FOLDER)
    if entry is None:
        folder_paths.folder_names_and_paths[CLAP_FOLDER] = ([default], {".json", ".safetensors", ".bin"})
    elif default not in entry[0]:
        entry[0].append(default)


def _roots() -> list[Path]:
    register()
    return [Path(p) for p in folder_paths.get_folder_paths(CLAP_FOLDER)]


def clap_choices() -> list[str]:
    """Sub-folders of models/clap that contain a config.json (one model each)."""
    found = set()
    for root in _roots():
        if root.is_dir():
            found.update(p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file())
    return [NONE] + sorted(found)


def resolve_clap(name: str) -> Path:
    roots = _roots()
    where = ", ".join(str(r) for r in roots)
    if not name or name == NONE:
        raise FoleyError(f"The CLAP verifier needs a local CLAP model: put a folder with config.json, "
                         f"model.safetensors and its processor/tokenizer files (a save_pretrained copy "
                         f"of e.g. laion/clap-htsat-unfused) into {where}, refresh, and pick it.")
    if name in clap_choices():  # only listed folders: a crafted name cannot leave models/clap
        for root in roots:
            if (root / name / "config.json").is_file():
                return root / name
    raise FoleyError(f"The CLAP model folder {name!r} is not in {where}; put it there and refresh.")


# Synchformer DeSync: the full Synchformer file lives beside the encoders in models/mmaudio.

def sync_choices() -> list[str]:
    """Files in models/mmaudio, the official full file name first (listed even when absent so a
    saved workflow keeps its value and a missing file gets a clear message)."""
    from ..foley_core.models.synchformer_sync.model import FULL_FILE
    from . import folders

    return [FULL_FILE] + [n for n in folders.model_files(folders.FOLDER) if n != FULL_FILE]


def load_desync_model(name: str):
    """The full Synchformer (fp32, on the host's compute device) from models/mmaudio."""
    import comfy.model_management as mm

    from ..foley_core.errors import CheckpointError
    from ..foley_core.models.synchformer_sync import build_synchformer_sync
    from ..foley_core.models.synchformer_sync.model import FULL_FILE
    from . import folders

    folders.register()
    where = ", ".join(folder_paths.get_folder_paths(folders.FOLDER))
    if not isinstance(name, str) or name not in folder_paths.get_filename_list(folders.FOLDER):
        raise FoleyError(f"The synchformer_desync verifier needs the full Synchformer file {FULL_FILE} (MMAudio's "
                         f"download, ~907 MB; audio branch and sync head included) in models/{folders.FOLDER} "
                         f"({where}); {name!r} is not there. Put it there and refresh.")
    path = folders.resolve(name, "Synchformer DeSync")
    try:
        return build_synchformer_sync(path, device=mm.get_torch_device())
    except CheckpointError as error:
        raise FoleyError(f"{error} Folder: models/{folders.FOLDER} ({path.parent}).") from None
