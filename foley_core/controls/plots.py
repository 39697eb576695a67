"""Pictures of controls for node outputs: an envelope over a thumbnail strip or a spectrogram,
and a layout heatmap. PIL only; ComfyUI IMAGE conversion is previews.to_comfy_image."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..previews import colorize, spectrogram_image
from .envelope import Envelope, as_numpy
from .layout import Layout

PLOT_WIDTH = 768
PLOT_HEIGHT = 192
CURVE_COLOUR = (64, 230, 255)
EDIT_COLOUR = (255, 196, 64)


def thumbnail_strip(frames, width: int = PLOT_WIDTH, height: int = PLOT_HEIGHT) -> Image.Image:
    """Evenly spaced frames side by side, each as wide as its aspect allows, filling `width`.

    frames: [T, H, W, 3] float 0..1 (ComfyUI IMAGE) or [T, 3, H, W] uint8.
    """
    x = as_numpy(frames)
    if x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3:
        x = x.transpose(0, 2, 3, 1)
    if x.dtype != np.uint8:
        x = (np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)
    thumb_w = max(1, round(height * x.shape[2] / max(x.shape[1], 1)))
    count = max(1, min(x.shape[0], -(-width // thumb_w)))
    strip = Image.new("RGB", (width, height))
    for i in range(count):
        frame = x[min(x.shape[0] - 1, round((i + 0.5) * x.shape[0] / count))]
        strip.paste(Image.fromarray(frame).resize((thumb_w, height), Image.BILINEAR), (i * thumb_w, 0))
    return strip


def _background(frames, mel, width: int, height: int) -> Image.Image:
    if frames is not None:
        image = thumbnail_strip(frames, width, height)
    elif mel is not None:
        image = spectrogram_image(torch.as_tensor(mel), height=height, max_width=width).resize((width, height))
    else:
        image = Image.new("RGB", (width, height), (24, 24, 32))
    # Darken so the curve reads on any picture.
    return Image.blend(image, Image.new("RGB", image.size, (0, 0, 0)), 0.45)


def _polyline(values: np.ndarray, width: int, height: int) -> list[tuple[float, float]]:
    n = max(values.shape[0], 1)
    margin = 4
    return [(i * (width - 1) / max(n - 1, 1), height - margin - float(np.clip(v, 0, 1)) * (height - 2 * margin))
            for i, v in enumerate(values)]


def envelope_plot(envelope: Envelope, *, frames=None, mel=None, original: Optional[Envelope] = None,
                  width: int = PLOT_WIDTH, height: int = PLOT_HEIGHT) -> Image.Image:
    """The envelope (0 at the bottom, 1 at the top) over video thumbnails or a spectrogram.

    `original`: the unedited prediction, drawn thin underneath when the envelope was edited.
    """
    image = _background(frames, mel, width, height)
    draw = ImageDraw.Draw(image, "RGBA")
    points = _polyline(_downsample(envelope.values, width), width, height)
    draw.polygon(points + [(width - 1, height), (0, height)], fill=CURVE_COLOUR + (70,))
    if original is not None:
        draw.line(_polyline(_downsample(original.values, width), width, height), fill=(220, 220, 220, 160), width=1)
    draw.line(points, fill=(EDIT_COLOUR if original is not None else CURVE_COLOUR) + (255,), width=2)
    return image


def layout_heatmap(layout: Layout, *, width: int = PLOT_WIDTH, height: int = 120) -> Image.Image:
    """The layout as a heatmap: time left to right, band 0 (lowest frequencies) at the bottom."""
    values = as_numpy(layout.values).astype(np.float32).T[::-1]  # [bands, frames], low band last
    # Fixed 0..1 colour scale: colorize() stretches the 1st..99th percentile, so anchor it with
    # enough hidden 0s and 1s (2 % each) that those percentiles are exactly 0 and 1.
    anchor = max(1, values.size // 50 + 1)
    anchored = np.concatenate([np.clip(values, 0.0, 1.0).reshape(-1), np.zeros(anchor), np.ones(anchor)])
    picture = colorize(anchored)[: values.size].reshape(*values.shape, 3)
    return Image.fromarray(picture).resize((width, height), Image.NEAREST)


def _downsample(values, count: int) -> np.ndarray:
    """At most `count` points evenly spread over the curve (linear interpolation)."""
    values = as_numpy(values).astype(np.float64).reshape(-1)
    if values.shape[0] <= count:
        return values
    return np.interp(np.linspace(0, values.shape[0] - 1, count), np.arange(values.shape[0]), values)


def widget_payload(envelope: Envelope, *, edited: bool, max_points: int = 400) -> dict:
    """The node's UI entry for the editor widget: values[i] sits at time i · duration_s / len(values)."""
    values = as_numpy(envelope.values).astype(np.float64)
    count = min(values.shape[0], max_points)
    sampled = np.interp(np.arange(count) * values.shape[0] / count, np.arange(values.shape[0]), values)
    return {"duration_s": float(envelope.duration), "frame_rate": float(envelope.frame_rate),
            "values": [round(float(v), 5) for v in sampled], "edited": bool(edited)}
