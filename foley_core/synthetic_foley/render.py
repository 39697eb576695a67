"""Draw a scene's frames with numpy: a material-textured surface, the scene's bodies, distractors.

Layout: the surface fills the rows from `floor_row(height)` down; a body with lift 0 has its
bottom pixel row at floor_row - 1 (touching), and a lift of at least one pixel leaves a visible
gap. Distractors (a floating disc, a hovering square that never lands, a slow lighting drift)
move without making sound, so "something moved" never implies "something sounded".
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import List, Tuple

import numpy as np

from .materials import get_material
from .scenes import Body, Scene

FLOOR_FRACTION = 0.78  # the surface starts at this fraction of the frame height


def floor_row(height: int) -> int:
    """First pixel row of the surface."""
    return int(round(FLOOR_FRACTION * height))


def body_bottom_row(body: Body, height: int) -> float:
    """Bottom edge of `body` in continuous pixel coordinates (row r spans [r, r + 1))."""
    return floor_row(height) - body.lift * height


def _jitter(colour, rng: np.random.Generator, amount: float = 0.06) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) * (1 + rng.normal(0, amount, 3)), 0, 255)


def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid, bilinearly upsampled."""
    h, w = shape
    grid = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
    ys, xs = np.linspace(0, cells, h), np.linspace(0, cells, w)
    y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def surface_texture(material_name: str, shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Float RGB [h, w, 3] surface patch whose colour and pattern identify the material."""
    material = get_material(material_name)
    h, w = shape
    base = _jitter(material.colour, rng)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = material.texture
    if kind == "grain":  # wavy horizontal wood grain
        shade = 1 + 0.18 * np.sin(2 * np.pi * y / rng.uniform(3, 5) + 1.5 * np.sin(x / rng.uniform(7, 12)))
    elif kind == "brushed":  # fine horizontal streaks and a sheen band
        shade = 1 + 0.06 * rng.standard_normal((h, 1)) + 0.18 * np.exp(-((y - 0.3 * h) / (0.2 * h)) ** 2)
    elif kind == "glass":  # pale with bright diagonal reflections
        shade = 1 + 0.25 * (np.sin((x + y) / rng.uniform(2.5, 4)) > 0.85)
    elif kind == "speckle":  # grey stone with fine grit and darker patches
        shade = 1 + 0.12 * rng.standard_normal((h, w)) + 0.1 * _smooth_noise(rng, shape, 6)
    elif kind == "smooth":  # flat plastic with a soft highlight
        shade = 1 + 0.12 * np.exp(-((y - 0.25 * h) / (0.15 * h)) ** 2)
    elif kind == "pebbles":  # many small stones of different shades
        shade = np.full((h, w), 0.75, np.float32)
        for _ in range(int(h * w / 12)):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.0, 2.5)
            shade[(y - cy) ** 2 + (x - cx) ** 2 <= r * r] = rng.uniform(0.7, 1.3)
    elif kind == "blotch":  # dark uneven soil
        shade = 1 + 0.25 * _smooth_noise(rng, shape, 5) + 0.06 * rng.standard_normal((h, w))
    else:
        shade = np.ones((h, w), np.float32)
    return np.clip(base * shade[..., None], 0, 255)


def _fill(img: np.ndarray, mask_fn, box: Tuple[float, float, float, float], colour) -> None:
    """Paint pixels whose centres satisfy mask_fn(yc, xc) inside box (top, bottom, left, right)."""
    h, w = img.shape[:2]
    top, bottom, left, right = box
    r0, r1 = max(0, int(math.floor(top))), min(h, int(math.ceil(bottom)))
    c0, c1 = max(0, int(math.floor(left))), min(w, int(math.ceil(right)))
    if r0 >= r1 or c0 >= c1:
        return
    yc = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
    xc = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5
    region = img[r0:r1, c0:c1]
    region[mask_fn(yc, xc)] = colour


def draw_rect(img, top, bottom, left, right, colour) -> None:
    _fill(img, lambda yc, xc: (yc >= top) & (yc < bottom) & (xc >= left) & (xc < right),
          (top, bottom, left, right), colour)


def draw_disc(img, cy, cx, radius, colour) -> None:
    _fill(img, lambda yc, xc: (yc - cy) ** 2 + (xc - cx) ** 2 <= radius * radius,
          (cy - radius, cy + radius, cx - radius, cx + radius), colour)


def draw_line(img, p0, p1, thickness, colour) -> None:
    """Thick segment from p0 to p1 ((row, col) points): pixels within thickness/2 of it."""
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    length2 = max(1e-9, dy * dy + dx * dx)
    r = thickness / 2

    def inside(yc, xc):
        s = np.clip(((yc - y0) * dy + (xc - x0) * dx) / length2, 0, 1)
        return (yc - y0 - s * dy) ** 2 + (xc - x0 - s * dx) ** 2 <= r * r

    _fill(img, inside, (min(y0, y1) - r, max(y0, y1) + r, min(x0, x1) - r, max(x0, x1) + r), colour)


def draw_body(img: np.ndarray, body: Body) -> None:
    h, w = img.shape[:2]
    bottom = body_bottom_row(body, h)
    cx, bw, bh = body.x * w, body.width * h, body.height * h
    if body.shape == "disc":
        draw_disc(img, bottom - bw / 2, cx, bw / 2, body.colour)
    elif body.shape == "hammer":  # head, then a handle up to the top of the frame
        draw_rect(img, 0, bottom - bh, cx - 0.015 * h, cx + 0.015 * h, (120, 85, 50))
        draw_rect(img, bottom - bh, bottom, cx - bw / 2, cx + bw / 2, body.colour)
    elif body.shape == "walker_torso":
        draw_rect(img, bottom - bh, bottom - 0.3 * bh, cx - bw / 2, cx + bw / 2, body.colour)
        draw_disc(img, bottom - bh - 0.06 * h, cx, 0.055 * h, (225, 190, 160))
    else:
        draw_rect(img, bottom - bh, bottom, cx - bw / 2, cx + bw / 2, body.colour)


class Distractors:
    """Silent motion: a floating disc, a square that hovers near the surface, lighting drift."""

    def __init__(self, rng: np.random.Generator):
        self.colours = [tuple(int(c) for c in rng.integers(30, 255, 3)) for _ in range(2)]
        self.freqs = rng.uniform(0.1, 0.6, 4)
        self.phases = rng.uniform(0, 2 * np.pi, 5)
        self.light_hz = rng.uniform(0.05, 0.2)

    def draw(self, img: np.ndarray, t: float) -> None:
        h, w = img.shape[:2]
        f, p = self.freqs, self.phases
        cx = w * (0.5 + 0.38 * math.sin(2 * math.pi * f[0] * t + p[0]))
        cy = h * (0.25 + 0.12 * math.sin(2 * math.pi * f[1] * t + p[1]))
        draw_disc(img, cy, cx, 0.05 * h, self.colours[0])
        # hovers down towards the surface but its gap never closes below 4 % of the height
        gap = h * (0.04 + 0.14 * (0.5 + 0.5 * math.sin(2 * math.pi * f[2] * 2 * t + p[2])))
        sx = w * (0.5 + 0.42 * math.sin(2 * math.pi * f[3] * t + p[3]))
        bottom = floor_row(h) - gap
        draw_rect(img, bottom - 0.07 * h, bottom, sx - 0.035 * h, sx + 0.035 * h, self.colours[1])

    def light(self, t: float) -> float:
        return 1.0 + 0.08 * math.sin(2 * math.pi * self.light_hz * t + self.phases[4])


def render_frames(scene: Scene, fps: Fraction, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 frames [T, size, size, 3]; frame k shows time k / fps (exposure ±half a frame)."""
    fps = Fraction(fps)
    n_frames = int(round(scene.duration_s * fps))
    h = w = size
    fr = floor_row(h)
    background = np.empty((h, w, 3), np.float32)
    wall = _jitter(rng.integers(150, 230, 3), rng, 0.0)
    background[:fr] = wall * np.linspace(0.85, 1.05, fr, dtype=np.float32)[:, None, None]
    background[fr:] = surface_texture(scene.material, (h - fr, w), rng)
    background = np.clip(background, 0, 255).astype(np.uint8)
    distractors = Distractors(rng)
    half = float(1 / (2 * fps))
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    bodies_first = ("torso",)
    for k in range(n_frames):
        t = float(k / fps)
        img = background.copy()
        distractors.draw(img, t)
        bodies = scene.pose(t, half)
        bodies.sort(key=lambda b: b.name not in bodies_first)
        torso = next((b for b in bodies if b.name == "torso"), None)
        for body in bodies:
            if torso is not None and body.name.startswith("foot"):
                hip = (body_bottom_row(torso, h) - 0.3 * torso.height * h, torso.x * w)
                knee_top = body_bottom_row(body, h) - body.height * h
                draw_line(img, hip, (knee_top, body.x * w), 0.03 * h, (40, 40, 70))
            draw_body(img, body)
        lut = np.clip(np.arange(256) * distractors.light(t), 0, 255).astype(np.uint8)
        frames[k] = lut[img]
    return frames
