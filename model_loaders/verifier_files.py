"""Where verifier models live: models/clap/<name>/ holds a local transformers CLAP
(config.json, model.safetensors, preprocessor/tokenizer files); the full Synchformer sits in
models/mmaudio; models/wav2clip holds Wav2CLIP.pt and its CLIP ViT-B/32. Nothing is ever downloaded."""

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


# Wav2CLIP: the Wav2CLIP file and the CLIP ViT-B/32 it was trained against, both in models/wav2clip
# (a folder of their own: neither belongs to MMAudio, and ComfyUI's models/clip holds text encoders).

WAV2CLIP_FOLDER = "wav2clip"


def _wav2clip_files() -> list[str]:
    from . import folders

    folders._register(WAV2CLIP_FOLDER)
    return folders.model_files(WAV2CLIP_FOLDER)


def wav2clip_choices() -> list[str]:
    """Files in models/wav2clip, the official Wav2CLIP name first (listed even when absent so a
    saved workflow keeps its value and a missing file gets a clear message)."""
    from ..foley_core.models.wav2clip import WAV2CLIP_FILE

    return [WAV2CLIP_FILE] + [n for n in _wav2clip_files() if n != WAV2CLIP_FILE]


def wav2clip_clip_choices() -> list[str]:
    from ..foley_core.models.wav2clip import CLIP_FILE

    return [CLIP_FILE] + [n for n in _wav2clip_files() if n != CLIP_FILE]


def _wav2clip_path(name, what: str, hint: str) -> Path:
    from . import folders

    files = _wav2clip_files()
    where = ", ".join(folder_paths.get_folder_paths(WAV2CLIP_FOLDER))
    if not isinstance(name, str) or name not in files:  # only listed files: a crafted name cannot leave the folder
        raise FoleyError(f"The wav2clip verifier needs {what} in models/{WAV2CLIP_FOLDER} ({where}); {name!r} is "
                         f"not there. {hint} Put it there and refresh.")
    return folders.resolve(name, what, WAV2CLIP_FOLDER)


def load_wav2clip_verifier(wav2clip_name, clip_name, frames, fps: float, weight: float):
    """A Wav2ClipVerifier from two files of models/wav2clip, on the host's compute device."""
    import comfy.model_management as mm

    from ..foley_core.errors import CheckpointError
    from ..foley_core.models.wav2clip import CLIP_HINT, WAV2CLIP_HINT
    from ..foley_core.search.verifiers import Wav2ClipVerifier

    wav2clip_path = _wav2clip_path(wav2clip_name, "the Wav2CLIP weights", WAV2CLIP_HINT)
    clip_path = _wav2clip_path(clip_name, "the CLIP ViT-B/32 (OpenAI) image encoder", CLIP_HINT)
    try:
        return Wav2ClipVerifier.from_files(wav2clip_path, clip_path, frames, fps, weight, mm.get_torch_device())
    except CheckpointError as error:
        raise FoleyError(f"{error} Folder: models/{WAV2CLIP_FOLDER}.") from None
