"""Parity of the MMAudio flow network (v1 and v2 layouts) against the official golden tensors."""

from __future__ import annotations

import pytest
import torch

from foley_core.errors import CheckpointError
from foley_core.models.mmaudio import (MMAudioNetwork, detect_network_config, load_network_weights,
                                       with_mode)
from foley_core.sampling.flow import GuidedVelocity

import parity_data


ATOL = RTOL = 1e-4  # README: single forward passes
LAYOUTS = ["v1", "v2"]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, name: str, atol: float = ATOL) -> None:
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    err = (actual.float() - expected).abs().max().item()
    assert torch.allclose(actual.float(), expected, atol=atol, rtol=RTOL), f"{name}: max abs error {err:.3e}"


def build_parity_net(layout: str, on_meta: bool = False) -> MMAudioNetwork:
    weights = parity_data.weights(f"mmaudio_net_tiny_{layout}")
    _, config = detect_network_config(weights)
    config = with_mode(config, "44k")
    if on_meta:
        with torch.device("meta"):
            net = MMAudioNetwork(config)
    else:
        net = MMAudioNetwork(config)
    net.update_seq_lengths(31, 8, 24)
    return load_network_weights(net, weights).eval()


@pytest.fixture(scope="module", params=LAYOUTS)
def case(request):
    io = parity_data.io(f"mmaudio_net_tiny_{request.param}")
    return request.param, build_parity_net(request.param), io


def test_detects_tiny_config_from_shapes():
    for layout in LAYOUTS:
        weights = parity_data.weights(f"mmaudio_net_tiny_{layout}")
        name, config = detect_network_config(weights)
        assert name == "custom" and config.mode is None
        assert (config.latent_dim, config.hidden_dim, config.num_heads, config.head_dim) == (8, 64, 2, 32)
        assert (config.depth, config.fused_depth, config.joint_depth) == (3, 1, 2)
        assert (config.clip_dim, config.sync_dim, config.text_dim, config.text_seq_len) == (24, 16, 20, 7)
        assert config.v2 == (layout == "v2")
        assert config.timestep_freq_dim == (64 if layout == "v2" else 256)


def test_rope_tables(case):
    _, net, io = case
    assert net.latent_rot.dtype == torch.float32
    assert_close(net.latent_rot, io["out.latent_rot"], "latent_rot")
    assert_close(net.clip_rot, io["out.clip_rot"], "clip_rot")


def test_timestep_embedding(case):
    _, net, io = case
    with torch.no_grad():
        assert_close(net.t_embed.frequency_features(io["in.t"]), io["out.t_freq"], "t_freq")
        assert_close(net.t_embed(io["in.t"]), io["out.t_emb"], "t_emb")


def test_latent_normalisation(case):
    _, net, io = case
    with torch.no_grad():
        assert_close(net.normalize(io["in.latent"]), io["out.normalized_latent"], "normalized")
        assert_close(net.unnormalize(io["in.latent"]), io["out.unnormalized_latent"], "unnormalized")


def assert_conditions(conditions, io, prefix: str) -> None:
    for field in ("clip_f", "sync_f", "text_f", "clip_f_c", "text_f_c"):
        assert_close(getattr(conditions, field), io[f"{prefix}.{field}"], f"{prefix}.{field}")


def test_preprocessed_conditions(case):
    _, net, io = case
    with torch.no_grad():
        conditions = net.preprocess_conditions(io["in.clip_f"], io["in.sync_f"], io["in.text_f"])
    assert_conditions(conditions, io, "out.cond")


def test_forward_with_intermediates(case):
    _, net, io = case
    captured: dict[str, torch.Tensor] = {}

    def keep(name):
        return lambda _module, _inputs, output: captured.__setitem__(name, output)

    hooks = [net.audio_input_proj.register_forward_hook(keep("audio_in")),
             net.global_cond_mlp.register_forward_hook(keep("global_cond_mlp")),
             net.fused_blocks[0].register_forward_hook(keep("fused.0.latent")),
             net.final_layer.register_forward_pre_hook(
                 lambda _m, inputs: captured.update(final_in=inputs[0], final_c=inputs[1]))]
    for i, block in enumerate(net.joint_blocks):
        hooks.append(block.register_forward_hook(lambda _m, _i, out, i=i: captured.update(
            {f"joint.{i}.{stream}": o for stream, o in zip(("latent", "clip", "text"), out)})))
    try:
        with torch.no_grad():
            conditions = net.preprocess_conditions(io["in.clip_f"], io["in.sync_f"], io["in.text_f"])
            flow = net.predict_flow(io["in.latent"], io["in.t"], conditions)
            global_c, extended_c = net.modulation_signals(io["in.t"], conditions)
    finally:
        for hook in hooks:
            hook.remove()
    assert_close(global_c, io["out.global_c"], "global_c")
    assert_close(extended_c, io["out.extended_c"], "extended_c")
    for name, value in captured.items():
        assert_close(value, io[f"out.{name}"], name)
    assert len(captured) == 11
    assert_close(flow, io["out.flow"], "flow")


def test_convenience_forward_matches(case):
    _, net, io = case
    with torch.no_grad():
        flow = net(io["in.latent"], io["in.t"], io["in.clip_f"], io["in.sync_f"], io["in.text_f"])
    assert_close(flow, io["out.flow"], "forward")


def test_unconditional_branches(case):
    _, net, io = case
    with torch.no_grad():
        empty = net.empty_conditions(2)
        empty_neg = net.empty_conditions(2, io["in.neg_text_f"])
        flow_uncond = net.predict_flow(io["in.latent"], io["in.t"], empty)
        flow_uncond_neg = net.predict_flow(io["in.latent"], io["in.t"], empty_neg)
    assert_conditions(empty, io, "out.empty")
    assert_conditions(empty_neg, io, "out.empty_neg")
    assert_close(flow_uncond, io["out.flow_uncond"], "flow_uncond")
    assert_close(flow_uncond_neg, io["out.flow_uncond_neg"], "flow_uncond_neg")


@pytest.mark.parametrize("key, strength, negative", [
    ("out.ode_cfg4.5", 4.5, False), ("out.ode_cfg4.5_neg", 4.5, True), ("out.ode_cfg0.5", 0.5, False)])
def test_cfg_velocity(case, key, strength, negative):
    _, net, io = case
    with torch.no_grad():
        conditions = net.preprocess_conditions(io["in.clip_f"], io["in.sync_f"], io["in.text_f"])
        uncond = net.empty_conditions(2, io["in.neg_text_f"] if negative else None)
        velocity = GuidedVelocity(net, conditions, uncond, strength, batch_size=2)
        v = velocity(io["in.latent"], io["in.t_scalar"])
    assert_close(v, io[key], key)


def test_variable_duration(case):
    _, net, io = case
    try:
        net.update_seq_lengths(20, 5, 16)
        assert_close(net.latent_rot, io["out.var.latent_rot"], "var.latent_rot")
        assert_close(net.clip_rot, io["out.var.clip_rot"], "var.clip_rot")
        with torch.no_grad():
            conditions = net.preprocess_conditions(io["in.var.clip_f"], io["in.var.sync_f"], io["in.var.text_f"])
            flow = net.predict_flow(io["in.var.latent"], io["in.t"], conditions)
            flow_uncond = net.predict_flow(io["in.var.latent"], io["in.t"], net.empty_conditions(2))
        assert_conditions(conditions, io, "out.var.cond")
        assert_close(flow, io["out.var.flow"], "var.flow")
        assert_close(flow_uncond, io["out.var.flow_uncond"], "var.flow_uncond")
        with pytest.raises(ValueError, match="update_seq_lengths"):
            net.predict_flow(io["in.latent"], io["in.t"], conditions)
    finally:
        net.update_seq_lengths(31, 8, 24)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_meta_build_then_assign_load(layout):
    io = parity_data.io(f"mmaudio_net_tiny_{layout}")
    net = build_parity_net(layout, on_meta=True)
    assert not any(t.is_meta for t in [*net.parameters(), *net.buffers()])
    with torch.no_grad():
        flow = net(io["in.latent"], io["in.t"], io["in.clip_f"], io["in.sync_f"], io["in.text_f"])
    assert_close(flow, io["out.flow"], "flow (meta build)")


def test_weight_loading_ignores_buffers_and_reports_mismatches():
    weights = parity_data.weights("mmaudio_net_tiny_v2")
    _, config = detect_network_config(weights)
    net = MMAudioNetwork(config)
    with_buffers = dict(weights, latent_rot=torch.zeros(1), clip_rot=torch.zeros(1))
    with_buffers["t_embed.freqs"] = torch.zeros(1)
    load_network_weights(net, with_buffers)  # official files may carry the buffers: dropped

    broken = dict(weights)
    del broken["fused_blocks.0.ffn.w1.weight"], broken["latent_mean"]
    broken["extra.weight"] = torch.zeros(1)
    broken["final_layer.conv.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as excinfo:
        load_network_weights(net, broken)
    message = str(excinfo.value)
    assert "missing keys: 2 (" in message and "fused_blocks.0.ffn.w1.weight" in message
    assert "unexpected keys: 1 (extra.weight)" in message
    assert "final_layer.conv.bias (3,) vs (8,)" in message


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_keeps_fp32_tables(dtype):
    io = parity_data.io("mmaudio_net_tiny_v2")
    net = build_parity_net("v2").to(dtype)
    assert net.latent_rot.dtype == net.clip_rot.dtype == net.t_embed.freqs.dtype == torch.float32
    assert_close(net.latent_rot, io["out.latent_rot"], "latent_rot after cast")
    assert net.weight_dtype == dtype
    with torch.no_grad():
        flow = net(io["in.latent"].to(dtype), io["in.t"], io["in.clip_f"], io["in.sync_f"], io["in.text_f"])
        latent = net.unnormalize(io["in.latent"].to(dtype))
    assert flow.dtype == dtype and latent.dtype == dtype
    rel = (flow.float() - io["out.flow"]).norm() / io["out.flow"].norm()
    assert rel < 0.05, f"{dtype} flow deviates by {rel:.3f} (relative L2)"
