"""The weight-free Griffin-Lim vocoder keeps events where they are and roughly keeps the mel."""

import numpy as np
import pytest
import torch

from foley_core.models.griffin_lim import GriffinLimVocoder
from foley_core.models.mel import MEL_16K, MEL_44K, MelConverter

HITS_S = (0.3, 0.9, 1.5)


def decaying_hits(sample_rate: int) -> torch.Tensor:
    wave = torch.zeros(sample_rate * 2)
    n = torch.arange(int(0.19 * sample_rate))
    for start in HITS_S:
        i = int(start * sample_rate)
        wave[i:i + len(n)] += 0.5 * torch.sin(2 * np.pi * 800 * n / sample_rate) * torch.exp(-n / (0.04 * sample_rate))
    return wave


@pytest.mark.parametrize("settings", [MEL_16K, MEL_44K], ids=["16k", "44k"])
def test_griffin_lim_keeps_timing_length_and_spectrum(settings):
    sr = settings.sample_rate
    wave = decaying_hits(sr)
    converter = MelConverter(settings)
    mel = converter(wave[None])
    out = GriffinLimVocoder(settings, n_iter=16)(mel)
    assert out.shape == (1, 1, mel.shape[-1] * settings.hop)
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0
    # Energy envelopes in 5 ms cells line up with no lag.
    cell = sr // 200
    a = wave.abs().unfold(0, cell, cell).mean(1).numpy()
    b = out[0, 0].abs().unfold(0, cell, cell).mean(1).numpy()
    lags = list(range(-8, 9))
    score = [float(np.dot(a[8:-8], np.roll(b, -lag)[8:-8])) for lag in lags]
    assert lags[int(np.argmax(score))] == 0
    # Silence between hits stays much quieter than the hits.
    for start in HITS_S:
        k = int(start * 200)
        assert b[k + 1:k + 4].mean() > 5 * b[k - 20:k - 8].mean()
    # The re-analysed mel is close to the input (log domain).
    assert float((converter(out[0]) - mel).abs().mean()) < 0.35
