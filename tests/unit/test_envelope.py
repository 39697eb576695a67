"""Stable-V2A RMS envelope: frame convention, normalisation, smoothing, μ-law, label smoothing."""

import librosa
import numpy as np
import pytest
import torch

from foley_core.controls import (
    Envelope,
    mu_law_decode,
    mu_law_encode,
    resample_envelope,
    rms_envelope,
    smoothed_targets,
)

SR = 16000


def _sine(seconds, sr=SR, freq=440.0, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(seconds, sr=SR, seed=0):
    return np.random.default_rng(seed).standard_normal(int(seconds * sr)).astype(np.float32) * 0.3


def test_ten_seconds_give_1250_frames_at_125_hz():
    env = rms_envelope(_noise(10.0), SR)
    assert env.n_frames == 1250
    assert env.frame_rate == 125.0
    assert env.values.dtype == np.float32
    # librosa's centred RMS has one more frame, centred on the very end of the clip.
    assert librosa.feature.rms(y=_noise(10.0), frame_length=512, hop_length=128).shape[-1] == 1251


@pytest.mark.parametrize("n_samples", [160000, 16000, 1000, 129])
def test_unsmoothed_envelope_is_librosa_rms_without_the_end_frame(n_samples):
    y = _noise(1.0 + n_samples / SR)[:n_samples]
    ours = rms_envelope(y, SR, smoothing=0, normalize=False).values
    ref = librosa.feature.rms(y=y, frame_length=512, hop_length=128, center=True)[0]
    assert ours.shape[0] == int(np.ceil(n_samples / 128))
    np.testing.assert_allclose(ours, ref[: ours.shape[0]], rtol=1e-6, atol=1e-7)


def test_other_sample_rates_are_resampled_to_16k_first():
    y44 = _noise(10.0, sr=44100)
    assert rms_envelope(y44, 44100).n_frames == 1250


def test_torch_stereo_input_matches_numpy_mono_mix():
    left, right = _noise(2.0, seed=1), _noise(2.0, seed=2)
    stereo = torch.from_numpy(np.stack([left, right]))[None]  # [1, 2, T] host layout
    a = rms_envelope(stereo, SR).values
    b = rms_envelope((left + right) / 2, SR).values
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_normalisation_removes_level_and_bounds_values():
    y = _sine(1.0, amp=0.8)
    loud = rms_envelope(y, SR, smoothing=0).values
    quiet = rms_envelope(y * 0.05, SR, smoothing=0).values
    np.testing.assert_allclose(loud, quiet, rtol=1e-4)
    # Peak-normalised full sine: interior RMS = 1/sqrt(2), never above 1.
    assert loud[10:-10] == pytest.approx(np.full(loud.shape[0] - 20, 2**-0.5), abs=0.01)
    assert loud.max() <= 1.0
    raw = rms_envelope(y * 0.05, SR, smoothing=0, normalize=False).values
    assert raw[10:-10].mean() == pytest.approx(0.05 * 0.8 * 2**-0.5, rel=0.02)


def test_smoothing_spreads_a_click_and_keeps_its_area():
    y = np.zeros(SR, np.float32)
    y[8000:8064] = 1.0  # a 4 ms burst, well inside the clip
    raw = rms_envelope(y, SR, smoothing=0).values
    smooth = rms_envelope(y, SR, smoothing=15).values
    assert smooth.max() < 0.5 * raw.max()
    assert np.count_nonzero(smooth > 1e-6) >= np.count_nonzero(raw > 1e-6) + 14
    assert smooth.sum() == pytest.approx(raw.sum(), rel=1e-4)
    # A steady sine is left unchanged away from the edges.
    steady_raw = rms_envelope(_sine(1.0), SR, smoothing=0).values
    steady = rms_envelope(_sine(1.0), SR).values
    np.testing.assert_allclose(steady[20:-20], steady_raw[20:-20], atol=1e-3)


def test_mu_law_classes_cover_0_to_63_and_round_trip():
    r = np.linspace(0, 1, 10001)
    c = mu_law_encode(r)
    assert c.dtype == np.int64
    assert c[0] == 0 and c[-1] == 63
    assert set(np.unique(c)) == set(range(64))
    assert np.all(np.diff(c) >= 0)
    back = mu_law_decode(c)
    mu = 63
    bound = (r + 1 / mu) * ((1 + mu) ** (1 / (2 * mu)) - 1)
    assert np.all(np.abs(back - r) <= bound + 1e-7)
    np.testing.assert_array_equal(mu_law_encode(mu_law_decode(np.arange(64))), np.arange(64))
    assert mu_law_decode(np.array([0, 63])).tolist() == pytest.approx([0.0, 1.0])


def test_mu_law_gives_quiet_values_more_classes():
    # The point of μ-law: [0, 0.1] gets about half of the 64 classes (a linear scale gives it 6).
    assert mu_law_encode(np.array([0.1]))[0] >= 28


def test_gaussian_label_smoothing_eq9():
    t = smoothed_targets(np.array([10, 0, 1]), 64, sigma=1.0, window=2)
    assert t.shape == (3, 64)
    row = t[0]
    assert row[10] == 1.0
    assert row[9] == pytest.approx(np.exp(-0.5)) and row[11] == pytest.approx(np.exp(-0.5))
    assert row[8] == pytest.approx(np.exp(-2.0)) and row[12] == pytest.approx(np.exp(-2.0))
    assert row[7] == 0 and row[13] == 0
    np.testing.assert_array_equal(t[1], np.eye(64)[0])  # silence stays one-hot
    assert t[2, 0] == 0 and t[2, 1] == 1.0  # no mass leaks into the silence class
    norm = smoothed_targets(np.array([[5, 6]]), 64, sigma=2.0, normalize=True)
    assert norm.shape == (1, 2, 64)
    np.testing.assert_allclose(norm.sum(-1), 1.0, rtol=1e-6)


def test_resample_envelope_by_length_and_by_rate():
    env = Envelope(values=np.linspace(0, 1, 1250, dtype=np.float32), frame_rate=125.0)
    slow = resample_envelope(env, frame_rate=50.0)
    assert isinstance(slow, Envelope) and slow.n_frames == 500 and slow.frame_rate == 50.0
    assert slow.duration == pytest.approx(env.duration)
    np.testing.assert_allclose(slow.values, np.interp(slow.times(), env.times(), env.values), atol=1e-6)
    longer = resample_envelope(env.values, 2500)
    assert isinstance(longer, np.ndarray) and longer.shape == (2500,)
    assert longer[0] == 0 and longer[::2] == pytest.approx(env.values, abs=1e-6)
    with pytest.raises(ValueError):
        resample_envelope(env)
