"""CLIP wrapper against the clip_tiny golden data (official open_clip + MMAudio patch)."""

import pytest
import torch

from foley_core.errors import CheckpointError, MediaError
from foley_core.models.clip_encoder import (
    DFN5B_CONFIG,
    ClipEncoder,
    clip_config_from_state_dict,
    prepare_clip_state_dict,
)

import parity_data


ATOL = RTOL = 1e-4


@pytest.fixture(scope="module")
def parity():
    return parity_data.config("clip_tiny"), parity_data.weights("clip_tiny"), parity_data.io("clip_tiny")


@pytest.fixture(scope="module")
def encoder(parity):
    cfg, weights, _ = parity
    return ClipEncoder.from_state_dict(weights, config=cfg["open_clip_cfg"])


def test_token_ids_exact(parity, encoder):
    cfg, _, io = parity
    ids = encoder.tokenize(cfg["prompts"])
    assert ids.dtype == torch.int64
    assert torch.equal(ids, io["out.token_ids"])
    # The >77-token prompt is cut and ends with <end>.
    assert ids[-1, -1].item() == 49407


def test_image_features(parity, encoder):
    _, _, io = parity
    frames = io["in.frames_u8"]
    assert frames.shape[-1] == 384  # fed as-is to the 378-px model
    feats = encoder.encode_video_frames(frames)
    assert feats.shape == io["out.image_features"].shape
    torch.testing.assert_close(feats, io["out.image_features"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(feats.shape[:2]))


def test_image_features_chunking_is_invisible(parity, encoder):
    _, _, io = parity
    frames = io["in.frames_u8"]
    two = torch.cat([frames, frames.flip(1)], dim=0)  # (2, 2, ...) → 4 frames
    encoder.frame_chunk = 3
    try:
        feats = encoder.encode_video_frames(two)
    finally:
        encoder.frame_chunk = 32
    torch.testing.assert_close(feats[0], io["out.image_features"][0], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(feats[1], io["out.image_features"][0].flip(0), atol=ATOL, rtol=RTOL)


def test_text_features(parity, encoder):
    cfg, _, io = parity
    feats = encoder.encode_text(cfg["prompts"])
    assert feats.shape == (6, 77, 16)
    torch.testing.assert_close(feats, io["out.text_features"], atol=ATOL, rtol=RTOL)


def test_bad_frames_rejected(encoder):
    with pytest.raises(MediaError):
        encoder.encode_video_frames(torch.zeros(1, 2, 3, 384, 384))  # float, not uint8
    with pytest.raises(MediaError):
        encoder.encode_video_frames(torch.zeros(2, 3, 384, 384, dtype=torch.uint8))


def test_bf16_close_to_fp32(parity):
    cfg, weights, io = parity
    enc = ClipEncoder.from_state_dict(weights, config=cfg["open_clip_cfg"], dtype=torch.bfloat16)
    assert enc.dtype == torch.bfloat16
    img = enc.encode_video_frames(io["in.frames_u8"])
    txt = enc.encode_text(cfg["prompts"][:2])
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    torch.testing.assert_close(img, io["out.image_features"], atol=0.05, rtol=0)
    torch.testing.assert_close(txt, io["out.text_features"][:2], atol=0.05, rtol=0)


def test_fp16_kijai_style_weights(parity):
    """fp16 tensors and a [1]-shaped logit_scale load strictly (cast to the requested dtype)."""
    cfg, weights, io = parity
    sd = {k: v.half() for k, v in weights.items()}
    sd["logit_scale"] = sd["logit_scale"].reshape(1)
    enc = ClipEncoder.from_state_dict(sd, config=cfg["open_clip_cfg"], dtype=torch.float32)
    assert enc.model.logit_scale.shape == ()
    img = enc.encode_video_frames(io["in.frames_u8"])
    torch.testing.assert_close(img, io["out.image_features"], atol=0.01, rtol=0)


def test_config_detection_from_shapes(parity):
    cfg, weights, _ = parity
    want = cfg["open_clip_cfg"]
    got = clip_config_from_state_dict(
        weights,
        vision_head_width=want["vision_cfg"]["head_width"],
        text_heads=want["text_cfg"]["heads"],
    )
    assert got == want
    # Heads cannot be read from shapes: without hints the detector falls back to defaults.
    assert clip_config_from_state_dict(weights)["vision_cfg"]["head_width"] == 64


def test_config_detection_recognises_dfn5b():
    # Shapes only (meta tensors): the DFN5B shapes yield the DFN5B config, heads included.
    from foley_core.models.clip_encoder import build_clip_model

    with torch.device("meta"):
        sd = build_clip_model(DFN5B_CONFIG).state_dict()
    assert clip_config_from_state_dict(sd) == DFN5B_CONFIG


def test_missing_keys_raise_checkpoint_error(parity):
    cfg, weights, _ = parity
    sd = dict(weights)
    sd.pop("ln_final.bias")
    with pytest.raises(CheckpointError):
        ClipEncoder.from_state_dict(sd, config=cfg["open_clip_cfg"])
    with pytest.raises(CheckpointError):
        clip_config_from_state_dict({"foo": torch.zeros(1)})


def test_prepare_state_dict_reshapes_logit_scale():
    sd = prepare_clip_state_dict({"logit_scale": torch.tensor([4.6])})
    assert sd["logit_scale"].shape == ()
