"""RMS-Mapper: features, network shapes, μ-law decoding, training (loss, resume), files and messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.controls.envelope import mu_law_decode, mu_law_encode
from foley_core.controls.mapper_features import (FEATURE_DIM, RaftFlow, block_flow, frames_at_rate,
                                                 video_features)
from foley_core.errors import CheckpointError, FoleyError
from foley_core.models.rms_mapper import (KIND, RMSMapper, RMSMapperConfig, decode_logits, envelope_frames,
                                          load_mapper, mapper_envelope, predict_envelope, save_mapper)
from foley_core.training.rms_mapper_trainer import (FEATURES_NAME, MapperTrainConfig, export_mapper,
                                                    soft_cross_entropy, targets_for, train_mapper)


def textured(size=64, seed=0):
    return torch.rand(size, size, generator=torch.Generator().manual_seed(seed))


def test_features_have_the_documented_shape_for_both_frame_layouts():
    frames = torch.randint(0, 256, (6, 3, 224, 224), dtype=torch.uint8)
    features = video_features(frames)
    assert features.shape == (6, FEATURE_DIM) and features.dtype == torch.float32
    image = frames.permute(0, 2, 3, 1).float() / 255.0  # ComfyUI IMAGE layout
    assert torch.allclose(video_features(image), features, atol=1e-5)
    assert torch.all(features[0, 64:112] == 0)  # no flow into the first frame
    with pytest.raises(FoleyError, match="frame stack"):
        video_features(torch.zeros(3, 64, 64))


def test_block_flow_finds_a_known_shift():
    base = textured(80)
    prev = base[8:72, 8:72]
    cur = base[8 - 1:72 - 1, 8 - 2:72 - 2]  # content moved by dx = +2, dy = +1
    flow = block_flow(torch.stack([prev, cur])[:, None])
    inner = flow[1, :, 1:-1, 1:-1]
    assert torch.all(inner[0] == 2) and torch.all(inner[1] == 1)
    assert torch.all(flow[0] == 0)


def test_frames_at_rate_picks_the_frame_shown_at_each_time():
    frames = torch.arange(10)
    times = np.arange(10) / 10.0  # 10 fps → 5 fps
    assert frames_at_rate(frames, times, 1.0, rate=5.0).tolist() == [0, 2, 4, 6, 8]


def test_mapper_shapes_follow_the_paper_upsampling():
    mapper = RMSMapper(RMSMapperConfig(channels=16, lstm_hidden=8))
    assert mapper.upsample_sizes(1250) == [600, 1200, 1250]
    logits = mapper(torch.randn(2, 100, FEATURE_DIM), envelope_frames(4.0))
    assert logits.shape == (2, 500, 64)
    with pytest.raises(FoleyError, match="input must be"):
        mapper(torch.randn(2, 100, 7), 500)


def test_mu_law_head_decodes_to_the_envelope():
    classes = torch.tensor([0, 5, 31, 63])
    logits = torch.nn.functional.one_hot(classes, 64).float() * 20.0
    assert np.allclose(decode_logits(logits, "argmax"), mu_law_decode(classes.numpy()))
    assert np.allclose(decode_logits(logits, "mean"), mu_law_decode(classes.numpy()), atol=1e-4)
    values = np.array([0.0, 0.01, 0.2, 0.9])
    decoded = decode_logits(torch.nn.functional.one_hot(torch.from_numpy(mu_law_encode(values)), 64).float())
    assert np.allclose(decoded, values, atol=0.035 * (values + 1 / 63))
    mapper = RMSMapper(RMSMapperConfig(channels=16, lstm_hidden=8))
    envelope = predict_envelope(mapper, torch.randn(50, FEATURE_DIM), 2.0)
    assert envelope.frame_rate == 125.0 and envelope.n_frames == 250
    assert np.all((envelope.values >= 0) & (envelope.values <= 1))


def tiny_features(folder, n=12, frames=25, seed=0):
    """A learnable toy set: the envelope follows the first feature channel (1 s clips)."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, frames, FEATURE_DIM, generator=g) * 0.1
    loud = torch.rand(n, frames, generator=g) > 0.6
    features[..., 0] += loud.float() * 2.0
    envelopes = loud.float().repeat_interleave(5, dim=1) * 0.5
    meta = {"duration_s": frames / 25, "feature_rate": 25.0, "feature_version": "grid4-v1", "flow": "block",
            "clips": [f"c{i}.mp4" for i in range(n)], "seeds": [None] * n, "skipped": [], "source": "toy"}
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"features": features, "envelopes": envelopes}, str(folder / FEATURES_NAME),
              metadata={"rms_mapper_features": json.dumps(meta)})
    return folder


TINY = dict(batch_size=4, val_clips=4, channels=16, lstm_hidden=8, crop_s=0.6, log_every=1, checkpoint_every=2)


def losses(run):
    return [row["loss"] for row in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in row]


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    features = tiny_features(tmp_path / "features")
    # log every 3 steps with 2 steps per epoch: the log line after the resume point averages steps
    # from both sides of it, so the loss window must survive the checkpoint.
    config = MapperTrainConfig(epochs=8, lr=1e-2, **{**TINY, "log_every": 3})
    full = train_mapper(features, config, tmp_path / "full", report=lambda _: None)
    seen = losses(tmp_path / "full")
    assert full["step"] == 16 and len(seen) == 5 and seen[-1] < seen[0] - 0.3
    train_mapper(features, config, tmp_path / "split", stop_at_epoch=4, report=lambda _: None)
    resumed = train_mapper(features, None, tmp_path / "split", resume=True, report=lambda _: None)
    assert resumed["rank_digests"] == full["rank_digests"]
    assert losses(tmp_path / "split") == pytest.approx(seen, rel=1e-6)
    with pytest.raises(ValueError, match="differ"):
        train_mapper(features, MapperTrainConfig(epochs=9, **TINY), tmp_path / "split", resume=True)


def test_soft_targets_cross_entropy_is_lowest_at_the_target_class():
    targets = targets_for(torch.tensor([[0.2]]), 64, 1.0)
    assert torch.isclose(targets.sum(), torch.tensor(1.0))
    good = torch.nn.functional.one_hot(torch.tensor([[int(mu_law_encode(0.2))]]), 64).float() * 10
    bad = torch.nn.functional.one_hot(torch.tensor([[3]]), 64).float() * 10
    assert soft_cross_entropy(good, targets) < soft_cross_entropy(bad, targets)


def test_export_load_round_trip_and_wrong_files(tmp_path):
    features = tiny_features(tmp_path / "features")
    train_mapper(features, MapperTrainConfig(epochs=2, **TINY), tmp_path / "run", report=lambda _: None)
    path = export_mapper(tmp_path / "run", tmp_path / "mapper.safetensors")
    mapper, meta = load_mapper(path)
    assert meta["config"]["flow"] == "block" and meta["training"]["epoch"] == 2
    from foley_core.training.checkpoint import load_checkpoint

    trained = RMSMapper(RMSMapperConfig.from_dict(meta["config"]))
    trained.load_state_dict(load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"])
    x = torch.randn(1, 25, FEATURE_DIM)
    assert torch.equal(mapper(x, 125), trained.eval()(x, 125))

    other = tmp_path / "adapter.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"kind": "foley_style_adapter"})
    with pytest.raises(CheckpointError, match="adapter.safetensors is not a Foley RMS-Mapper"):
        load_mapper(other)
    bare = tmp_path / "vae.safetensors"
    save_file({"decoder.conv_in.weight": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match="vae.safetensors.*look like a VAE"):
        load_mapper(bare)
    pickle = tmp_path / "mapper.pth"
    torch.save(mapper.state_dict(), pickle)
    with pytest.raises(CheckpointError, match="mapper.pth is not a .safetensors"):
        load_mapper(pickle)
    broken = tmp_path / "broken.safetensors"
    save_file({"head.weight": torch.zeros(3)}, str(broken),
              metadata={"kind": KIND, "config": json.dumps(mapper.config.to_dict())})
    with pytest.raises(CheckpointError, match="broken.safetensors: the weights do not match"):
        load_mapper(broken)
    old = tmp_path / "old.safetensors"
    save_mapper(RMSMapper(RMSMapperConfig(channels=16, lstm_hidden=8, feature_version="grid4-v1")), old)
    meta_cfg = {**mapper.config.to_dict(), "feature_version": "tc-clip"}
    save_file({"head.weight": torch.zeros(3)}, str(old), metadata={"kind": KIND, "config": json.dumps(meta_cfg)})
    with pytest.raises(CheckpointError, match="old.safetensors was trained on video features 'tc-clip'"):
        load_mapper(old)


def test_flow_mismatch_is_reported():
    mapper = RMSMapper(RMSMapperConfig(channels=16, lstm_hidden=8, flow="raft_small"))
    frames = torch.randint(0, 256, (25, 3, 64, 64), dtype=torch.uint8)
    envelope, use = mapper_envelope(mapper, frames, 25.0, 1.0, "block")
    assert envelope.n_frames == 125 and use.mismatch
    assert "trained with 'raft_small'" in use.notes[0] and "'block'" in use.notes[0]
    same = RMSMapper(RMSMapperConfig(channels=16, lstm_hidden=8))
    _, use = mapper_envelope(same, frames, 50.0, 0.5, "block")  # 50 fps input is resampled to 25
    assert not use.mismatch and not use.notes


def test_raft_weights_are_accepted_and_other_files_rejected():
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    flow = RaftFlow(raft_small(weights=None).state_dict(), "raft_small.pth", iterations=1)
    assert flow.method == "raft_small"
    field = flow(torch.rand(3, 3, 64, 64))
    assert field.shape == (3, 2, 8, 8) and torch.all(field[0] == 0) and torch.isfinite(field).all()
    features = video_features(torch.rand(3, 3, 64, 64), flow)
    assert features.shape == (3, FEATURE_DIM)
    with pytest.raises(FoleyError, match="vae.pth is not a torchvision RAFT checkpoint"):
        RaftFlow({"decoder.conv_in.weight": torch.zeros(1)}, "vae.pth")
