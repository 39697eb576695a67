"""One synthetic Foley clip in memory: frames, soundtrack and exact ground truth, from a seed.

Scene, picture and sound draw from separate random streams derived from the seed, so a change to
the renderer never changes the audio of a seed, and the same seed always gives identical output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import List, Optional, Sequence

import numpy as np

from ..errors import FoleyError
from .materials import MATERIALS, get_material, materials_for_scene
from .render import render_frames
from .scenes import SCENE_BUILDERS, SCENES, Event, Scene
from .sound import render_soundtrack

FORMAT = "foley-imitator-synthetic/1"
PEAK_LIMIT = 0.95


@dataclass
class SyntheticClip:
    frames: np.ndarray  # uint8 [T, H, W, 3]; frame k shows time k / fps
    fps: Fraction
    audio: np.ndarray  # float32 mono [round(duration_s * sample_rate)]
    sample_rate: int
    events: List[Event]
    meta: dict  # the JSON ground truth (without file paths)
    scene: Scene

    @property
    def duration_s(self) -> float:
        return float(len(self.frames) / self.fps)


def event_frame(time_s: float, fps: Fraction) -> int:
    """Index of the frame whose exposure [k/fps - half, k/fps + half) contains time_s."""
    return int(math.floor(time_s * float(fps) + 0.5))


def _stream(seed: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), purpose])


def _choose(rng: np.random.Generator, scene: Optional[str], scenes: Optional[Sequence[str]],
            material: Optional[str], materials: Optional[Sequence[str]]):
    """Pick a scene and a material that fits it (explicit choices always win)."""
    if scene is not None and scene not in SCENE_BUILDERS:
        raise FoleyError(f"unknown scene {scene!r}; known: {', '.join(SCENES)}")
    if material is not None:
        get_material(material)
    pool = [scene] if scene else list(scenes or SCENES)
    for name in pool:
        if name not in SCENE_BUILDERS:
            raise FoleyError(f"unknown scene {name!r}; known: {', '.join(SCENES)}")
    for name in materials or ():
        get_material(name)
    if material is None:
        # only scenes that have a plausible material among the allowed ones
        pool = [s for s in pool if materials_for_scene(s, materials)] or pool
    elif scene is None:
        pool = [s for s in pool if s in get_material(material).scenes] or pool
    scene = pool[int(rng.integers(len(pool)))]
    if material is None:
        options = materials_for_scene(scene, materials) or tuple(materials or MATERIALS)
        material = options[int(rng.integers(len(options)))]
    return scene, material


def make_clip(seed: int, duration_s: float = 8.0, fps=25, sample_rate: int = 16000,
              size: int = 128, scene: Optional[str] = None, material: Optional[str] = None,
              scenes: Optional[Sequence[str]] = None,
              materials: Optional[Sequence[str]] = None) -> SyntheticClip:
    """Generate one clip. `scene`/`material` force a choice; `scenes`/`materials` restrict it."""
    fps = Fraction(fps).limit_denominator(1001)
    if duration_s <= 0.5 or fps <= 0 or sample_rate < 8000 or size < 32:
        raise FoleyError("need duration_s > 0.5, fps > 0, sample_rate >= 8000 and size >= 32")
    n_frames = int(round(duration_s * fps))
    duration_s = float(n_frames / fps)  # the clip covers whole frames exactly
    scene_name, material = _choose(_stream(seed, 0), scene, scenes, material, materials)
    timeline = SCENE_BUILDERS[scene_name](_stream(seed, 1), duration_s, material)
    audio = render_soundtrack(timeline.events, timeline.segments, duration_s, sample_rate,
                              _stream(seed, 2))
    peak = float(np.max(np.abs(audio)))
    gain = 1.0 if peak <= PEAK_LIMIT else PEAK_LIMIT / peak  # rare: keep the waveform unclipped
    audio = (audio * np.float32(gain)).astype(np.float32)
    frames = render_frames(timeline, fps, size, _stream(seed, 3))
    meta = {
        "format": FORMAT,
        "seed": int(seed),
        "duration_s": duration_s,
        "fps": f"{fps.numerator}/{fps.denominator}",
        "n_frames": n_frames,
        "sample_rate": int(sample_rate),
        "n_samples": int(len(audio)),
        "size": [size, size],
        "scene": scene_name,
        "material": material,
        "materials": sorted({e.material for e in timeline.events} | {material}),
        "scene_params": timeline.params,
        "gain": gain,
        "events": [dict(e.to_json(), frame=event_frame(e.time_s, fps)) for e in timeline.events],
    }
    return SyntheticClip(frames, fps, audio, int(sample_rate), list(timeline.events), meta, timeline)
