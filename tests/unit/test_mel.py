"""Log-mel front end against the official MelConverter outputs (tests/data/parity/mel_converter)."""

import dataclasses

import pytest
import torch

from foley_core.models.mel import MEL_16K, MEL_44K, MelConverter, num_mel_frames

import parity_data


TOL = dict(atol=2e-4, rtol=0.0)  # README: mel 2e-4 absolute (log domain)


@pytest.fixture(scope="module")
def io():
    return parity_data.io("mel_converter")


@pytest.mark.parametrize("rate", ["44k", "16k"])
def test_filterbank_and_window(io, rate):
    conv = MelConverter(rate)
    torch.testing.assert_close(conv.mel_basis, io[f"out.{rate}.mel_basis"], atol=1e-7, rtol=0)
    torch.testing.assert_close(conv.window, io[f"out.{rate}.window"], atol=1e-7, rtol=0)


@pytest.mark.parametrize("rate", ["44k", "16k"])
@pytest.mark.parametrize("suffix", ["", "_odd"])
def test_mel_parity(io, rate, suffix):
    conv = MelConverter(rate)
    wav, expected = io[f"in.{rate}.wav{suffix}"], io[f"out.{rate}.mel{suffix}"]
    mel = conv(wav)
    assert mel.shape == expected.shape
    assert expected.shape[-1] == num_mel_frames(wav.shape[-1], conv.settings)
    torch.testing.assert_close(mel, expected, **TOL)


def test_clamps_waveform(io):
    """Item 1 of the 16k input exceeds +-1: the converter must clamp before the STFT."""
    wav = io["in.16k.wav"]
    assert wav.abs().max() > 1
    conv = MelConverter("16k")
    torch.testing.assert_close(conv(wav), conv(wav.clamp(-1, 1)), atol=0, rtol=0)


def test_log_domains_differ(io):
    """16k mels are log10, 44k natural log: same magnitudes, values differ by ln(10)."""
    assert (MEL_16K.log, MEL_44K.log) == ("log10", "ln")
    wav = io["in.16k.wav"][:1]
    ln_conv = MelConverter(dataclasses.replace(MEL_16K, log="ln"))
    torch.testing.assert_close(ln_conv(wav), MelConverter("16k")(wav) * torch.log(torch.tensor(10.0)),
                               atol=1e-4, rtol=1e-5)


def test_single_channel_and_half_input(io):
    conv = MelConverter("44k")
    wav = io["in.44k.wav"]
    mel = conv(wav[0].half())
    assert mel.shape == (128, 24) and mel.dtype == torch.float32
    torch.testing.assert_close(mel, conv(wav[0].half().float()[None])[0], atol=0, rtol=0)
