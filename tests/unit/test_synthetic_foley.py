"""Synthetic Foley benchmark: reproducible clips whose audio onsets, picture contacts, timbres and
written files match the JSON ground truth."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from scipy.fft import dct

from foley_core.errors import FoleyError
from foley_core.media.video import probe_video
from foley_core.synthetic_foley import (
    EVENT_KINDS, MATERIALS, ONSET_KINDS, SCENES, event_frame, generate_dataset, make_clip,
    materials_for_scene,
)
from foley_core.synthetic_foley.scenes import SCENE_BUILDERS
from foley_core.synthetic_foley.render import floor_row
from foley_core.synthetic_foley.sound import render_soundtrack

SR = 16000
# (scene, material) pairs covering every scene and every material
CASES = [("drop", "wood"), ("drop", "glass"), ("strike", "metal"), ("strike", "stone"),
         ("walk", "gravel"), ("walk", "dirt"), ("scrape", "plastic"), ("scrape", "metal")]


def _rise_db(audio: np.ndarray, sr: int, times: np.ndarray) -> np.ndarray:
    """Energy jump at each time: 5 ms after vs 15 ms before, in dB."""
    csum = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    idx = np.round(times * sr).astype(int)
    a, b = int(0.005 * sr), int(0.015 * sr)
    lo, hi = np.clip(idx - b, 0, len(audio)), np.clip(idx + a, 0, len(audio))
    idx = np.clip(idx, 0, len(audio))
    after = (csum[hi] - csum[idx]) / a
    before = (csum[idx] - csum[lo]) / b
    return 10 * np.log10((after + 1e-12) / (before + 1e-12))


def _level_db(audio, sr, t0, t1) -> float:
    seg = audio[int(t0 * sr): int(t1 * sr)]
    return 10 * np.log10(np.mean(seg.astype(np.float64) ** 2) + 1e-12)


def _onset_errors(audio, sr, events, search_s=0.06):
    """For each onset event: (time of the largest energy jump within ±search_s) - event time."""
    errors = []
    for e in events:
        if e.kind not in ONSET_KINDS:
            continue
        grid = e.time_s + np.arange(-search_s, search_s + 1e-9, 0.001)
        rise = _rise_db(audio, sr, grid)
        errors.append((grid[int(np.argmax(rise))] - e.time_s, float(rise.max())))
    return errors


@pytest.fixture(scope="module")
def clips():
    return {case: make_clip(7 + i, duration_s=8.0, scene=case[0], material=case[1])
            for i, case in enumerate(CASES)}


def test_same_seed_same_clip_and_different_seed_differs():
    a, b = make_clip(3, duration_s=3.0), make_clip(3, duration_s=3.0)
    assert json.dumps(a.meta) == json.dumps(b.meta)
    assert np.array_equal(a.audio, b.audio) and np.array_equal(a.frames, b.frames)
    c = make_clip(4, duration_s=3.0)
    assert json.dumps(c.meta) != json.dumps(a.meta) and not np.array_equal(c.audio, a.audio)


def test_clip_shapes_and_event_spacing(clips):
    for (scene, material), clip in clips.items():
        assert clip.frames.shape == (200, 128, 128, 3) and clip.frames.dtype == np.uint8
        assert clip.audio.shape == (8 * SR,) and clip.audio.dtype == np.float32
        assert clip.fps == Fraction(25) and np.isfinite(clip.audio).all()
        assert np.abs(clip.audio).max() < 1.0
        assert 3 <= len(clip.events) <= 15, (scene, len(clip.events))
        assert {e.material for e in clip.events} == {material}
        times = [e.time_s for e in clip.events]
        assert times == sorted(times) and 0 < times[0] and times[-1] < 8.0
        assert min(np.diff(times)) >= 0.15, (scene, material)


def test_event_counts_and_gaps_over_many_seeds():
    for seed in range(40):  # timelines only (no rendering), every scene and material
        scene = SCENES[seed % len(SCENES)]
        material = materials_for_scene(scene)[seed % len(materials_for_scene(scene))]
        timeline = SCENE_BUILDERS[scene](np.random.default_rng(seed), 8.0, material)
        assert 3 <= len(timeline.events) <= 15, (seed, scene)
        gaps = np.diff([e.time_s for e in timeline.events])
        assert (gaps >= 0.15).mean() >= 0.9, (seed, scene)


def test_every_onset_event_starts_a_sound_within_10ms(clips):
    for case, clip in clips.items():
        for error, rise in _onset_errors(clip.audio, SR, clip.events):
            assert abs(error) <= 0.010 and rise > 3.0, (case, error, rise)


def test_no_big_onsets_away_from_events(clips):
    for case, clip in clips.items():
        grid = np.arange(0.02, 7.99, 0.0025)
        rise = _rise_db(clip.audio, SR, grid)
        peak_db = 20 * np.log10(np.abs(clip.audio).max())
        loud = np.array([_level_db(clip.audio, SR, t, t + 0.005) for t in grid]) > peak_db - 30
        onsets = [e.time_s for e in clip.events if e.kind in ONSET_KINDS]
        for t in grid[(rise > 12) & loud]:
            assert any(-0.01 <= t - o <= 0.1 for o in onsets), (case, t)


def test_scrape_end_silences_the_scrape(clips):
    clip = clips[("scrape", "metal")]
    for e in clip.events:
        if e.kind == "scrape_end":
            during = _level_db(clip.audio, SR, e.time_s - 0.06, e.time_s - 0.02)
            after = _level_db(clip.audio, SR, e.time_s + 0.03, e.time_s + 0.08)
            assert after < during - 20, (e.time_s, during, after)


def test_onset_check_catches_a_50ms_audio_shift(clips):
    clip = clips[("strike", "metal")]
    shifted = np.concatenate([np.zeros(int(0.05 * SR), np.float32), clip.audio])[: len(clip.audio)]
    errors = _onset_errors(shifted, SR, clip.events)
    assert all(abs(err) > 0.010 for err, _ in errors)


def test_contact_is_visible_on_the_event_frame(clips):
    for (scene, material), clip in clips.items():
        h = clip.frames.shape[1]
        half = float(1 / (2 * clip.fps))
        for e in clip.events:
            if e.kind not in ("impact", "step", "scrape_start"):
                continue
            k = event_frame(e.time_s, clip.fps)
            t = float(k / clip.fps)
            touching = [b for b in clip.scene.pose(t, half)
                        if b.lift == 0.0 and b.name != "torso"]
            assert touching, (scene, e.time_s)
            if scene in ("drop", "strike"):  # the striker is in the air one frame before
                before = clip.scene.pose(t - float(1 / clip.fps), half)
                if not any(abs(o.time_s - (t - 2 * half)) < half for o in clip.events):
                    assert before[0].lift > 0, (scene, e.time_s)
            # pixel check: the row just above the surface shows the touching body's colour
            body = touching[0]
            col = min(h - 1, int(body.x * h))
            pixel = clip.frames[k, floor_row(h) - 1, col].astype(int)
            background = clip.frames[k, floor_row(h) - 1, (col + h // 2) % h].astype(int)
            expected = np.array(body.colour)
            light = 1 + 0.1  # lighting drift is at most ±8 %
            assert np.all(np.abs(pixel - expected) <= expected * (light - 1) + 3), (scene, pixel, expected)
            assert np.abs(pixel - background).max() > 0 or np.array_equal(expected, background)


def test_striker_is_clear_of_the_surface_between_hits(clips):
    clip = clips[("strike", "metal")]
    h, fps = clip.frames.shape[1], clip.fps
    for a, b in zip(clip.events, clip.events[1:]):
        t = 0.5 * (a.time_s + b.time_s)
        hammer = clip.scene.pose(float(event_frame(t, fps) / fps), float(1 / (2 * fps)))[0]
        assert hammer.lift * h >= 1.0


def _timbre(audio, sr=SR, n_fft=512, bands=24):
    """Mean and std of MFCC-like coefficients 1..12 over the frames that carry sound (c0, the
    loudness, is left out: it says how hard and how often things hit, not what they are made of)."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::256] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    edges = np.geomspace(60, 0.45 * sr, bands + 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    mel = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in zip(edges, edges[1:])], 1)
    logmel = np.log(mel + 1e-8)
    energy = power.sum(1)
    active = energy > energy.max() * 1e-3
    mfcc = dct(logmel[active], axis=1, norm="ortho")[:, 1:13]
    return np.concatenate([mfcc.mean(0), mfcc.std(0)])


def test_materials_are_separable_by_a_simple_timbre_descriptor():
    names = sorted(MATERIALS)
    features = {m: [_timbre(make_clip(100 + 10 * i + j, duration_s=3.0, size=32, material=m).audio)
                    for j in range(4)] for i, m in enumerate(names)}
    correct = total = 0
    for m in names:  # leave-one-out nearest centroid
        for j in range(4):
            cents = {n: np.mean([f for k, f in enumerate(features[n]) if not (n == m and k == j)], 0)
                     for n in names}
            guess = min(names, key=lambda n: np.linalg.norm(features[m][j] - cents[n]))
            correct += guess == m
            total += 1
    assert correct / total >= 0.9, correct / total


def test_written_dataset_decodes_and_matches_ground_truth(tmp_path):
    index = generate_dataset(tmp_path, 2, seed=5, duration_s=2.0, size=64)
    assert [c["name"] for c in index["clips"]] == ["clip_00000", "clip_00001"]
    assert json.loads((tmp_path / "index.json").read_text()) == index
    meta = json.loads((tmp_path / "clip_00000.json").read_text())
    for key, kind in {"seed": int, "duration_s": float, "fps": str, "sample_rate": int,
                      "scene": str, "material": str, "materials": list, "events": list,
                      "video": str, "audio_wav": str}.items():
        assert isinstance(meta[key], kind), key
    assert meta["fps"] == "25/1" and meta["scene"] in SCENES and meta["material"] in MATERIALS
    for e in meta["events"]:
        assert set(e) == {"time_s", "kind", "material", "strength", "frame"}
        assert e["kind"] in EVENT_KINDS and 0 <= e["strength"] <= 1 and 0 <= e["time_s"] < 2.0
    clip = make_clip(meta["seed"], duration_s=2.0, size=64)  # the JSON regenerates the clip
    assert clip.meta["events"] == meta["events"]

    info = probe_video(tmp_path / meta["video"])
    assert info.frame_rate == 25 and (info.width, info.height) == (64, 64)
    assert abs(info.duration_s - 2.0) < 1 / 25 and info.has_audio and info.audio_sample_rate == SR
    with av.open(str(tmp_path / meta["video"])) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(tmp_path / meta["video"])) as container:
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert frames == 50
    assert abs(len(decoded) - 2 * SR) <= 2048
    # AAC is lossy but must stay in time with the clean track: correlation peaks near lag 0
    n = min(len(decoded), len(clip.audio))
    lags = range(-160, 161, 4)
    corr = [np.dot(np.roll(decoded[:n], -lag), clip.audio[:n]) for lag in lags]
    assert abs(list(lags)[int(np.argmax(corr))]) <= 16  # within 1 ms


def test_44k_audio_and_bad_arguments():
    clip = make_clip(1, duration_s=2.0, sample_rate=44100, size=32, scene="strike", material="glass")
    assert clip.audio.shape == (88200,)
    for error, rise in _onset_errors(clip.audio, 44100, clip.events):
        assert abs(error) <= 0.010
    with pytest.raises(FoleyError):
        make_clip(1, material="cheese")
    with pytest.raises(FoleyError):
        make_clip(1, scene="explosion")


def test_soundtrack_is_silent_without_events():
    audio = render_soundtrack([], [], 1.0, SR, np.random.default_rng(0))
    assert np.abs(audio).max() < 0.01
