"""Full-size MMAudio nets built on the meta device match the official key/shape manifests."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from foley_core.models.mmaudio import NON_PERSISTENT_KEYS, VARIANTS, MMAudioNetwork, detect_network_config

MANIFESTS = sorted((Path(__file__).resolve().parents[1] / "data" / "manifests").glob("mmaudio_*.json"))


def _variant(path: Path) -> str:
    return json.loads(path.read_text())["module"].removeprefix("mmaudio_")


def test_every_variant_has_a_manifest():
    assert sorted(_variant(p) for p in MANIFESTS) == sorted(VARIANTS)


@pytest.fixture(scope="module", params=MANIFESTS, ids=lambda p: p.stem)
def built(request):
    manifest = json.loads(request.param.read_text())
    with torch.device("meta"):
        net = MMAudioNetwork(VARIANTS[_variant(request.param)])
    return manifest, net


def test_state_dict_matches_manifest(built):
    manifest, net = built
    expected = {name: tuple(shape) for name, shape, _ in manifest["keys"]}
    state = net.state_dict()
    actual = {name: tuple(t.shape) for name, t in state.items()}
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]} ({len(missing)}), extra {extra[:5]} ({len(extra)})"
    wrong = {k: (actual[k], expected[k]) for k in expected if actual[k] != expected[k]}
    assert not wrong, f"shape mismatches (ours, manifest): {wrong}"
    assert all(dtype == "float32" for _, _, dtype in manifest["keys"])
    assert all(t.dtype == torch.float32 for t in state.values())
    assert len(state) == manifest["num_tensors"]
    assert sum(t.numel() for t in state.values()) == manifest["num_elements"]
    buffers = dict(net.named_buffers())
    assert set(NON_PERSISTENT_KEYS) <= set(buffers) and not set(NON_PERSISTENT_KEYS) & set(state)


def test_hyper_parameters_match_manifest(built):
    manifest, net = built
    hyper, config = manifest["hyper"], net.config
    assert (config.latent_dim, config.hidden_dim, config.num_heads, config.v2) == (
        hyper["latent_dim"], hyper["hidden_dim"], hyper["num_heads"], hyper["v2"])
    assert (config.joint_depth, config.fused_depth) == (hyper["joint_blocks"], hyper["fused_blocks"])
    assert (net.latent_seq_len, net.clip_seq_len, net.sync_seq_len, config.text_seq_len) == (
        hyper["latent_seq_len"], hyper["clip_seq_len"], hyper["sync_seq_len"], hyper["text_seq_len"])


def test_detects_variant_from_meta_state_dict(built):
    manifest, net = built
    name, config = detect_network_config(net.state_dict())
    assert name == manifest["module"].removeprefix("mmaudio_")
    assert config == VARIANTS[name]
    assert config.mode == ("16k" if config.latent_dim == 20 else "44k")


def test_detects_variant_from_shapes_only_with_buffer_keys(built):
    manifest, _ = built
    shapes = {name: SimpleNamespace(shape=tuple(shape)) for name, shape, _ in manifest["keys"]}
    for key in NON_PERSISTENT_KEYS:  # official files may carry them
        shapes[key] = SimpleNamespace(shape=(1,))
    name, _ = detect_network_config(shapes)
    assert name == manifest["module"].removeprefix("mmaudio_")
