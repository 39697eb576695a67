"""Full-size VAE and vocoder layouts (built on the meta device) against the checkpoint manifests.

A strict load of the official files works iff the module's key set and shapes equal these lists.
"""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from foley_core.errors import CheckpointError
from foley_core.models.bigvgan import (
    BIGVGAN_16K,
    BIGVGAN_44K,
    BigVGANConfig,
    BigVGANGenerator,
    infer_known_config,
    load_bigvgan,
    prepare_generator_state_dict,
)
from foley_core.models.vae import VAE_16K, VAE_44K, MelVAE, detect_vae_config, load_vae

MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"


def _manifest(name):
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def _meta_state_dict(manifest):
    return {k: torch.empty(shape, device="meta") for k, shape, _ in manifest["keys"]}


def _shapes(state_dict):
    return {k: tuple(v.shape) for k, v in state_dict.items()}


@pytest.mark.parametrize("name,cfg", [("vae_16k", VAE_16K), ("vae_44k", VAE_44K)])
def test_vae_layout_matches_manifest(name, cfg):
    manifest = _manifest(name)
    expected = {k: tuple(shape) for k, shape, _ in manifest["keys"]}
    with torch.device("meta"):
        vae = MelVAE(cfg)
    assert _shapes(vae.state_dict()) == expected
    assert sum(p.numel() for p in vae.state_dict().values()) == manifest["num_elements"]
    # Detection from shapes alone, then a strict load of a file with exactly these keys.
    checkpoint = _meta_state_dict(manifest)
    assert detect_vae_config(checkpoint) == cfg
    assert load_vae(checkpoint, weight_form="raw").cfg == cfg


def test_vae_detection_tells_16k_from_44k():
    sd16 = _meta_state_dict(_manifest("vae_16k"))
    sd44 = _meta_state_dict(_manifest("vae_44k"))
    assert sd16["decoder.conv_in.weight"].shape == (1536, 20, 3)
    assert sd44["decoder.conv_in.weight"].shape == (2048, 40, 3)
    assert (detect_vae_config(sd16).mode, detect_vae_config(sd44).mode) == ("16k", "44k")


def test_vae_strict_load_rejects_missing_key():
    checkpoint = _meta_state_dict(_manifest("vae_16k"))
    del checkpoint["decoder.up.1.upsample.conv.weight"]
    with pytest.raises(CheckpointError):
        load_vae(checkpoint, weight_form="raw", config=VAE_16K)


@pytest.mark.parametrize(
    "name,cfg", [("bigvgan_v1_16k", BIGVGAN_16K), ("bigvgan_v2_44k_128band_512x", BIGVGAN_44K)]
)
def test_bigvgan_layout_matches_manifest(name, cfg):
    manifest = _manifest(name)
    from_json = BigVGANConfig.from_dict(manifest["config"])
    assert dataclasses.replace(from_json, sampling_rate=None) == dataclasses.replace(cfg, sampling_rate=None)
    checkpoint = _meta_state_dict(manifest)
    assert sum(v.numel() for v in checkpoint.values()) == manifest["num_elements"]
    assert infer_known_config(checkpoint) == cfg

    with torch.device("meta"):
        model = BigVGANGenerator(cfg)
    folded = prepare_generator_state_dict({"generator": checkpoint}, model)
    assert _shapes(folded) == _shapes(model.state_dict())
    # Every module weight comes from a g/v pair of the checkpoint; nothing is filled in.
    assert set(folded) - set(checkpoint) == {k[: -len("_g")] for k in checkpoint if k.endswith("_g")}

    loaded = load_bigvgan({"generator": checkpoint})  # no config: known layout inferred
    assert loaded.cfg == cfg and loaded.cfg.hop_length == (256 if cfg is BIGVGAN_16K else 512)
    assert (loaded.conv_post.bias is not None) == cfg.use_bias_at_final


def test_bigvgan_strict_load_rejects_missing_key():
    checkpoint = _meta_state_dict(_manifest("bigvgan_v2_44k_128band_512x"))
    del checkpoint["resblocks.17.activations.5.act.beta"]
    with pytest.raises(CheckpointError):
        load_bigvgan(checkpoint)
