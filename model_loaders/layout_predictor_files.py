"""Layout predictors (FOLEY_LAYOUT_PREDICTOR) from models/foley_layout_predictor or the embedded one,
with the CLIP they read features from.

Predictor combo: "(embedded) <file>" (trained by this project on the synthetic Foley set) or a file
in models/foley_layout_predictor; a name that is not installed falls back to the embedded predictor
with a note (like the RMS-Mapper). Files are .safetensors with metadata kind "foley_layout_predictor"
(`python -m foley_core.training layout-predictor export`).

CLIP: by default the CLIP the predictor was trained on (its config names the file; the embedded
set's CLIP or a file in models/mmaudio), built only when first needed — Foley Layout Predict uses
the CLIP of its `encoders` input instead when one is connected (no second copy of a large CLIP).
Either way a CLIP other than the trained one is refused with a message (layout_predictor.check_clip).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import folder_paths

from ..foley_core.controls.layout import Layout
from ..foley_core.errors import CheckpointError
from ..foley_core.models.layout_predictor import LayoutPredictor, describe, load_predictor, video_layout
from . import devices, embedded, folders

SLOT = "Layout predictor"
EMBEDDED_KEY = "layout_predictor"  # manifest "files" entry of the embedded predictor
TRAINED_CLIP = "(the CLIP it was trained with)"


@dataclass
class FoleyLayoutPredictor:
    """FOLEY_LAYOUT_PREDICTOR: a loaded predictor (small; CPU) and where its CLIP comes from."""

    predictor: LayoutPredictor
    file_name: str
    clip_choice: str = TRAINED_CLIP
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _clip: Any = field(default=None, repr=False)  # ModelPatcher, built on first use
    _clip_name: str = ""

    def describe(self) -> str:
        return f"{self.file_name}: {describe(self.predictor)}"

    def clip_patcher(self) -> tuple[Any, str, list[str]]:
        """(ModelPatcher around the ClipEncoder, its file name, notes); built once."""
        notes: list[str] = []
        if self._clip is None:
            from ..foley_core.models import builders

            path, note = locate_clip(self.clip_choice, self.predictor.config.clip_file)
            notes = [note] if note else []
            self._clip = devices.wrap(builders.build_clip(path, devices.compute_dtype("auto")))
            self._clip_name = path.name
        return self._clip, self._clip_name, notes

    def predict(self, video, encoders=None) -> tuple[Layout, str, list[str]]:
        """(layout, what ran — for the node's output —, notes) for a FOLEY_VIDEO."""
        notes = list(self.notes)
        if encoders is not None:
            patcher, clip_name = encoders.clip, f"the encoders' CLIP {encoders.files[0]}"
        else:
            patcher, clip_name, more = self.clip_patcher()
            notes += more
        devices.load_to_device(patcher)
        layout = video_layout(self.predictor, patcher.model, video.clip_frames, float(video.stream_rates["clip"]),
                              video.duration_s, clip_name)
        return layout, f"layout predictor {self.file_name} (CLIP {clip_name})", notes


def choices() -> list[str]:
    return embedded.choices(EMBEDDED_KEY) + folders.model_files(folders.LAYOUT_PREDICTOR_FOLDER)


def clip_choices() -> list[str]:
    return [TRAINED_CLIP] + embedded.choices("clip") + folders.model_files()


def locate(name: str) -> tuple[Path, str]:
    if isinstance(name, str) and name.startswith(embedded.EMBEDDED_PREFIX):
        return embedded.locate(name, EMBEDDED_KEY, SLOT)
    if isinstance(name, str) and name in folder_paths.get_filename_list(folders.LAYOUT_PREDICTOR_FOLDER):
        return folders.resolve(name, SLOT, folders.LAYOUT_PREDICTOR_FOLDER), ""
    fallback = embedded.choices(EMBEDDED_KEY)
    if not fallback:
        raise CheckpointError(
            f"{SLOT}: {name!r} is not installed. Put the predictor (.safetensors from `python -m foley_core.training "
            f"layout-predictor export`) into ComfyUI/models/{folders.LAYOUT_PREDICTOR_FOLDER}/ and refresh.")
    path, _ = embedded.locate(fallback[0], EMBEDDED_KEY, SLOT)
    return path, (f"{SLOT}: {name!r} is not installed in models/{folders.LAYOUT_PREDICTOR_FOLDER}; using the "
                  f"embedded {path.name} instead (trained on the synthetic Foley scenes).")


def locate_clip(choice: str, trained_file: str) -> tuple[Path, str]:
    """The CLIP file for `choice`; TRAINED_CLIP finds the file the predictor was trained on."""
    if choice != TRAINED_CLIP:
        return embedded.locate(choice, "clip", "CLIP")
    embedded_clip = embedded.manifest().get("files", {}).get("clip")
    if trained_file and trained_file == embedded_clip:
        return embedded.locate(embedded.EMBEDDED_PREFIX + trained_file, "clip", "CLIP")
    if trained_file in folder_paths.get_filename_list(folders.FOLDER):
        return folders.resolve(trained_file, "CLIP"), ""
    raise CheckpointError(
        f"{SLOT}: it was trained on CLIP {trained_file or '(unnamed)'}, which is not installed in "
        f"models/{folders.FOLDER}. Put that file there, pick it in the loader's `clip`, or connect the "
        "encoders that hold it to Foley Layout Predict's `encoders`.")


def load_layout_predictor(name: str, clip: str = TRAINED_CLIP) -> FoleyLayoutPredictor:
    path, note = locate(name)
    predictor, metadata = load_predictor(path)
    return FoleyLayoutPredictor(predictor, path.name, clip or TRAINED_CLIP, metadata, [note] if note else [])
