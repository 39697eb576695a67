"""BigVGAN vocoders against the official tiny parity data, plus the sampler decode chain."""

import dataclasses
import json

import pytest
import torch

from foley_core.errors import CheckpointError
from foley_core.models.bigvgan import (
    BigVGANConfig,
    fold_weight_norm,
    kaiser_sinc_filter,
    load_bigvgan,
)
from foley_core.models.vae import load_vae

import parity_data


TOL = dict(atol=1e-4, rtol=1e-4)
NAMES = ["bigvgan_v1_tiny", "bigvgan_v2_tiny"]


def _parity(name):
    cfg = parity_data.config(f"{name}")
    return (cfg, parity_data.weights(f"{name}"),
            parity_data.io(f"{name}"))


@pytest.fixture(scope="module", params=NAMES)
def case(request):
    cfg, weights, io = _parity(request.param)
    return cfg, weights, io, load_bigvgan({"generator": weights}, cfg)


def test_waveform_parity(case):
    _, _, io, voc = case
    wav = voc(io["in.mel"])
    assert wav.shape == io["out.wav"].shape == (2, 1, 80)
    torch.testing.assert_close(wav, io["out.wav"], **TOL)


def test_weight_norm_folded_once_at_load(case):
    _, _, io, voc = case
    params = voc.state_dict()
    folded = {k[len("out.folded."):]: v for k, v in io.items() if k.startswith("out.folded.")}
    assert len(folded) == 4 + 36  # conv_pre, 2 ups, conv_post + 6 blocks x 6 convs
    for key, expected in folded.items():
        torch.testing.assert_close(params[key], expected, **TOL, msg=key)
    # Inference uses plain convs: no weight-norm parametrisation or g/v left on the module.
    assert not any(k.endswith(("weight_g", "weight_v", "original0")) for k in params)


def test_final_bound_and_bias_follow_config(case):
    cfg, _, _, voc = case
    v2 = cfg.get("use_tanh_at_final") is False
    assert (voc.conv_post.bias is None) == v2
    assert voc.cfg.use_tanh_at_final == (not v2)


def test_computed_filters_equal_checkpoint_buffers(case):
    _, weights, _, _ = case
    filters = {k: v for k, v in weights.items() if k.endswith(".filter")}
    assert len(filters) == 2 * (6 * 6 + 1)
    for key, buf in filters.items():
        torch.testing.assert_close(kaiser_sinc_filter(), buf, atol=1e-7, rtol=0, msg=key)


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], atol=1e-7, rtol=1e-6, msg=key)


def test_checkpoint_without_filter_buffers(case):
    cfg, weights, _, voc = case
    no_filters = {k: v for k, v in weights.items() if not k.endswith(".filter")}
    _assert_same_weights(load_bigvgan(no_filters, cfg), voc)


def test_parametrizations_and_folded_forms(case):
    cfg, weights, _, voc = case
    renamed = {
        k.replace(".weight_g", ".parametrizations.weight.original0")
         .replace(".weight_v", ".parametrizations.weight.original1"): v
        for k, v in weights.items()
    }
    assert not any(k.endswith("weight_g") for k in renamed)
    _assert_same_weights(load_bigvgan(renamed, cfg), voc)
    _assert_same_weights(load_bigvgan(fold_weight_norm(weights), cfg), voc)


def test_config_json_path(case, tmp_path):
    cfg, weights, _, voc = case
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**cfg, "sampling_rate": 44100, "segment_size": 65536}))
    loaded = load_bigvgan({"generator": weights}, str(path))
    assert loaded.cfg == dataclasses.replace(BigVGANConfig.from_dict(cfg), sampling_rate=44100)
    _assert_same_weights(loaded, voc)


def test_mismatched_config_is_rejected(case):
    cfg, weights, _, _ = case
    wrong = {**cfg, "use_bias_at_final": not cfg.get("use_bias_at_final", True)}
    with pytest.raises(CheckpointError):
        load_bigvgan(weights, wrong)
    with pytest.raises(CheckpointError):  # tiny layout is not one of the known full-size ones
        load_bigvgan(weights)
    broken = {k: v for k, v in weights.items() if k != "conv_pre.weight_v"}
    with pytest.raises(CheckpointError):
        load_bigvgan(broken, cfg)


def test_half_precision_runs():
    cfg, weights, io = _parity("bigvgan_v2_tiny")
    voc = load_bigvgan(weights, cfg, dtype=torch.bfloat16)
    wav = voc(io["in.mel"].bfloat16()).float()
    assert torch.isfinite(wav).all() and (wav - io["out.wav"]).abs().max() < 0.1


def test_sampler_case_a_decode_chain():
    """fm_sampler case A: latent (B, N, C) -> VAE 44k decoder -> mel -> BigVGAN v2 -> wav."""
    io = parity_data.io("fm_sampler_tiny_v2")
    vae = load_vae(parity_data.weights("vae_tiny_44k"))
    cfg, weights, _ = _parity("bigvgan_v2_tiny")
    voc = load_bigvgan({"generator": weights}, BigVGANConfig.from_dict(cfg))
    mel = vae.decode(io["out.A.latent"].transpose(1, 2))
    torch.testing.assert_close(mel, io["out.A.mel"], **TOL)
    wav = voc(mel)
    assert wav.shape == (2, 1, 496)
    torch.testing.assert_close(wav, io["out.A.wav"], **TOL)
