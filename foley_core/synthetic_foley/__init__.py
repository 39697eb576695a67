"""Synthetic Foley benchmark: procedural scenes with exact ground-truth events, material timbres,
rendered frames and a synthesised soundtrack (in memory via `make_clip`, on disk via
`generate_dataset` or `python -m foley_core.synthetic_foley`)."""

from .clip import SyntheticClip, event_frame, make_clip
from .dataset import clip_seeds, generate_dataset, write_clip, write_mp4, write_wav
from .materials import MATERIALS, Material, get_material, materials_for_scene
from .scenes import EVENT_KINDS, MIN_GAP_S, ONSET_KINDS, SCENES, Body, Event, Scene

__all__ = [
    "EVENT_KINDS", "MATERIALS", "MIN_GAP_S", "ONSET_KINDS", "SCENES", "Body", "Event", "Material",
    "Scene", "SyntheticClip", "clip_seeds", "event_frame", "generate_dataset", "get_material",
    "make_clip", "materials_for_scene", "write_clip", "write_mp4", "write_wav",
]
