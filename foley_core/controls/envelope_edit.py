"""Edits of an envelope sent as JSON by the editor widget (web/) or an API client.

Contract (shared with the widget):

    {"version": 1, "mode": "replace" | "scale", "points": [[time_s, value], ...]}

- points are a piecewise-linear curve in time; before the first / after the last point the end
  value is held. Times are seconds from the start of the clip; points outside the clip are
  clipped onto it (time clamped to [0, duration]).
- "replace": the curve IS the envelope (values in [0, 1]);
- "scale": the prediction is multiplied by the curve (values are multipliers >= 0); the result
  is clipped to [0, 1], the envelope's range.
- "" (empty string), "null" or `{"points": []}` mean no edit. "version" defaults to 1 and
  "mode" to "replace".
Points should be sorted by time; unsorted points are sorted (stable, so equal times keep their
order and make a step).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ..errors import FoleyError
from .envelope import Envelope

EDIT_VERSION = 1
EDIT_MODES = ("replace", "scale")
_FIX = ('Expected {"version": 1, "mode": "replace" | "scale", "points": [[time_s, value], ...]}; '
        "clear the edited_envelope text (or press reset in the editor) to use the prediction.")


@dataclass(frozen=True)
class EnvelopeEdit:
    mode: str  # "replace" or "scale"
    times: np.ndarray  # float64 [P], ascending
    values: np.ndarray  # float64 [P]

    def curve(self, times: np.ndarray, duration_s: Optional[float] = None) -> np.ndarray:
        """The piecewise-linear curve at `times` (points clipped onto [0, duration_s] first)."""
        t = self.times if duration_s is None else np.clip(self.times, 0.0, float(duration_s))
        return np.interp(times, t, self.values)


def parse_envelope_edit(text) -> Optional[EnvelopeEdit]:
    """Validate an edit; None when it means "no edit". Raises FoleyError naming what is wrong."""
    if text is None:
        return None
    if isinstance(text, (dict, list)):
        data = text
    else:
        text = str(text).strip()
        if not text or text == "null":
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise FoleyError(f"edited_envelope is not valid JSON ({error.msg} at character {error.pos}). "
                             + _FIX) from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise FoleyError(f"edited_envelope must be a JSON object, got {type(data).__name__}. " + _FIX)
    version = data.get("version", EDIT_VERSION)
    if version != EDIT_VERSION:
        raise FoleyError(f"edited_envelope has version {version!r}; this plugin reads version {EDIT_VERSION}. "
                         "Update the plugin or re-draw the envelope.")
    mode = data.get("mode", "replace")
    if mode not in EDIT_MODES:
        raise FoleyError(f"edited_envelope mode must be \"replace\" or \"scale\", got {mode!r}. " + _FIX)
    points = data.get("points", [])
    if not isinstance(points, list):
        raise FoleyError("edited_envelope \"points\" must be a list of [time_s, value] pairs. " + _FIX)
    if not points:
        return None
    times, values = [], []
    for i, point in enumerate(points):
        if (not isinstance(point, (list, tuple)) or len(point) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in point)):
            raise FoleyError(f"edited_envelope point {i} is {point!r}; each point is [time_s, value] "
                             "with two numbers. " + _FIX)
        t, v = float(point[0]), float(point[1])
        if not (math.isfinite(t) and math.isfinite(v)):
            raise FoleyError(f"edited_envelope point {i} has a non-finite number: {point!r}.")
        if mode == "replace" and not -1e-6 <= v <= 1.0 + 1e-6:
            raise FoleyError(f"edited_envelope point {i} has value {v}; replace values lie in [0, 1] "
                             "(1 = the loudest frame). Use mode \"scale\" to multiply the prediction.")
        if mode == "scale" and v < 0:
            raise FoleyError(f"edited_envelope point {i} has multiplier {v}; scale multipliers must be >= 0.")
        times.append(t)
        values.append(min(max(v, 0.0), 1.0) if mode == "replace" else v)
    order = np.argsort(np.asarray(times), kind="stable")
    return EnvelopeEdit(mode, np.asarray(times, dtype=np.float64)[order],
                        np.asarray(values, dtype=np.float64)[order])


def apply_envelope_edit(envelope: Envelope, edit) -> Envelope:
    """The envelope with the edit applied (an EnvelopeEdit, JSON text, or None = unchanged)."""
    if not isinstance(edit, EnvelopeEdit):
        edit = parse_envelope_edit(edit)
    if edit is None:
        return envelope
    curve = edit.curve(envelope.times(), envelope.duration)
    if edit.mode == "replace":
        values = curve
    else:
        values = envelope.values.astype(np.float64) * curve
    return replace(envelope, values=np.clip(values, 0.0, 1.0).astype(np.float32))


def edited_envelope_from_scratch(edit, duration_s: float, frame_rate: float) -> Envelope:
    """An envelope drawn from nothing ("replace" edit over a silent clip of duration_s)."""
    n = max(1, int(math.ceil(float(duration_s) * frame_rate - 1e-9)))
    base = Envelope(values=np.zeros(n, dtype=np.float32), frame_rate=float(frame_rate))
    return apply_envelope_edit(base, edit)
