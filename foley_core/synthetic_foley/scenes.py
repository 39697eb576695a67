"""Procedural scene timelines: exact event times plus the motion that causes them.

A scene owns both the ground-truth events and the geometry the renderer draws, so the picture
and the soundtrack come from one timeline. Geometry is in frame fractions: x across the width,
`lift` = gap between a body's bottom and the surface as a fraction of the frame height.
Renderers ask for a frame's pose with the frame's exposure window; a body whose contact falls
inside that window is drawn touching the surface, so each event's nearest frame shows contact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Sequence, Tuple

import numpy as np

ONSET_KINDS = ("impact", "step", "scrape_start")  # event kinds that start a sound
EVENT_KINDS = ONSET_KINDS + ("scrape_end",)
SCENES = ("drop", "strike", "walk", "scrape")
MIN_GAP_S = 0.15  # smallest gap between sound onsets, so 0.1 s onset tolerance is unambiguous
G = 9.81  # m/s^2 for the dropped ball
METRES_TO_FRAME = 0.55  # 1 m of drop height spans this fraction of the frame height


@dataclass(frozen=True)
class Event:
    time_s: float
    kind: str  # one of EVENT_KINDS
    material: str
    strength: float  # 0..1, drives loudness and brightness

    def to_json(self) -> dict:
        return {"time_s": self.time_s, "kind": self.kind, "material": self.material,
                "strength": self.strength}


@dataclass(frozen=True)
class Body:
    name: str  # "ball", "hammer", "foot_left", "torso", "block" ...
    shape: str  # "disc" | "rect" | "hammer" | "walker_torso"
    x: float  # horizontal centre, fraction of width
    lift: float  # gap between bottom and surface, fraction of height (0 = touching)
    width: float  # fraction of height (so shapes keep their aspect on any frame size)
    height: float
    colour: Tuple[int, int, int]


@dataclass(frozen=True)
class ScrapeSegment:
    start_s: float
    end_s: float
    material: str
    strength: float
    mod_hz: float  # hand-speed wobble, heard as loudness modulation
    mod_phase: float

    def speed(self, t: np.ndarray) -> np.ndarray:
        """Relative sliding speed (0.55..1) at times t; the sound's loudness follows it."""
        return 0.775 + 0.225 * np.sin(2 * np.pi * self.mod_hz * (t - self.start_s) + self.mod_phase)

    def distance(self, t: float) -> float:
        """Integral of speed from start_s to t (seconds of full-speed travel)."""
        u = min(max(t, self.start_s), self.end_s) - self.start_s
        w = 2 * np.pi * self.mod_hz
        return 0.775 * u + 0.225 * (math.cos(self.mod_phase) - math.cos(w * u + self.mod_phase)) / w


def _r(value: float, digits: int = 6) -> float:
    """Round stored numbers so the JSON ground truth is exactly what was synthesised."""
    return float(round(value, digits))


def _contact_in(times: Sequence[float], t: float, half: float) -> bool:
    return any(t - half <= c < t + half for c in times)


def _swing_lift(t: float, contacts: Sequence[float], peak: Sequence[float], swing_s: float) -> float:
    """Lift of a striking body: quadratic approach to each contact, resting at `peak` between."""
    if not contacts:
        return peak[0] if peak else 0.2
    i = int(np.argmin([abs(t - c) for c in contacts]))
    u = min(1.0, abs(t - contacts[i]) / swing_s)
    return peak[i] * u * u


@dataclass
class Scene:
    name: str
    duration_s: float
    material: str
    events: List[Event]
    pose_fn: Callable[[float, float], List[Body]] = field(repr=False)
    segments: List[ScrapeSegment] = field(default_factory=list)
    params: dict = field(default_factory=dict)  # stored in the JSON ground truth

    def pose(self, t: float, half_frame_s: float = 0.0) -> List[Body]:
        """Bodies to draw for a frame at time t exposed over [t - half, t + half)."""
        return self.pose_fn(t, half_frame_s)


def _max_events(duration_s: float) -> int:
    return max(3, int(round(15 * duration_s / 8.0)))


def make_drop_scene(rng: np.random.Generator, duration_s: float, material: str) -> Scene:
    """A ball dropped onto the surface bounces (gravity + restitution), settles, is lifted, again."""
    radius = float(rng.uniform(0.05, 0.08))
    colour = tuple(int(c) for c in rng.integers(40, 255, 3))
    events: List[Event] = []
    # (t0, t1, kind, a, b): kind "fly" h = a + b*(t-t0) - g/2 (t-t0)^2; "rest" h=0; "lift" to a
    pieces: List[tuple] = []
    xs: List[Tuple[float, float]] = []  # (from time, x)
    t = 0.0
    x = float(rng.uniform(0.3, 0.7))
    h0 = float(rng.uniform(0.5, 1.0))
    pieces.append((t, t + float(rng.uniform(0.1, 0.6)), "hold", h0, 0.0))
    xs.append((0.0, x))
    restitution = float(rng.uniform(0.5, 0.72))
    v_ref = math.sqrt(2 * G * 1.0)
    while len(events) < _max_events(duration_s):
        t = pieces[-1][1]
        t_fall = math.sqrt(2 * h0 / G)
        pieces.append((t, t + t_fall, "fly", h0, 0.0))
        t += t_fall
        v = G * t_fall
        while t < duration_s and len(events) < _max_events(duration_s):
            events.append(Event(_r(t), "impact", material, _r(min(1.0, v / v_ref), 4)))
            v *= restitution
            flight = 2 * v / G
            if flight < 0.2:  # further bounces would crowd the onsets: the ball settles
                break
            pieces.append((t, t + flight, "fly", 0.0, v))
            t += flight
        rest = float(rng.uniform(0.3, 0.9))
        h0 = float(rng.uniform(0.5, 1.0))
        lift = float(rng.uniform(0.5, 0.9))
        pieces.append((t, t + rest, "rest", 0.0, 0.0))
        pieces.append((t + rest, t + rest + lift, "lift", h0, 0.0))
        x = float(np.clip(x + rng.uniform(-0.2, 0.2), 0.2, 0.8))
        xs.append((t + rest, x))
        pieces.append((t + rest + lift, t + rest + lift + float(rng.uniform(0.1, 0.5)), "hold", h0, 0.0))
        if pieces[-1][1] >= duration_s:
            break
    events = [e for e in events if e.time_s < duration_s - 0.05]
    contacts = [e.time_s for e in events]

    def height(tq: float) -> float:
        for t0, t1, kind, a, b in pieces:
            if tq < t1:
                dt = max(0.0, tq - t0)
                if kind == "fly":
                    return max(0.0, a + b * dt - 0.5 * G * dt * dt)
                if kind == "lift":  # smooth pick-up back to the drop height
                    return a * 0.5 * (1 - math.cos(math.pi * dt / (t1 - t0)))
                return a
        return pieces[-1][3] if pieces[-1][2] == "hold" else 0.0

    def pose(tq: float, half: float) -> List[Body]:
        lift = 0.0 if _contact_in(contacts, tq, half) else height(tq) * METRES_TO_FRAME
        x_now = [xv for t0, xv in xs if t0 <= tq][-1]
        return [Body("ball", "disc", x_now, lift, 2 * radius, 2 * radius, colour)]

    return Scene("drop", duration_s, material, events, pose,
                 params={"restitution": _r(restitution, 4), "ball_radius": _r(radius, 4)})


def make_strike_scene(rng: np.random.Generator, duration_s: float, material: str) -> Scene:
    """A hammer strikes the surface block at irregular times; a higher swing hits harder."""
    events: List[Event] = []
    t = float(rng.uniform(0.3, 0.9))
    while t < duration_s - 0.1 and len(events) < _max_events(duration_s):
        events.append(Event(_r(t), "impact", material, _r(float(rng.uniform(0.35, 1.0)), 4)))
        t += float(rng.uniform(0.25, 0.9)) + (float(rng.uniform(0.4, 1.2)) if rng.random() < 0.15 else 0.0)
    contacts = [e.time_s for e in events]
    peaks = [0.12 + 0.25 * e.strength for e in events]
    swing = float(rng.uniform(0.1, 0.14))
    x = float(rng.uniform(0.35, 0.65))
    colour = tuple(int(c) for c in rng.integers(30, 90, 3))

    def pose(tq: float, half: float) -> List[Body]:
        lift = 0.0 if _contact_in(contacts, tq, half) else _swing_lift(tq, contacts, peaks, swing)
        return [Body("hammer", "hammer", x, lift, 0.16, 0.08, colour)]

    return Scene("strike", duration_s, material, events, pose, params={"swing_s": _r(swing, 4)})


def make_walk_scene(rng: np.random.Generator, duration_s: float, material: str) -> Scene:
    """A walker crosses the frame; left and right heels strike at an irregular cadence."""
    interval = float(rng.uniform(0.42, 0.7))
    times: List[float] = []
    t = float(rng.uniform(0.3, 0.8))
    while t < duration_s - 0.1 and len(times) < _max_events(duration_s):
        times.append(t)
        t += interval * float(rng.uniform(0.8, 1.2)) + (float(rng.uniform(0.3, 0.8)) if rng.random() < 0.1 else 0.0)
    events = [Event(_r(tt), "step", material, _r(float(rng.uniform(0.45, 0.95)), 4)) for tt in times]
    contacts = [e.time_s for e in events]
    direction = 1.0 if rng.random() < 0.5 else -1.0
    stride = min(0.12, 0.7 / max(1, len(contacts)))
    x_start = 0.5 - direction * stride * len(contacts) / 2
    # foot of step k lands at foot_x[k]; feet alternate, starting with a random one
    first = int(rng.integers(0, 2))
    foot_x = [x_start + direction * stride * (k + 1) for k in range(len(contacts))]
    shirt = tuple(int(c) for c in rng.integers(40, 230, 3))
    swing_height = float(rng.uniform(0.05, 0.09))

    def foot(side: int, tq: float, half: float) -> Body:
        mine = [k for k in range(len(contacts)) if (k + first) % 2 == side]
        name = ("foot_left", "foot_right")[side]
        x0 = x_start - direction * stride * 0.5 * (1 - side)
        landing = [k for k in mine if contacts[k] - half <= tq < contacts[k] + half]
        if landing:  # this frame's exposure contains the heel strike: draw the foot down
            k = landing[0]
            return Body(name, "rect", foot_x[k], 0.0, 0.07, 0.03, (30, 30, 30))
        done = [k for k in mine if contacts[k] <= tq]
        nxt = [k for k in mine if contacts[k] > tq]
        x_from = foot_x[done[-1]] if done else x0
        if not nxt:
            return Body(name, "rect", x_from, 0.0, 0.07, 0.03, (30, 30, 30))
        k = nxt[0]
        # swing starts when the other foot lands (or a default swing time before the first step)
        start = contacts[k - 1] if k >= 1 else contacts[k] - interval
        if tq < start:
            return Body(name, "rect", x_from, 0.0, 0.07, 0.03, (30, 30, 30))
        u = (tq - start) / max(1e-6, contacts[k] - start)
        return Body(name, "rect", x_from + (foot_x[k] - x_from) * u,
                    swing_height * math.sin(math.pi * u), 0.07, 0.03, (30, 30, 30))

    def pose(tq: float, half: float) -> List[Body]:
        feet = [foot(0, tq, half), foot(1, tq, half)]
        x_mid = 0.5 * (feet[0].x + feet[1].x)
        torso_lift = 0.09 + 0.5 * max(f.lift for f in feet) * 0.3
        return [Body("torso", "walker_torso", x_mid, torso_lift, 0.12, 0.32, shirt)] + feet

    return Scene("walk", duration_s, material, events, pose,
                 params={"interval_s": _r(interval, 4), "direction": int(direction)})


def make_scrape_scene(rng: np.random.Generator, duration_s: float, material: str) -> Scene:
    """A block is pressed onto the surface and slid; each slide has a start and an end event."""
    segments: List[ScrapeSegment] = []
    t = float(rng.uniform(0.3, 0.9))
    while t < duration_s - 0.6 and 2 * len(segments) < _max_events(duration_s) - 1:
        end = min(t + float(rng.uniform(0.5, 1.6)), duration_s - 0.15)
        segments.append(ScrapeSegment(_r(t), _r(end), material, _r(float(rng.uniform(0.45, 1.0)), 4),
                                      _r(float(rng.uniform(2.0, 5.0)), 4),
                                      _r(float(rng.uniform(0, 2 * np.pi)), 4)))
        t = end + float(rng.uniform(0.35, 1.1))
    events: List[Event] = []
    for s in segments:
        events += [Event(s.start_s, "scrape_start", material, s.strength),
                   Event(s.end_s, "scrape_end", material, s.strength)]
    starts = [s.start_s for s in segments]
    speed_px = float(rng.uniform(0.12, 0.25))  # frame widths per second at full speed
    colour = tuple(int(c) for c in rng.integers(40, 230, 3))
    x_first = float(rng.uniform(0.3, 0.7))

    def x_at(tq: float) -> float:
        x, direction = x_first, 1.0 if x_first < 0.5 else -1.0
        for s in segments:
            if tq <= s.start_s:
                break
            x += direction * speed_px * s.distance(tq)
            direction = -direction  # slides alternate so the block stays in frame
        return float(np.clip(x, 0.12, 0.88))

    def lift_at(tq: float, half: float) -> float:
        if _contact_in(starts, tq, half) or any(s.start_s <= tq <= s.end_s for s in segments):
            return 0.0
        gaps = [min(abs(tq - s.start_s), abs(tq - s.end_s)) for s in segments]
        u = min(1.0, min(gaps, default=1.0) / 0.15)
        return 0.12 * u * u

    def pose(tq: float, half: float) -> List[Body]:
        return [Body("block", "rect", x_at(tq), lift_at(tq, half), 0.14, 0.09, colour)]

    return Scene("scrape", duration_s, material, events, pose, segments,
                 params={"speed": _r(speed_px, 4)})


SCENE_BUILDERS = {"drop": make_drop_scene, "strike": make_strike_scene,
                  "walk": make_walk_scene, "scrape": make_scrape_scene}
