"""MMAudio mel VAE against the official tiny parity data (tests/data/parity/vae_tiny_*)."""

import pytest
import torch

from foley_core.errors import CheckpointError
from foley_core.models.vae import (
    VAEConfig,
    detect_vae_config,
    detect_weight_form,
    load_vae,
    normalize_mp_weight,
    normalize_vae_state_dict,
)
from foley_core.models.vae.mp_modules import pixel_norm

import parity_data


TOL = dict(atol=1e-4, rtol=1e-4)
NAMES = ["vae_tiny_44k", "vae_tiny_16k"]


def _parity(name):
    cfg = parity_data.config(f"{name}")
    weights = parity_data.weights(f"{name}")
    io = parity_data.io(f"{name}")
    return cfg, weights, io


@pytest.fixture(scope="module", params=NAMES)
def case(request):
    cfg, weights, io = _parity(request.param)
    return cfg, weights, io, load_vae(weights)


def test_detect_config_from_shapes(case):
    cfg, weights, _, _ = case
    assert detect_vae_config(weights) == VAEConfig.from_dict(cfg)
    assert detect_vae_config(weights).mode == cfg["mode"]


def test_load_time_mp_normalisation(case):
    _, weights, io, vae = case
    params = vae.state_dict()
    wn = {k[len("out.wn."):]: v for k, v in io.items() if k.startswith("out.wn.")}
    assert sorted(wn) == sorted(k for k in weights if k.endswith(".weight"))  # every conv
    for key, expected in wn.items():
        torch.testing.assert_close(params[key], expected, **TOL, msg=key)
        torch.testing.assert_close(normalize_mp_weight(weights[key]), expected, **TOL, msg=key)
    assert float(vae.encoder.learnable_gain) == pytest.approx(0.3)
    assert float(vae.decoder.learnable_gain) == pytest.approx(-0.2)


def test_encode(case):
    _, _, io, vae = case
    torch.testing.assert_close(vae.normalize_mel(io["in.mel"]), io["out.mel_normalized"], **TOL)
    torch.testing.assert_close(vae.encoder(io["out.mel_normalized"]), io["out.moments"], **TOL)
    post = vae.encode(io["in.mel"])
    torch.testing.assert_close(post.mean, io["out.posterior_mean"], **TOL)
    torch.testing.assert_close(post.logvar, io["out.posterior_logvar"], **TOL)
    torch.testing.assert_close(post.std, io["out.posterior_std"], **TOL)
    torch.testing.assert_close(post.sample(io["in.eps"]), io["out.z_sample"], **TOL)
    assert post.mode() is post.mean


def test_decode(case):
    _, _, io, vae = case
    mean = io["out.posterior_mean"]
    torch.testing.assert_close(vae.decode_normalized(mean), io["out.dec_mode_raw"], **TOL)
    torch.testing.assert_close(vae.decode(mean), io["out.dec_mode"], **TOL)
    # Odd latent length: output is exactly twice as long.
    dec = vae.decode(io["in.z"])
    assert dec.shape == io["out.dec_z"].shape == (2, vae.cfg.n_mels, 30)
    torch.testing.assert_close(dec, io["out.dec_z"], **TOL)


def test_logvar_is_clamped(case):
    _, weights, io, _ = case
    sd = dict(weights)
    sd["encoder.learnable_gain"] = torch.tensor(1e6)
    post = load_vae(sd).encode(io["in.mel"])
    assert post.logvar.min() >= -30 and post.logvar.max() <= 20
    assert post.logvar.abs().max() == 30 or post.logvar.max() == 20


def test_raw_and_baked_weights_are_told_apart(case):
    _, weights, io, _ = case
    baked = normalize_vae_state_dict(weights)
    assert detect_weight_form(weights) == "raw"
    assert detect_weight_form(baked) == "baked"
    # A baked file is used as is (not normalised a second time): same decode as the raw file.
    torch.testing.assert_close(load_vae(baked).decode(io["in.z"]), io["out.dec_z"], **TOL)
    # Forcing a second normalisation really changes the result (the check matters).
    twice = load_vae(baked, weight_form="raw").decode(io["in.z"])
    assert not torch.allclose(twice, io["out.dec_z"], atol=1e-5, rtol=0)


def test_comfy_combined_file_prefix(case):
    _, weights, io, _ = case
    combined = {"vae." + k: v for k, v in normalize_vae_state_dict(weights).items()}
    combined["vocoder.activation_post.downsample.lowpass.filter"] = torch.zeros(1, 1, 12)
    combined["mel_converter.mel_basis"] = torch.zeros(80, 513)
    vae = load_vae(combined)
    torch.testing.assert_close(vae.decode(io["in.z"]), io["out.dec_z"], **TOL)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights(case, dtype):
    """kijai files are fp16 raw weights; normalisation happens in fp32 and is cast back."""
    _, weights, io, _ = case
    half = {k: v.to(dtype) for k, v in weights.items()}
    vae = load_vae(half)
    assert vae.decoder.conv_in.weight.dtype == dtype
    assert vae.data_mean.dtype == torch.float32
    wn = io["out.wn.decoder.mid.block_1.conv1.weight"]
    torch.testing.assert_close(vae.decoder.mid.block_1.conv1.weight.float(), wn, atol=1e-2, rtol=1e-2)
    dec = vae.decode(io["in.z"])
    assert dec.dtype == torch.float32 and torch.isfinite(dec).all()
    err = (dec - io["out.dec_z"]).abs().max() / io["out.dec_z"].abs().max()
    assert err < 5e-2


def test_pixel_norm_does_not_overflow_in_fp16():
    x = torch.full((1, 2048, 3), 300.0, dtype=torch.float16)  # sum of squares > fp16 max
    y = pixel_norm(x)
    assert y.dtype == torch.float16
    torch.testing.assert_close(y.float(), torch.ones(1, 2048, 3), atol=1e-3, rtol=1e-3)


def test_not_a_vae_is_rejected():
    with pytest.raises(CheckpointError):
        load_vae({"conv_pre.weight": torch.zeros(4, 4, 7)})
