"""Synchformer visual encoder against the synchformer_tiny golden data (official MMAudio code)."""

import pytest
import torch

from foley_core.errors import CheckpointError, MediaError
from foley_core.models.synchformer import (
    SynchformerConfig,
    SynchformerVisualEncoder,
    num_segments,
    synchformer_config_from_state_dict,
    visual_state_dict,
)

import parity_data


TOL = 2e-4


@pytest.fixture(scope="module")
def parity():
    cfg = parity_data.config("synchformer_tiny")
    weights = parity_data.weights("synchformer_tiny")
    io = parity_data.io("synchformer_tiny")
    return cfg, weights, io


@pytest.fixture(scope="module")
def encoder(parity):
    cfg, weights, _ = parity
    return SynchformerVisualEncoder.from_state_dict(weights, num_heads=cfg["NUM_HEADS"])


@pytest.fixture(scope="module")
def traced(encoder, parity):
    """Run the full encoder once, capturing intermediates of every segment with forward hooks."""
    _, _, io = parity
    vf = encoder.vfeat_extractor
    seen = {}

    def keep(name):
        def hook(_module, _inputs, output):
            seen.setdefault(name, []).append(output.detach().clone())
        return hook

    handles = [
        vf.patch_embed_3d.register_forward_hook(keep("patch_tokens")),
        vf.blocks[0].register_forward_hook(keep("after_block0")),
        vf.blocks[-1].register_forward_hook(keep("after_last_block")),
    ]
    try:
        feats = encoder(io["in.frames_u8"])
        segs = encoder.encode_segments(io["in.frames_u8"])
    finally:
        for h in handles:
            h.remove()
    return feats, segs, {k: torch.cat(v[:1]) for k, v in seen.items()}


def close(actual, expected):
    torch.testing.assert_close(actual, expected, atol=TOL, rtol=TOL)


def test_config_matches_parity(parity):
    cfg, weights, _ = parity
    got = synchformer_config_from_state_dict(weights, num_heads=cfg["NUM_HEADS"])
    assert got == SynchformerConfig(embed_dim=32, depth=2, num_heads=2)
    with pytest.raises(CheckpointError):  # width 32: head count not inferable
        synchformer_config_from_state_dict(weights)


def test_seg0_patch_tokens(traced, parity):
    close(traced[2]["patch_tokens"][:1], parity[2]["out.seg0.patch_tokens"])


def test_seg0_after_block0(traced, parity):
    close(traced[2]["after_block0"][:1], parity[2]["out.seg0.after_block0"])


def test_seg0_after_last_block(traced, parity):
    close(traced[2]["after_last_block"][:1], parity[2]["out.seg0.after_last_block"])


def test_segment_features(traced, parity):
    expected = parity[2]["out.segment_features"]  # (B·S, 1, 8, D) official call shape
    segs = traced[1]
    assert segs.shape == (1, 2, 8, 32)
    close(segs.reshape(expected.shape), expected)


def test_sync_features(traced, parity):
    feats = traced[0]
    assert feats.dtype == torch.float32
    assert feats.shape == (1, 16, 32)
    close(feats, parity[2]["out.sync_features"])


def test_segment_chunking_and_batch(encoder, parity):
    """Chunk size 1 and a batch of two clips give the same result as one pass."""
    frames = parity[2]["in.frames_u8"]
    batch = torch.cat([frames, frames.flip(1)])
    encoder.segment_chunk = 1
    try:
        feats = encoder(batch)
    finally:
        encoder.segment_chunk = 16
    close(feats[0], parity[2]["out.sync_features"][0])
    assert not torch.allclose(feats[0], feats[1])


def test_num_segments():
    assert [num_segments(t) for t in (0, 15, 16, 23, 24, 28, 200)] == [0, 0, 1, 1, 2, 2, 24]


def test_too_few_or_bad_frames_rejected(encoder):
    with pytest.raises(MediaError):
        encoder(torch.zeros(1, 15, 3, 224, 224, dtype=torch.uint8))
    with pytest.raises(MediaError):
        encoder(torch.zeros(1, 16, 3, 224, 224))  # float
    with pytest.raises(MediaError):
        encoder(torch.zeros(1, 16, 3, 256, 224, dtype=torch.uint8))


def test_bf16_close_to_fp32(parity):
    cfg, weights, io = parity
    enc = SynchformerVisualEncoder.from_state_dict(
        weights, num_heads=cfg["NUM_HEADS"], dtype=torch.bfloat16
    )
    assert enc.dtype == torch.bfloat16
    feats = enc(io["in.frames_u8"])
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
    ref = io["out.sync_features"]
    rel = (feats - ref).norm() / ref.norm()
    assert rel < 0.05, rel


def test_state_dict_filtering(parity):
    _, weights, _ = parity
    full = dict(weights)
    full["afeat_extractor.something.weight"] = torch.zeros(2)  # audio branch: dropped
    full["transformer.blocks.0.weight"] = torch.zeros(2)
    assert visual_state_dict(full).keys() == weights.keys()
    bare = {k[len("vfeat_extractor."):]: v for k, v in weights.items()}
    assert visual_state_dict(bare).keys() == weights.keys()
    with pytest.raises(CheckpointError):
        visual_state_dict({"afeat_extractor.x": torch.zeros(1)})


def test_fp16_official_names_strict_load(parity):
    """kijai layout: same names, fp16; an extra or missing visual key must fail."""
    cfg, weights, io = parity
    sd = {k: v.half() for k, v in weights.items()}
    enc = SynchformerVisualEncoder.from_state_dict(sd, num_heads=cfg["NUM_HEADS"])
    assert enc.dtype == torch.float32
    broken = dict(weights)
    broken.pop("vfeat_extractor.patch_embed.proj.bias")
    with pytest.raises(CheckpointError):
        SynchformerVisualEncoder.from_state_dict(broken, num_heads=cfg["NUM_HEADS"])
