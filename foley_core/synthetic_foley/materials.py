"""The material table: how each material sounds when hit, stepped on or scraped, and how it looks.

Timbres are deliberately far apart (modal frequency sets, decay times, noise colour, graininess)
so that a simple spectral descriptor can tell materials apart, which the timbre-transfer checks
of the later stages rely on. All mode and noise frequencies stay below 7.5 kHz so the same
material sounds the same at 16 kHz and at 44.1 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from ..errors import FoleyError


@dataclass(frozen=True)
class Material:
    name: str
    mode_hz: Tuple[float, ...]  # resonant (modal) frequencies of the struck body
    mode_decay_s: Tuple[float, ...]  # exponential time constant of each mode
    mode_gain: Tuple[float, ...]  # relative amplitude of each mode at full strength
    noise_band_hz: Tuple[float, float]  # band of the contact noise (its "colour")
    noise_decay_s: float  # time constant of the contact-noise burst
    noise_gain: float  # contact noise level relative to the modes
    grains: int  # micro-impacts after a step/impact (gravel crunch); 0 = none
    level: float  # peak amplitude of a full-strength hit (sound.py calibrates to it)
    colour: Tuple[int, int, int]  # base RGB of the surface drawn in this material
    texture: str  # pattern render.py draws: grain, brushed, glass, speckle, smooth, pebbles, blotch
    scenes: Tuple[str, ...]  # scenes this material is plausible in (random choice only)


MATERIALS: Dict[str, Material] = {
    m.name: m
    for m in (
        # Dull, short and mid-low: a few low modes that die within ~0.1 s.
        Material("wood", (190.0, 430.0, 780.0, 1170.0, 1930.0), (0.09, 0.07, 0.05, 0.04, 0.025),
                 (1.0, 0.8, 0.55, 0.35, 0.2), (250.0, 2500.0), 0.012, 0.5, 0,
                 0.5, (150, 100, 55), "grain", ("drop", "strike", "walk", "scrape")),
        # Bright, inharmonic and ringing.
        Material("metal", (840.0, 1530.0, 2470.0, 3390.0, 4720.0), (0.32, 0.26, 0.2, 0.16, 0.12),
                 (1.0, 0.8, 0.6, 0.45, 0.3), (1500.0, 6000.0), 0.006, 0.25, 0,
                 0.45, (168, 174, 186), "brushed", ("drop", "strike", "walk", "scrape")),
        # Very high, pure and medium-long: a clink.
        Material("glass", (2480.0, 3920.0, 5310.0, 6650.0), (0.16, 0.12, 0.09, 0.07),
                 (1.0, 0.75, 0.5, 0.35), (3500.0, 7400.0), 0.004, 0.3, 0,
                 0.4, (165, 215, 228), "glass", ("drop", "strike", "scrape")),
        # Low thud with a short gritty crack; almost no ring.
        Material("stone", (110.0, 260.0, 540.0), (0.035, 0.025, 0.02), (1.0, 0.6, 0.35),
                 (400.0, 3200.0), 0.02, 0.9, 0,
                 0.55, (122, 122, 118), "speckle", ("drop", "strike", "walk", "scrape")),
        # Hollow mid-range knock, short.
        Material("plastic", (620.0, 1040.0, 1650.0, 2380.0), (0.06, 0.05, 0.035, 0.025),
                 (1.0, 0.9, 0.6, 0.4), (900.0, 4000.0), 0.008, 0.35, 0,
                 0.5, (205, 55, 50), "smooth", ("drop", "strike", "scrape")),
        # Crunchy: broadband grains, hardly any resonance.
        Material("gravel", (2900.0,), (0.01,), (0.2,), (1800.0, 7400.0), 0.03, 1.0, 14,
                 0.5, (150, 138, 115), "pebbles", ("walk", "scrape")),
        # Soft and muffled: very low thump, dark noise, a few soft grains.
        Material("dirt", (75.0, 160.0), (0.05, 0.035), (1.0, 0.5), (60.0, 700.0), 0.04, 0.9, 5,
                 0.55, (105, 72, 42), "blotch", ("walk", "drop")),
    )
}


def get_material(name: str) -> Material:
    """The material called `name`; a FoleyError lists the known names otherwise."""
    try:
        return MATERIALS[name]
    except KeyError:
        raise FoleyError(f"unknown material {name!r}; known: {', '.join(MATERIALS)}") from None


def materials_for_scene(scene: str, allowed=None) -> Tuple[str, ...]:
    """Materials plausible in `scene`, restricted to `allowed` names when given (sorted order)."""
    names = [m.name for m in MATERIALS.values() if scene in m.scenes]
    if allowed is not None:
        allowed = set(allowed)
        names = [n for n in names if n in allowed]
    return tuple(names)
