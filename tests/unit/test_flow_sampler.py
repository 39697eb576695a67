"""Euler flow-matching sampler with CFG against the official trajectories (fm_sampler_tiny_v2)."""

from __future__ import annotations

import pytest
import torch

from foley_core.models.mmaudio import MMAudioNetwork, detect_network_config, load_network_weights, with_mode
from foley_core.sampling.flow import (GuidedVelocity, draw_noise, generate_latents, sample_euler,
                                      time_grid)

import parity_data

ATOL = RTOL = 2e-4  # README: sampler tolerance

CASES = {  # name: (steps, cfg strength, negative text, video)
    "A": (5, 4.5, True, True),
    "B": (5, 4.5, False, True),
    "C": (3, 0.5, False, True),
    "D": (25, 4.5, True, True),
    "E": (5, 4.5, False, False),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    err = (actual - expected).abs().max().item()
    assert torch.allclose(actual, expected, atol=ATOL, rtol=RTOL), f"{name}: max abs error {err:.3e}"


@pytest.fixture(scope="module")
def net() -> MMAudioNetwork:
    weights = parity_data.weights("mmaudio_net_tiny_v2")
    _, config = detect_network_config(weights)
    network = MMAudioNetwork(with_mode(config, "44k"))
    network.update_seq_lengths(31, 8, 24)
    return load_network_weights(network, weights).eval()


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return parity_data.io("fm_sampler_tiny_v2")


def case_inputs(io, negative: bool, video: bool) -> dict:
    return dict(clip_f=io["in.clip_f"] if video else None, sync_f=io["in.sync_f"] if video else None,
                text_f=io["in.text_f"], negative_text_f=io["in.neg_text_f"] if negative else None)


def test_noise_matches_official_cpu_seed(io):
    noise = draw_noise(2, 31, 8, seed=42)
    assert noise.dtype == torch.float32 and noise.shape == (2, 31, 8)
    assert torch.equal(noise, io["in.x0"])
    assert draw_noise(2, 31, 8, seed=42, dtype=torch.bfloat16).dtype == torch.bfloat16
    assert not torch.equal(draw_noise(2, 31, 8, seed=43), noise)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sampler_cases(net, io, name):
    steps, strength, negative, video = CASES[name]
    inputs = case_inputs(io, negative, video)
    seen: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []
    latent = generate_latents(net, io["in.x0"], inputs["clip_f"], inputs["sync_f"], inputs["text_f"],
                              negative_text_f=inputs["negative_text_f"], steps=steps, cfg_strength=strength,
                              callback=lambda k, n, x, x1: seen.append((k, n, x, x1)))
    assert_close(latent, io[f"out.{name}.latent"], f"{name}.latent")
    assert_close(seen[-1][2], io[f"out.{name}.x1"], f"{name}.x1")
    assert [(k, n) for k, n, _, _ in seen] == [(k, steps) for k in range(steps)]
    grid = time_grid(steps)
    assert torch.equal(grid[:-1], io[f"out.{name}.t"])
    if f"out.{name}.traj_x" not in io:  # case D stores only the endpoints
        return
    traj_x, traj_v = io[f"out.{name}.traj_x"], io[f"out.{name}.traj_v"]
    for k, (_, _, x_after, x1_estimate) in enumerate(seen):
        if k + 1 < steps:
            assert_close(x_after, traj_x[k + 1], f"{name}.traj_x[{k + 1}]")
        assert_close(x1_estimate, traj_x[k] + (1 - grid[k]) * traj_v[k], f"{name}.x1_estimate[{k}]")
    # The guided velocity itself, evaluated on the official states.
    with torch.no_grad():
        conditions = net.preprocess_conditions(inputs["clip_f"], inputs["sync_f"], inputs["text_f"])
        velocity = GuidedVelocity(net, conditions, net.empty_conditions(2, inputs["negative_text_f"]), strength, 2)
        for k in range(steps):
            assert_close(velocity(traj_x[k], grid[k]), traj_v[k], f"{name}.traj_v[{k}]")


def test_normalised_output_is_sampler_state(net, io):
    inputs = case_inputs(io, True, True)
    x1 = generate_latents(net, io["in.x0"], inputs["clip_f"], inputs["sync_f"], inputs["text_f"],
                          negative_text_f=inputs["negative_text_f"], steps=5, normalized=True)
    assert_close(x1, io["out.A.x1"], "A.x1 (normalized=True)")


def test_batched_cfg_equals_separate_calls(net, io):
    x, t = io["in.x0"], 0.4
    with torch.no_grad():
        conditions = net.preprocess_conditions(io["in.clip_f"], io["in.sync_f"], io["in.text_f"])
        uncond = net.empty_conditions(2, io["in.neg_text_f"])
        batched = GuidedVelocity(net, conditions, uncond, 4.5, 2)(x, t)
        separate = 4.5 * net.predict_flow(x, t, conditions) - 3.5 * net.predict_flow(x, t, uncond)
    assert torch.allclose(batched, separate, atol=1e-5, rtol=1e-5)


def test_weak_guidance_runs_conditional_branch_only(net, io):
    calls: list[int] = []
    original = net.predict_flow

    def counting(latent, t, conditions):
        calls.append(latent.shape[0])
        return original(latent, t, conditions)

    with torch.no_grad():
        conditions = net.preprocess_conditions(io["in.clip_f"], io["in.sync_f"], io["in.text_f"])
    net.predict_flow = counting
    try:
        sample_euler(net, io["in.x0"], conditions, None, steps=3, cfg_strength=0.5)
        assert calls == [2, 2, 2]
        calls.clear()
        sample_euler(net, io["in.x0"], conditions, net.empty_conditions(2), steps=2, cfg_strength=1.0)
        assert calls == [4, 4]  # both branches in one call
    finally:
        del net.predict_flow
    with pytest.raises(ValueError, match="unconditional"):
        sample_euler(net, io["in.x0"], conditions, None, steps=2, cfg_strength=4.5)


def test_callback_can_abort(net, io):
    class Interrupted(Exception):
        pass

    steps_done: list[int] = []

    def stop_after_two(k, _total, _x, _x1):
        steps_done.append(k)
        if k == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        generate_latents(net, io["in.x0"], io["in.clip_f"], io["in.sync_f"], io["in.text_f"],
                         steps=10, callback=stop_after_two)
    assert steps_done == [0, 1]


def test_time_grid_rejects_zero_steps():
    with pytest.raises(ValueError):
        time_grid(0)
