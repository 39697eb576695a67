"""Envelope ControlNet: zero-init identity, injection, control features, training, files, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.controls.controlnet import (KIND, ControlledConditions, ControlledNetwork, ControlNetConfig,
                                            EnvelopeControlNet, apply_controlnet, check_backbone,
                                            copied_block_count, envelope_tokens, load_controlnet,
                                            save_controlnet)
from foley_core.controls.envelope import Envelope
from foley_core.errors import CheckpointError, FoleyError
from foley_core.models.mmaudio import MMAudioNetwork, NetworkConfig, sequence_lengths
from foley_core.models.style_adapter import StyledNetwork
from foley_core.sampling.flow import draw_noise, generate_latents
from foley_core.training import ShardWriter, draw_step_noise, step_generator
from foley_core.training.controlnet import (ENVELOPES_NAME, ControlNetObjective, ControlNetTrainConfig,
                                           export_controlnet, train_controlnet)

MODE, DURATION = "16k", 1.0
SEQ = sequence_lengths(DURATION, MODE)
LATENT_RATE = 16000 / 256 / 2
DIMS = {"clip": 16, "sync": 16, "text": 16, "latent": 8}
ARCH = {"latent_dim": DIMS["latent"], "hidden_dim": 32, "depth": 5, "fused_depth": 2, "num_heads": 2,
        "clip_dim": DIMS["clip"], "sync_dim": DIMS["sync"], "text_dim": DIMS["text"], "v2": True}


def tiny_network(seed: int = 0, **arch) -> MMAudioNetwork:
    torch.manual_seed(seed)
    net = MMAudioNetwork(NetworkConfig(**{**ARCH, **arch}, mode=MODE, latent_seq_len=SEQ.latent,
                                       clip_seq_len=SEQ.clip, sync_seq_len=SEQ.sync))
    return net.eval().requires_grad_(False)


def controlnet_for(net, blocks=None, trained_seed=None) -> EnvelopeControlNet:
    cn = EnvelopeControlNet(ControlNetConfig.for_backbone(net.config, {"file": "tiny.safetensors", "mode": MODE},
                                                          blocks))
    cn.copy_backbone_blocks(net)
    if trained_seed is not None:  # "trained": non-zero input/output layers
        torch.manual_seed(trained_seed)
        with torch.no_grad():
            for layer in (cn.input_proj, *cn.output_projs):
                layer.weight.normal_(0.0, 0.3)
    return cn.eval().requires_grad_(False)


def envelope(burst=(0.3, 0.5)) -> Envelope:
    t = np.arange(int(DURATION * 125)) / 125
    return Envelope(np.where((t >= burst[0]) & (t < burst[1]), 1.0, 0.05).astype(np.float32), 125.0)


def conditions_inputs(batch: int = 2):
    g = torch.Generator().manual_seed(5)
    return (torch.randn(batch, SEQ.clip, DIMS["clip"], generator=g),
            torch.randn(batch, SEQ.sync, DIMS["sync"], generator=g),
            torch.randn(batch, SEQ.text, DIMS["text"], generator=g))


def sample(net, cfg: float):
    x0 = draw_noise(2, SEQ.latent, DIMS["latent"], seed=7)
    return generate_latents(net, x0, *conditions_inputs(), steps=4, cfg_strength=cfg)


def test_copied_blocks_follow_the_20_percent_rule():
    assert [copied_block_count(d) for d in (4, 12, 21, 5, 10)] == [1, 2, 4, 1, 2]
    net = tiny_network()
    assert ControlNetConfig.for_backbone(net.config).blocks == 1
    cn = controlnet_for(net, blocks=4)  # 3 joint + 1 fused: the copy crosses into the fused blocks
    assert len(cn.joint_blocks) == 3 and len(cn.fused_blocks) == 1 and len(cn.output_projs) == 4
    with pytest.raises(ValueError):
        ControlNetConfig.for_backbone(net.config, blocks=6)


@pytest.mark.parametrize("blocks", [1, 4])
def test_copy_starts_from_the_backbone_weights(blocks):
    net = tiny_network()
    cn = controlnet_for(net, blocks)
    for i, block in enumerate(cn.joint_blocks):
        assert torch.equal(block.latent_block.attn.qkv.weight, net.joint_blocks[i].latent_block.attn.qkv.weight)
        mod = block.clip_block.adaLN_modulation[1].weight
        assert torch.equal(mod, net.joint_blocks[i].clip_block.adaLN_modulation[1].weight[:mod.shape[0]])
    for i, block in enumerate(cn.fused_blocks):
        assert torch.equal(block.ffn.w1.weight, net.fused_blocks[i].ffn.w1.weight)


@pytest.mark.parametrize("cfg", [0.0, 4.5])
@pytest.mark.parametrize("cfg_mode", ["conditional", "both"])
def test_zero_initialised_controlnet_is_bitwise_the_backbone(cfg, cfg_mode):
    net = tiny_network()
    plain = sample(net, cfg)
    for blocks in (1, 4):
        controlled = ControlledNetwork(net, controlnet_for(net, blocks), envelope(), cfg_mode=cfg_mode)
        assert torch.equal(plain, sample(controlled, cfg))


def test_trained_controlnet_steers_and_strength_zero_is_plain():
    net = tiny_network()
    cn = controlnet_for(net, 2, trained_seed=1)
    plain = sample(net, 4.5)
    steered = sample(ControlledNetwork(net, cn, envelope()), 4.5)
    assert not torch.allclose(plain, steered)
    other = sample(ControlledNetwork(net, cn, envelope(burst=(0.6, 0.9))), 4.5)
    assert not torch.allclose(steered, other), "the envelope must matter"
    off = sample(ControlledNetwork(net, cn, envelope(), strength=0.0), 4.5)
    assert torch.equal(plain, off)
    assert apply_controlnet(net, None, envelope()) is net


def test_injection_shapes_and_the_residual_hook():
    net = tiny_network()
    cn = controlnet_for(net, 4, trained_seed=2)
    feats, mask = envelope_tokens(envelope(), SEQ.latent, LATENT_RATE)
    features = torch.from_numpy(feats)[None].expand(2, -1, -1)
    seen = {}

    def control(x, clip, text, global_c, extended_c, latent_rot, clip_rot):
        residuals = cn(features, None, x, clip, text, global_c, extended_c, latent_rot, clip_rot)
        seen["shapes"] = [tuple(r.shape) for r in residuals]
        return residuals

    conditions = net.preprocess_conditions(*conditions_inputs())
    x = torch.randn(2, SEQ.latent, DIMS["latent"])
    out = net.predict_flow(x, 0.3, conditions, control=control)
    assert out.shape == x.shape
    assert seen["shapes"] == [(2, SEQ.latent, ARCH["hidden_dim"])] * 4
    # No control = the plain code path.
    assert torch.equal(net.predict_flow(x, 0.3, conditions), net.predict_flow(x, 0.3, conditions, control=None))


def test_cfg_modes_and_condition_concat():
    net = tiny_network()
    cn = controlnet_for(net, 1, trained_seed=3)
    conditional = ControlledNetwork(net, cn, envelope(), cfg_mode="conditional")
    cond = conditional.preprocess_conditions(*conditions_inputs(1))
    uncond = conditional.empty_conditions(1)
    assert isinstance(cond, ControlledConditions) and float(cond.control_mask.min()) == 1.0
    assert float(uncond.control_mask.max()) == 0.0, "the unconditional branch has the envelope dropped"
    both = ControlledNetwork(net, cn, envelope(), cfg_mode="both").empty_conditions(1)
    assert float(both.control_mask.min()) == 1.0
    joined = ControlledConditions.concat([cond.expand(2), uncond.expand(2)])
    assert joined.control.shape[0] == 4 and joined.control_mask[:2].min() == 1 and joined.control_mask[2:].max() == 0
    # A plain part (no ControlNet) joins as dropped rows.
    mixed = ControlledConditions.concat([cond, net.empty_conditions(1)])
    assert mixed.control_mask[1].max() == 0
    assert sample(conditional, 4.5).shape == sample(ControlledNetwork(net, cn, envelope(), cfg_mode="both"), 4.5).shape
    with pytest.raises(FoleyError, match="CFG mode"):
        ControlledNetwork(net, cn, envelope(), cfg_mode="sometimes")


def test_controlnet_composes_with_a_style_adapter_wrapper():
    net = tiny_network()
    styled = StyledNetwork(net, torch.randn(1, ARCH["hidden_dim"]))
    plain = sample(styled, 4.5)
    assert torch.equal(plain, sample(ControlledNetwork(styled, controlnet_for(net), envelope()), 4.5))


def test_envelope_tokens_sample_the_window_on_the_output_timeline():
    env = envelope(burst=(0.5, 0.75))
    feats, mask = envelope_tokens(env, SEQ.latent, LATENT_RATE, subframes=4)
    assert feats.shape == (SEQ.latent, 8) and mask.all()
    linear = feats[:, :4]
    assert linear.max() == pytest.approx(1.0)
    loud = np.nonzero(linear.mean(1) > 0.5)[0] / LATENT_RATE
    assert loud.min() == pytest.approx(0.5, abs=1 / LATENT_RATE) and loud.max() + 1 / LATENT_RATE == pytest.approx(0.75, abs=1 / LATENT_RATE)
    assert np.all(feats[:, 4:] >= linear - 1e-6), "μ-law compression lifts quiet values"
    # The first window after 4 reference-prompt tokens: those lie before 0 s and are masked.
    feats, mask = envelope_tokens(env, 20, LATENT_RATE, start_s=0.0, prompt_tokens=4)
    assert not mask[:4].any() and mask[4:].all() and np.all(feats[:4] == 0) and feats[4:].max() > 0
    # A continuation window: prompt tokens lie on the timeline and get the envelope there.
    feats, mask = envelope_tokens(env, 20, LATENT_RATE, start_s=0.5, prompt_tokens=8)
    assert mask.all() and feats[8, 0] == pytest.approx(1.0) and feats[7, 0] < 0.2


def test_long_generation_slices_the_envelope_per_window():
    from foley_core.features import VisualFeatures
    from foley_core.generation import GenerationSettings
    from foley_core.long_generation import generate_long

    net = tiny_network()
    cn = controlnet_for(net, 1, trained_seed=4)
    seen = []

    class Probe(ControlledNetwork):
        def control_signal(self, batch, device, dtype):
            seen.append((self.prompt_latents, round(self.start_s, 3)))
            return super().control_signal(batch, device, dtype)

    total = 4.0
    lengths = sequence_lengths(total, MODE)
    feats = VisualFeatures(clip_f=torch.randn(1, lengths.clip, DIMS["clip"]),
                           sync_f=torch.randn(1, lengths.sync, DIMS["sync"]),
                           text_f=torch.randn(1, SEQ.text, DIMS["text"]), negative_text_f=None, duration_s=total)
    env = Envelope(np.ones(int(total * 125), np.float32), 125.0)
    latents, plan = generate_long(Probe(net, cn, env), feats, MODE, GenerationSettings(steps=2, cfg_strength=4.5),
                                  window_s=2.0, overlap_s=0.5, device=torch.device("cpu"))
    assert len(plan.windows) > 1 and latents.shape[1] == plan.latent
    starts = sorted({s for _, s in seen})
    assert starts == sorted({round(w.start / LATENT_RATE, 3) for w in plan.windows})


def test_mismatched_backbone_is_a_clear_error():
    cn = controlnet_for(tiny_network(), 1)
    wide = tiny_network(hidden_dim=64)
    with pytest.raises(CheckpointError, match="hidden_dim 32 vs 64.*tiny.safetensors"):
        check_backbone(cn, wide, "The ControlNet")
    with pytest.raises(CheckpointError, match="depth"):
        ControlledNetwork(tiny_network(depth=6, fused_depth=3), cn, envelope())
    with pytest.raises(FoleyError, match="envelope"):
        ControlledNetwork(tiny_network(), cn, None)


def test_file_round_trip_and_bad_files(tmp_path):
    net = tiny_network()
    cn = controlnet_for(net, 2, trained_seed=5)
    path = save_controlnet(cn, tmp_path / "cn.safetensors", {"step": 3})
    loaded, meta = load_controlnet(path)
    assert meta["training"] == {"step": 3} and meta["config"]["blocks"] == 2
    for key, value in cn.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert torch.equal(sample(ControlledNetwork(net, cn, envelope()), 4.5),
                       sample(ControlledNetwork(net, loaded, envelope()), 4.5))
    half, _ = load_controlnet(save_controlnet(cn, tmp_path / "half.safetensors", fp16=True))
    assert half.input_proj.weight.dtype == torch.float32
    save_file({"x": torch.zeros(2)}, str(tmp_path / "net.safetensors"), metadata={"kind": "foley_style_adapter"})
    with pytest.raises(CheckpointError, match="not a Foley envelope ControlNet"):
        load_controlnet(tmp_path / "net.safetensors")
    with pytest.raises(CheckpointError, match="foley_controlnet"):
        load_controlnet(tmp_path / "missing.safetensors")
    state = {k: v for k, v in cn.state_dict().items() if not k.startswith("output_projs.1")}
    save_file(state, str(tmp_path / "cut.safetensors"),
              metadata={"kind": KIND, "config": json.dumps(cn.config.to_dict())})
    with pytest.raises(CheckpointError, match="do not match"):
        load_controlnet(tmp_path / "cut.safetensors")


# ------------------------------------------------------------------------------- training
def write_features(root, n: int = 8):
    """A tiny feature folder whose latents' loudness follows each clip's envelope."""
    writer = ShardWriter(root, 4, {"mode": MODE, "duration_s": DURATION, "sample_rate": 16000,
                                   "seq": {"latent": SEQ.latent, "clip": SEQ.clip, "sync": SEQ.sync,
                                           "text": SEQ.text}, "encoders": {}})
    g = torch.Generator().manual_seed(0)
    envelopes = []
    for i in range(n):
        env = envelope(burst=(0.1 * i, 0.1 * i + 0.3)).values
        envelopes.append(torch.from_numpy(env))
        level = torch.from_numpy(np.interp(np.arange(SEQ.latent) / LATENT_RATE, np.arange(env.size) / 125, env))
        writer.add(f"clip_{i}.mp4", "", "", {
            "clip_f": torch.randn(SEQ.clip, DIMS["clip"], generator=g),
            "sync_f": torch.randn(SEQ.sync, DIMS["sync"], generator=g),
            "text_f": torch.randn(SEQ.text, DIMS["text"], generator=g),
            "latent_mean": 3 * level.float()[:, None] * torch.ones(SEQ.latent, DIMS["latent"]),
            "latent_std": 0.01 * torch.ones(SEQ.latent, DIMS["latent"])})
    writer.close()
    save_file({"envelope": torch.stack(envelopes)}, str(root / ENVELOPES_NAME), metadata={"envelopes": json.dumps(
        {"frame_rate": 125.0, "duration_s": DURATION, "clips": [f"clip_{i}.mp4" for i in range(n)]})})


def test_a_few_training_steps_lower_the_loss_on_tiny_data(tmp_path):
    from foley_core.models.mmaudio.weights import load_network_weights  # noqa: F401  (import check)
    from safetensors.torch import save_file as save

    write_features(tmp_path / "features")
    net = tiny_network(depth=2, fused_depth=1)
    save({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "backbone.safetensors"))
    config = ControlNetTrainConfig(backbone=str(tmp_path / "backbone.safetensors"), batch_size=4, steps=40,
                                   lr=3e-3, warmup_steps=1, log_every=5, checkpoint_every=20,
                                   envelope_dropout=0.0, uncond_dropout=0.0, video_dropout=0.0, text_dropout=0.0)
    run = tmp_path / "run"
    summary = train_controlnet(tmp_path / "features", config, run, device="cpu")
    assert summary["step"] == 40
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < 0.9 * log[0]["loss"], log
    out = export_controlnet(run, tmp_path / "cn.safetensors", fp16=True)
    loaded, meta = load_controlnet(out)
    assert meta["config"]["blocks"] == 1 and meta["config"]["backbone"]["file"] == "backbone.safetensors"
    assert meta["config"]["backbone_arch"]["hidden_dim"] == ARCH["hidden_dim"]
    assert meta["training"]["step"] == 40
    assert loaded.output_projs[0].weight.abs().max() > 0, "training moved the zero-initialised output layer"


def test_objective_ignores_a_dropped_envelope_and_zero_init_gives_the_backbone_loss():
    from foley_core.training import FlowMatchingObjective

    net = tiny_network()
    noise = draw_step_noise(step_generator(0, 0, 0), 2, SEQ.latent, DIMS["latent"], 0.0, 0.0)
    mean = torch.randn(2, SEQ.latent, DIMS["latent"])
    inputs = (mean, torch.ones_like(mean) * 0.1, *conditions_inputs())
    a, b = torch.rand(2, SEQ.latent, 8), torch.rand(2, SEQ.latent, 8)
    keep, drop = torch.tensor([True, True]), torch.tensor([False, False])
    plain = FlowMatchingObjective(net)(*inputs, noise)
    assert torch.equal(ControlNetObjective(net, controlnet_for(net, 1))(*inputs, noise, a, keep), plain)
    trained = ControlNetObjective(net, controlnet_for(net, 1, trained_seed=6))
    assert torch.equal(trained(*inputs, noise, a, drop), trained(*inputs, noise, b, drop))
    assert not torch.equal(trained(*inputs, noise, a, keep), trained(*inputs, noise, b, keep))


def test_reference_prompt_window_and_half_precision_network():
    from foley_core.features import VisualFeatures
    from foley_core.generation import GenerationSettings
    from foley_core.long_generation import generate_long

    net = tiny_network()
    cn = controlnet_for(net, 1, trained_seed=7)
    feats = VisualFeatures(clip_f=torch.randn(1, SEQ.clip, DIMS["clip"]), sync_f=torch.randn(1, SEQ.sync, DIMS["sync"]),
                           text_f=torch.randn(1, SEQ.text, DIMS["text"]), negative_text_f=None, duration_s=DURATION)
    reference = torch.randn(1, 6, DIMS["latent"])  # a reference prompt: its tokens get no control
    latents, _ = generate_long(ControlledNetwork(net, cn, envelope()), feats, MODE,
                               GenerationSettings(steps=2, cfg_strength=4.5), window_s=8.0, reference=reference,
                               device=torch.device("cpu"))
    assert latents.shape == (1, SEQ.latent, DIMS["latent"]) and torch.isfinite(latents).all()
    half = tiny_network().to(torch.bfloat16)
    out = sample(ControlledNetwork(half, cn, envelope()), 4.5)
    assert torch.isfinite(out).all()
    assert cn.input_proj.weight.dtype == torch.float32, "the loaded ControlNet is not cast in place"
