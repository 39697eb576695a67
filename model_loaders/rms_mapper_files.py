"""RMS-Mappers (FOLEY_RMS_MAPPER) from models/foley_rms_mapper or the embedded one, and optional
RAFT weights from models/foley_optical_flow.

Combo values: "(embedded) <file>" (trained by this project on the synthetic Foley set), a file in
models/foley_rms_mapper, or MOTION_ENERGY (no network: the documented motion-energy estimate). A
file name that is not installed (a workflow from another machine) falls back to the embedded
mapper with a note, like the backbone slots. Mapper files are .safetensors with metadata kind
"foley_rms_mapper" (`python -m foley_core.training rms-mapper export`); anything else is an error
that names the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import folder_paths

from ..foley_core.controls.envelope import Envelope
from ..foley_core.controls.mapper_features import RaftFlow
from ..foley_core.controls.motion_energy import motion_energy_envelope
from ..foley_core.errors import CheckpointError
from ..foley_core.models.rms_mapper import DECODINGS, RMSMapper, describe, flow_mismatch_note, load_mapper, \
    mapper_envelope
from . import embedded, folders

SLOT = "RMS-Mapper"
EMBEDDED_KEY = "rms_mapper"  # manifest "files" entry of the embedded mapper
MOTION_ENERGY = "(motion energy estimate)"
NO_RAFT = "none (block-matching flow)"


@dataclass
class FoleyRMSMapper:
    """FOLEY_RMS_MAPPER: a loaded mapper (small; CPU) with its flow, or the motion-energy estimate."""

    mapper: Optional[RMSMapper]
    file_name: str
    flow: Any = "block"  # "block" or a RaftFlow
    decoding: str = "argmax"
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def is_motion_energy(self) -> bool:
        return self.mapper is None

    def describe(self) -> str:
        if self.mapper is None:
            return "Motion-energy estimate (no RMS-Mapper network)"
        flow = self.flow.method if isinstance(self.flow, RaftFlow) else "block-matching"
        return f"{self.file_name}: {describe(self.mapper)}; running with {flow} flow, {self.decoding} decoding"

    def predict(self, frames, fps: float, duration_s: float) -> tuple[Envelope, str, list[str]]:
        """(envelope, what ran — for the node's output —, notes)."""
        if self.mapper is None:
            return motion_energy_envelope(frames, fps, duration_s), "motion energy estimate", []
        envelope, use = mapper_envelope(self.mapper, frames, fps, duration_s, self.flow, self.decoding)
        source = f"RMS-Mapper {self.file_name} ({use.flow_used} flow)"
        return envelope, source, list(dict.fromkeys(self.notes + use.notes))


def choices() -> list[str]:
    return embedded.choices(EMBEDDED_KEY) + [MOTION_ENERGY] + folders.model_files(folders.RMS_MAPPER_FOLDER)


def flow_choices() -> list[str]:
    return [NO_RAFT] + folders.model_files(folders.FLOW_FOLDER)


def locate(name: str) -> tuple[Path, str]:
    if isinstance(name, str) and name.startswith(embedded.EMBEDDED_PREFIX):
        return embedded.locate(name, EMBEDDED_KEY, SLOT)
    if isinstance(name, str) and name in folder_paths.get_filename_list(folders.RMS_MAPPER_FOLDER):
        return folders.resolve(name, SLOT, folders.RMS_MAPPER_FOLDER), ""
    fallback = embedded.choices(EMBEDDED_KEY)
    if not fallback:
        raise CheckpointError(
            f"{SLOT}: {name!r} is not installed. Put the mapper (.safetensors from `python -m foley_core.training "
            f"rms-mapper export`) into ComfyUI/models/{folders.RMS_MAPPER_FOLDER}/ and refresh, or pick "
            f"{MOTION_ENERGY!r}.")
    path, _ = embedded.locate(fallback[0], EMBEDDED_KEY, SLOT)
    return path, (f"{SLOT}: {name!r} is not installed in models/{folders.RMS_MAPPER_FOLDER}; using the "
                  f"embedded {path.name} instead (trained on the synthetic Foley scenes).")


def load_raft(name: str) -> RaftFlow:
    from ..foley_core.models.checkpoint_io import read_state_dict

    path = folders.resolve(name, "RAFT weights", folders.FLOW_FOLDER)
    return RaftFlow(read_state_dict(path, f"RAFT weights {path.name}"), path.name)


def load_rms_mapper(name: str, raft: str = NO_RAFT, decoding: str = "argmax") -> FoleyRMSMapper:
    if decoding not in DECODINGS:
        raise CheckpointError(f"{SLOT}: unknown decoding {decoding!r}; use one of {DECODINGS}.")
    flow = "block" if raft in (None, "", NO_RAFT) else load_raft(raft)
    if name == MOTION_ENERGY:
        notes = ["RAFT weights are not used by the motion-energy estimate."] if flow != "block" else []
        return FoleyRMSMapper(None, MOTION_ENERGY, notes=notes)
    path, note = locate(name)
    mapper, metadata = load_mapper(path)
    notes = [note] if note else []
    used = flow.method if isinstance(flow, RaftFlow) else "block"
    if used != mapper.config.flow:
        notes.append(flow_mismatch_note(mapper.config.flow, used))
    return FoleyRMSMapper(mapper, path.name, flow, decoding, metadata, notes)
