"""AudioIM's trained prompt path: zero-init identity, 3:5 masking, training, files, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from foley_core.errors import CheckpointError, FoleyError
from foley_core.models.mmaudio import MMAudioNetwork, NetworkConfig, sequence_lengths
from foley_core.models.prompt_channel import (KIND, MODES, PromptChannel, PromptChannelConfig, apply_prompt_channel,
                                              load_channel, masked_prompt, save_channel, split_3_5)
from foley_core.sampling.flow import draw_noise
from foley_core.sampling.latent_prompt import plan_prompt_window, sample_with_prompt
from foley_core.style import ReferenceStyle
from foley_core.training import ShardDataset, ShardWriter, draw_step_noise, step_generator
from foley_core.training.prompt_channel import (PromptChannelTrainConfig, prompt_channel_loss, prompt_span_features,
                                                train_prompt_channel)

MODE, DURATION = "16k", 1.0
SEQ = sequence_lengths(DURATION, MODE)
DIMS = {"clip": 16, "sync": 16, "text": 16, "latent": 8}
ARCH = {"latent_dim": DIMS["latent"], "hidden_dim": 32, "depth": 2, "fused_depth": 1, "num_heads": 2,
        "clip_dim": DIMS["clip"], "sync_dim": DIMS["sync"], "text_dim": DIMS["text"], "v2": True}


def tiny_network(seed: int = 0) -> MMAudioNetwork:
    torch.manual_seed(seed)
    net = MMAudioNetwork(NetworkConfig(**ARCH, mode=MODE, latent_seq_len=SEQ.latent, clip_seq_len=SEQ.clip,
                                       sync_seq_len=SEQ.sync))
    return net.eval().requires_grad_(False)


def channel_for(net) -> PromptChannel:
    return PromptChannel(PromptChannelConfig(width=net.config.hidden_dim, latent_dim=net.config.latent_dim,
                                             backbone={"file": "tiny.safetensors"}))


def reference() -> ReferenceStyle:
    prompt = torch.randn(1, 6, DIMS["latent"], generator=torch.Generator().manual_seed(3))
    return ReferenceStyle(prompt_latent=prompt, acoustic_vector=prompt.mean(1), prompt_seconds=0.2, mode=MODE,
                          source_sample_rate=16000, offset_s=0.0)


def run_window(net, cfg: float, prompt_len: int = 6):
    g = torch.Generator().manual_seed(5)
    target = sequence_lengths(DURATION, MODE)
    window = plan_prompt_window(target, prompt_len)
    clip = torch.randn(2, target.clip, DIMS["clip"], generator=g)
    sync = torch.randn(2, target.sync, DIMS["sync"], generator=g)
    text = torch.randn(2, SEQ.text, DIMS["text"], generator=g)
    prompt = torch.randn(1, prompt_len, DIMS["latent"], generator=g)
    x0 = draw_noise(2, window.latent, DIMS["latent"], seed=7)
    out = sample_with_prompt(net, x0, prompt, window, clip, sync, text, steps=4, cfg_strength=cfg)
    net.update_seq_lengths(SEQ.latent, SEQ.clip, SEQ.sync)
    return out, prompt


@pytest.mark.parametrize("cfg", [0.0, 4.5])
def test_zero_initialised_channel_is_bitwise_the_backbone(cfg):
    net = tiny_network()
    plain, _ = run_window(net, cfg)
    wrapped = apply_prompt_channel(net, channel_for(net), reference())
    with_channel, _ = run_window(wrapped, cfg)
    assert torch.equal(plain, with_channel)


def test_channel_only_mode_keeps_the_prompt_span_free_and_trained_channel_acts():
    net = tiny_network()
    channel = channel_for(net)
    with torch.no_grad():
        channel.proj.weight.normal_(0, 0.5)
    replaced, prompt = run_window(apply_prompt_channel(net, channel, reference(), mode=MODES[0]), 4.5)
    free, _ = run_window(apply_prompt_channel(net, channel, reference(), mode=MODES[1]), 4.5)
    plain, _ = run_window(net, 4.5)
    assert torch.equal(replaced[:, :6], prompt.expand(2, -1, -1))  # replacement kept: span = prompt
    assert not torch.equal(free[:, :6], prompt.expand(2, -1, -1))
    assert not torch.allclose(replaced[:, 6:], plain[:, 6:])  # a trained channel changes the target


def test_channel_reaches_only_the_conditional_branch():
    net = tiny_network()
    channel = channel_for(net)
    with torch.no_grad():
        channel.proj.bias.fill_(0.3)
    wrapped = apply_prompt_channel(net, channel, reference()).with_prompt(torch.zeros(1, 4, DIMS["latent"]), SEQ.latent)
    cond = wrapped.preprocess_conditions(None, None, None)
    uncond = wrapped.empty_conditions(1)
    assert cond.extra_input is not None and uncond.extra_input is None
    joint = type(cond).concat([cond, uncond])
    assert torch.equal(joint.extra_input[1], torch.zeros_like(joint.extra_input[1]))
    assert torch.allclose(joint.extra_input[0], torch.full_like(joint.extra_input[0], 0.3))


def test_masking_3_5_shapes():
    assert split_3_5(250) == 94 and split_3_5(125) == 47  # 8 s at 16k: 3 s of 8
    prompt = torch.randn(3, 4, 5)
    values, mask = masked_prompt(prompt, 10, keep=torch.tensor([True, False, True]))
    assert values.shape == (3, 10, 5) and mask.shape == (3, 10, 1)
    assert torch.equal(values[0, :4], prompt[0]) and values[0, 4:].abs().sum() == 0
    assert mask[0, :4].eq(1).all() and mask[0, 4:].eq(0).all()
    assert values[1].abs().sum() == 0 and mask[1].abs().sum() == 0  # dropped prompt
    net = tiny_network()
    n = split_3_5(SEQ.latent)
    clip, sync = prompt_span_features(net, torch.randn(1, SEQ.clip, 16), torch.randn(1, SEQ.sync, 16), n)
    window = plan_prompt_window(SEQ, n)
    assert torch.equal(clip[0, :window.clip_prompt], net.empty_clip_feat.expand(window.clip_prompt, -1))
    assert not torch.equal(clip[0, window.clip_prompt], net.empty_clip_feat[0])
    assert window.sync_prompt % 8 == 0


def test_mismatch_and_missing_style_are_clear():
    net = tiny_network()
    other = PromptChannel(PromptChannelConfig(width=64, latent_dim=8, backbone={"file": "big.safetensors"}))
    with pytest.raises(CheckpointError, match=r"width 64.*big\.safetensors"):
        apply_prompt_channel(net, other, reference())
    with pytest.raises(FoleyError, match="connect Foley Style Encode"):
        apply_prompt_channel(net, channel_for(net), None)
    with pytest.raises(FoleyError, match="mode must be one of"):
        apply_prompt_channel(net, channel_for(net), reference(), mode="sideways")
    assert apply_prompt_channel(net, None, None) is net


def test_export_load_round_trip_and_wrong_files(tmp_path):
    net = tiny_network()
    channel = channel_for(net)
    with torch.no_grad():
        channel.proj.weight.normal_()
    path = save_channel(channel, tmp_path / "pc.safetensors", {"steps_done": 3})
    loaded, meta = load_channel(path)
    assert torch.equal(loaded.proj.weight, channel.proj.weight)
    assert meta["training"]["steps_done"] == 3 and meta["config"]["backbone"]["file"] == "tiny.safetensors"
    network_file = tmp_path / "net.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(network_file))
    with pytest.raises(CheckpointError, match=r"net\.safetensors is not a Foley prompt channel"):
        load_channel(network_file)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_channel(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    save_file({"proj.weight": torch.zeros(5, 9), "proj.bias": torch.zeros(32)}, str(bad),
              metadata={"kind": KIND, "config": json.dumps(channel.config.to_dict())})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors.*proj\.weight"):
        load_channel(bad)


# ------------------------------------------------------------------------------ training
def write_toy_set(root, n_clips: int = 8):
    """Each clip repeats its own random pattern: the prompt span tells what the target is."""
    g = torch.Generator().manual_seed(0)
    out = root / "features"
    writer = ShardWriter(out, 4, {"mode": MODE, "duration_s": DURATION, "encoders": {},
                                  "seq": {"latent": SEQ.latent, "clip": SEQ.clip, "sync": SEQ.sync, "text": SEQ.text}})
    writer.write_empty_text(torch.zeros(SEQ.text, DIMS["text"]))
    for i in range(n_clips):
        pattern = 2 * torch.randn(DIMS["latent"], generator=g)
        writer.add(f"clip{i}.mp4", "", f"/videos/clip{i}.mp4", {
            "clip_f": torch.randn(SEQ.clip, DIMS["clip"], generator=g),
            "sync_f": torch.randn(SEQ.sync, DIMS["sync"], generator=g),
            "text_f": torch.zeros(SEQ.text, DIMS["text"]),
            "latent_mean": pattern + 0.1 * torch.randn(SEQ.latent, DIMS["latent"], generator=g),
            "latent_std": torch.full((SEQ.latent, DIMS["latent"]), 0.05)})
    writer.close()
    return out


def mean_loss(net, channel, features) -> float:
    dataset = ShardDataset(features)
    batch = {k: torch.stack([dataset[i][k] for i in range(len(dataset))])
             for k in ("latent_mean", "latent_std", "clip_f", "sync_f", "text_f")}
    n = len(dataset)
    with torch.no_grad():
        losses = [prompt_channel_loss(net, channel, batch,
                                      draw_step_noise(step_generator(99, k, 0), n, SEQ.latent, DIMS["latent"], 0.0, 1.0),
                                      torch.ones(n, dtype=torch.bool), split_3_5(SEQ.latent)).item() for k in range(6)]
    return sum(losses) / len(losses)


def test_training_lowers_the_loss_and_writes_the_file(tmp_path):
    features = write_toy_set(tmp_path)
    backbone = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_network(1).state_dict().items()}, str(backbone),
              metadata={"duration_s": repr(DURATION)})
    config = PromptChannelTrainConfig(backbone=str(backbone), steps=40, batch_size=4, lr=2e-2, holdout=2,
                                      text_dropout=1.0, video_dropout=1.0, log_every=10)
    summary = train_prompt_channel(features, config, tmp_path / "pc.safetensors", report=lambda _: None)
    assert summary["steps"] == 40 and summary["n_prompt"] == split_3_5(SEQ.latent)
    trained, meta = load_channel(tmp_path / "pc.safetensors")
    assert meta["training"]["masking"] == "3:5" and meta["training"]["prompt_dropout"] == 0.1
    assert meta["training"]["loss_span"] == "target" and meta["config"]["backbone"]["file"] == "backbone.safetensors"
    net = tiny_network(1)
    before = mean_loss(net, channel_for(net), features)
    after = mean_loss(net, trained, features)
    assert after < 0.95 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "pc.safetensors.log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [10, 20, 30, 40]


def test_config_checks():
    with pytest.raises(ValueError, match="backbone"):
        PromptChannelTrainConfig()
    with pytest.raises(ValueError, match="probability"):
        PromptChannelTrainConfig(backbone="x", prompt_dropout=1.5)


def test_embedded_channel_loads_and_fits_the_embedded_network():
    """The shipped channel (embedded_models/manifest.json "prompt_channel") loads weights-only, was
    trained (non-zero) against the embedded flow network, and fits it."""
    from foley_core.models import builders
    from foley_core.models.prompt_channel import check_backbone

    folder = Path(__file__).resolve().parents[2] / "embedded_models"
    manifest = json.loads((folder / "manifest.json").read_text())
    channel, metadata = load_channel(folder / manifest["files"]["prompt_channel"])
    network = builders.build_network(folder / manifest["files"]["network"]).network
    check_backbone(channel, network, "embedded channel")
    assert channel.config.backbone["file"] == manifest["files"]["network"]
    assert metadata["training"]["backbone"] == manifest["files"]["network"]
    assert channel.proj.weight.abs().max() > 0
