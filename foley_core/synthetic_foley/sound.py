"""Event sound synthesis: modal impacts, footsteps and scrapes, mixed on a sample-exact timeline.

Impacts are modal synthesis (a sum of exponentially decaying sinusoids, each hit slightly
detuned) plus a band-limited contact-noise burst; a harder hit is louder and brighter. Steps are
a damped, noisier impact plus material grains (gravel crunch). Scrapes are band-limited noise
through damped copies of the material's modes, with loudness following the sliding speed.
Every sound starts exactly at round(time_s * sample_rate), so onsets are the ground truth.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import signal

from .materials import Material, get_material
from .scenes import Event, ScrapeSegment

NOISE_FLOOR = 3e-4  # constant background hiss (about -70 dBFS), so silence has a finite level
SCRAPE_LEVEL = 0.5  # scrape loudness at full speed and strength (before the touch-down)
ATTACK_S = 0.0005  # sub-millisecond ramp: a crisp onset without a DC click


@lru_cache(maxsize=64)
def _band_sos(lo: float, hi: float, sample_rate: int) -> np.ndarray:
    nyq = 0.5 * sample_rate
    hi = min(hi, 0.95 * nyq)
    return signal.butter(2, [lo / nyq, hi / nyq], btype="band", output="sos")


def _attack(n: int, sample_rate: int) -> np.ndarray:
    ramp = max(1, int(ATTACK_S * sample_rate))
    env = np.ones(n, np.float32)
    env[:ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False, dtype=np.float32)
    return env


def _modes(material: Material, strength: float, rng: np.random.Generator, sample_rate: int,
           damping: float = 1.0) -> np.ndarray:
    """Sum of decaying sinusoids; per-hit detune and decay jitter; harder hits excite upper modes."""
    longest = max(material.mode_decay_s) * damping
    n = int(min(2.0, 6.0 * longest) * sample_rate)
    t = np.arange(n, dtype=np.float32) / np.float32(sample_rate)
    out = np.zeros(n, np.float32)
    n_modes = len(material.mode_hz)
    for i, (f, tau, g) in enumerate(zip(material.mode_hz, material.mode_decay_s, material.mode_gain)):
        f = f * (1.0 + rng.normal(0.0, 0.012))
        if f >= 0.45 * sample_rate:
            continue
        tau = tau * damping * rng.uniform(0.85, 1.15)
        # brightness: upper modes scale with a higher power of strength
        gain = g * strength ** (0.5 + 1.5 * i / max(1, n_modes - 1)) * rng.uniform(0.8, 1.2)
        phase = rng.uniform(0.0, 2 * np.pi)
        out += np.float32(gain) * np.exp(-t / np.float32(tau)) * np.sin(
            np.float32(2 * np.pi * f) * t + np.float32(phase))
    return out


def _noise_burst(material: Material, strength: float, rng: np.random.Generator, sample_rate: int,
                 decay_s: float) -> np.ndarray:
    n = int(6 * decay_s * sample_rate) + 1
    t = np.arange(n, dtype=np.float32) / np.float32(sample_rate)
    noise = rng.standard_normal(n).astype(np.float32)
    noise = signal.sosfilt(_band_sos(*material.noise_band_hz, sample_rate), noise).astype(np.float32)
    return noise * np.exp(-t / np.float32(decay_s)) * np.float32(material.noise_gain * 2.5 * strength ** 1.5)


def _grains(material: Material, strength: float, rng: np.random.Generator, sample_rate: int,
            count: int, spread_s: float) -> np.ndarray:
    """Micro-impacts that follow the main contact (pebbles settling), each quieter than it."""
    n = int((spread_s + 0.02) * sample_rate)
    out = np.zeros(n, np.float32)
    for _ in range(count):
        start = int(rng.uniform(0.004, spread_s) * sample_rate)
        burst = _noise_burst(material, strength * rng.uniform(0.2, 0.5), rng, sample_rate,
                             material.noise_decay_s * 0.15)
        burst = burst[: n - start]
        out[start : start + len(burst)] += burst
    return out


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(b) > len(a):
        a, b = b, a
    a = a.copy()
    a[: len(b)] += b
    return a


@lru_cache(maxsize=128)
def _reference_peak(material_name: str, kind: str, sample_rate: int) -> float:
    """Peak of a full-strength hit with a fixed random stream: calibrates material.level."""
    builder = {"impact": _impact_raw, "step": _step_raw}[kind]
    sound = builder(get_material(material_name), 1.0, np.random.default_rng(1234), sample_rate)
    return float(np.max(np.abs(sound))) or 1.0


def _loudness(material: Material, kind: str, strength: float, sample_rate: int) -> np.float32:
    """Gain so a full-strength hit peaks near material.level; loudness grows as strength^1.2."""
    return np.float32(material.level * strength ** 1.2 / _reference_peak(material.name, kind, sample_rate))


def impact_sound(material: Material, strength: float, rng: np.random.Generator,
                 sample_rate: int) -> np.ndarray:
    """An object hitting `material`: modes + contact noise, loudness ~ strength^1.2."""
    sound = _impact_raw(material, strength, rng, sample_rate)
    return sound * _attack(len(sound), sample_rate) * _loudness(material, "impact", strength, sample_rate)


def step_sound(material: Material, strength: float, rng: np.random.Generator,
               sample_rate: int) -> np.ndarray:
    """A heel strike: damped modes (a shoe is soft), more noise, and grains on loose ground."""
    sound = _step_raw(material, strength, rng, sample_rate)
    return sound * _attack(len(sound), sample_rate) * _loudness(material, "step", strength, sample_rate)


def _impact_raw(material: Material, strength: float, rng: np.random.Generator,
                sample_rate: int) -> np.ndarray:
    sound = _modes(material, strength, rng, sample_rate)
    sound = _add(sound, _noise_burst(material, strength, rng, sample_rate, material.noise_decay_s))
    if material.grains:
        sound = _add(sound, _grains(material, strength, rng, sample_rate, material.grains // 2, 0.05))
    return sound


def _step_raw(material: Material, strength: float, rng: np.random.Generator,
              sample_rate: int) -> np.ndarray:
    sound = 0.6 * _modes(material, strength, rng, sample_rate, damping=0.7)
    sound = _add(sound, _noise_burst(material, strength, rng, sample_rate,
                                     material.noise_decay_s * 1.2))
    if material.grains:
        sound = _add(sound, _grains(material, strength, rng, sample_rate, material.grains, 0.08))
    return sound


def scrape_sound(material: Material, segment: ScrapeSegment, rng: np.random.Generator,
                 sample_rate: int) -> np.ndarray:
    """Sliding contact from segment.start_s to end_s: resonant noise whose level follows speed."""
    n = int(round((segment.end_s - segment.start_s) * sample_rate))
    noise = rng.standard_normal(n).astype(np.float32)
    base = signal.sosfilt(_band_sos(*material.noise_band_hz, sample_rate), noise)
    # the pressed object damps the modes: resonators with short decay, so the sound stops at the end
    resonant = np.zeros(n)
    for f, tau, g in zip(material.mode_hz, material.mode_decay_s, material.mode_gain):
        if f >= 0.45 * sample_rate:
            continue
        # each mode rings as in an impact (energy ~ gain^2 * decay), capped so the sound stops
        tau = min(tau, 0.06)
        r = np.exp(-1.0 / (tau * sample_rate))
        w = 2 * np.pi * f / sample_rate
        ring = signal.lfilter([1.0], [1.0, -2 * r * np.cos(w), r * r], noise)
        resonant += g * np.sqrt(tau) * ring / (np.std(ring) + 1e-9)
    # same noise-to-resonance balance as the material's impacts, so a scrape sounds of its material
    noisy = material.noise_gain / (material.noise_gain + 1.0)
    mix = noisy * base / (np.std(base) + 1e-9) + (1 - noisy) * resonant / (np.std(resonant) + 1e-9)
    if material.grains:  # loose material crackles while dragged
        crackle = _grains(material, segment.strength, rng, sample_rate,
                          int(material.grains * 4 * (segment.end_s - segment.start_s)),
                          segment.end_s - segment.start_s)[:n]
        mix[: len(crackle)] += 3.0 * crackle / (np.max(np.abs(crackle)) + 1e-9)
    t = segment.start_s + np.arange(n) / sample_rate
    env = segment.speed(t) * (0.25 * segment.strength)
    attack, release = int(0.006 * sample_rate), int(0.02 * sample_rate)
    env[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
    env[n - release :] *= np.linspace(1.0, 0.0, release)
    sound = (mix * env).astype(np.float32) * np.float32(SCRAPE_LEVEL)
    # the object touching down: a soft impact at the start
    touch = impact_sound(material, 0.5 * segment.strength, rng, sample_rate)
    return _add(sound, touch)


def render_soundtrack(events: Sequence[Event], segments: Sequence[ScrapeSegment],
                      duration_s: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mix every event's sound at its exact sample onto a float32 track of the clip's length."""
    n = int(round(duration_s * sample_rate))
    track = (rng.standard_normal(n) * NOISE_FLOOR).astype(np.float32)
    pieces = []
    for e in events:
        material = get_material(e.material)
        if e.kind == "impact":
            pieces.append((e.time_s, impact_sound(material, e.strength, rng, sample_rate)))
        elif e.kind == "step":
            pieces.append((e.time_s, step_sound(material, e.strength, rng, sample_rate)))
    for s in segments:
        material = get_material(s.material)
        pieces.append((s.start_s, scrape_sound(material, s, rng, sample_rate)))
    for time_s, sound in pieces:
        start = int(round(time_s * sample_rate))
        if start >= n:
            continue
        sound = sound[: n - start]
        track[start : start + len(sound)] += sound
    return track
