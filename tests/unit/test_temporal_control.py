"""Temporal control (issue #6): envelope edits, motion energy, TiVA layout, guidance and its hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from foley_core.controls.envelope import Envelope, rms_envelope
from foley_core.controls.envelope_edit import (apply_envelope_edit, edited_envelope_from_scratch,
                                               parse_envelope_edit)
from foley_core.controls.guidance import ControlGuidance, guided_steps
from foley_core.controls.layout import Layout, audio_layout, layout_frames, normalize_and_resize
from foley_core.controls.motion_energy import motion_energy_envelope
from foley_core.controls.plots import envelope_plot, layout_heatmap, widget_payload
from foley_core.errors import FoleyError
from foley_core.generation import GenerationSettings, generate
from foley_core.long_generation import generate_long
from foley_core.models.mmaudio.sequence import sequence_lengths
from foley_core.sampling.flow import draw_noise, generate_latents

from test_latent_prompting import LATENT_DIM, MODE, random_features, tiny_network

CPU = torch.device("cpu")


def flat(n=250, value=0.5, rate=125.0):
    return Envelope(values=np.full(n, value, dtype=np.float32), frame_rate=rate)


# --- envelope edits (the widget / API contract) ---------------------------------------------

@pytest.mark.parametrize("text", ["", "   ", "null", '{"points": []}', '{"version": 1, "mode": "scale", "points": []}'])
def test_no_edit(text):
    assert parse_envelope_edit(text) is None
    env = flat()
    assert apply_envelope_edit(env, text) is env


def test_replace_is_piecewise_linear_and_holds_the_ends():
    env = flat(n=250)  # 2 s at 125/s
    edit = json.dumps({"version": 1, "mode": "replace", "points": [[0.5, 0.0], [1.0, 1.0]]})
    out = apply_envelope_edit(env, edit)
    t = env.times()
    assert out.frame_rate == env.frame_rate and out.n_frames == env.n_frames
    np.testing.assert_allclose(out.values[t <= 0.5], 0.0, atol=1e-7)
    np.testing.assert_allclose(out.values[t >= 1.0], 1.0, atol=1e-7)
    assert out.values[100] == pytest.approx(0.6, abs=1e-6)  # t = 0.8 s


def test_scale_multiplies_and_clips_to_the_envelope_range():
    env = flat(value=0.5)
    out = apply_envelope_edit(env, {"mode": "scale", "points": [[0.0, 0.0], [2.0, 4.0]]})
    assert out.values[0] == 0.0
    assert out.values.max() == pytest.approx(1.0)  # 0.5 · 4 clipped
    assert out.values[50] == pytest.approx(0.5 * 0.8, abs=1e-6)  # t = 0.4 s: multiplier 0.8


def test_unsorted_points_are_sorted_and_outside_points_clipped_onto_the_clip():
    env = flat(n=250)
    a = apply_envelope_edit(env, {"points": [[1.0, 1.0], [0.0, 0.0]]})
    b = apply_envelope_edit(env, {"points": [[0.0, 0.0], [1.0, 1.0]]})
    np.testing.assert_array_equal(a.values, b.values)
    # A point at 5 s on a 2 s clip acts at the clip's end.
    c = apply_envelope_edit(env, {"points": [[0.0, 0.0], [5.0, 1.0]]})
    assert c.values[-1] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"version": 2, "points": [[0, 1]]}', "version 2"),
    ('{"mode": "add", "points": [[0, 1]]}', "replace"),
    ('{"points": [[0, 1.5]]}', "[0, 1]"),
    ('{"mode": "scale", "points": [[0, -1]]}', ">= 0"),
    ('{"points": [[0]]}', "[time_s, value]"),
    ('{"points": [["a", 1]]}', "[time_s, value]"),
    ('{"points": {"0": 1}}', "list"),
])
def test_malformed_edits_raise_a_clear_error(text, words):
    with pytest.raises(FoleyError, match=None) as info:
        parse_envelope_edit(text)
    assert words in str(info.value)


def test_envelope_drawn_from_scratch():
    env = edited_envelope_from_scratch({"points": [[0, 0.2], [3, 0.8]]}, 3.0, 125.0)
    assert env.n_frames == 375 and env.values[0] == pytest.approx(0.2)


def test_widget_payload_is_downsampled_to_at_most_400_values():
    env = Envelope(values=np.linspace(0, 1, 1250, dtype=np.float32), frame_rate=125.0)
    entry = widget_payload(env, edited=True)
    assert set(entry) == {"duration_s", "frame_rate", "values", "edited"}
    assert len(entry["values"]) == 400 and entry["duration_s"] == pytest.approx(10.0)
    assert entry["frame_rate"] == 125.0 and entry["edited"] is True
    json.dumps(entry)
    assert len(widget_payload(flat(n=100), edited=False)["values"]) == 100


# --- motion energy ---------------------------------------------------------------------------

def test_motion_energy_peaks_where_the_picture_changes():
    frames = np.zeros((50, 3, 16, 16), dtype=np.uint8)  # 2 s at 25 fps
    frames[30:] = 200  # a cut at frame 30 = 1.2 s
    env = motion_energy_envelope(frames, 25.0, 2.0)
    assert env.frame_rate == 125.0 and env.n_frames == 250
    assert 0.0 <= env.values.min() and env.values.max() <= 1.0
    assert abs(env.times()[int(np.argmax(env.values))] - 1.2) < 0.1
    still = motion_energy_envelope(np.zeros((50, 3, 8, 8), dtype=np.uint8), 25.0, 2.0)
    assert not still.values.any()


# --- TiVA layout -----------------------------------------------------------------------------

def test_layout_of_10_s_is_102_by_5_at_10_2_per_second():
    sr = 22050
    audio = 0.1 * np.random.default_rng(0).standard_normal(10 * sr).astype(np.float32)
    layout = audio_layout(audio, sr)
    assert isinstance(layout, Layout)
    assert layout.values.shape == (102, 5) and layout.frame_rate == pytest.approx(10.2)
    assert layout.duration == pytest.approx(10.0)
    assert 0.0 <= layout.values.min() and layout.values.max() <= 1.0
    assert layout_frames(4.0) == 41 and audio_layout(audio, sr, bands=3, frame_rate=5).values.shape == (50, 3)


def test_layout_shows_when_and_where_in_frequency_the_sound_is():
    sr = 16000
    t = np.arange(4 * sr) / sr
    audio = np.zeros_like(t)
    burst = (t >= 1.0) & (t < 2.0)
    audio[burst] = 0.5 * np.sin(2 * np.pi * 6000 * t[burst])  # high band, 1-2 s
    layout = audio_layout(audio.astype(np.float32), sr)
    frames = np.arange(layout.n_frames) / layout.frame_rate
    inside = (frames >= 1.1) & (frames < 1.8)
    # A 6 kHz tone fills one or two of the ~13 mel bands pooled into the top layout band.
    assert layout.values[inside, -1].mean() > layout.values[~inside, -1].mean() + 0.1
    assert layout.values[inside, -1].mean() > layout.values[inside, 0].mean()


def test_layout_resize_is_differentiable_and_rejects_bad_settings():
    mel = torch.randn(2, 64, 100, requires_grad=True)
    out = normalize_and_resize(mel, 10, 5)
    assert out.shape == (2, 10, 5)
    out.sum().backward()
    assert mel.grad is not None and torch.isfinite(mel.grad).all()
    with pytest.raises(FoleyError):
        audio_layout(np.zeros(16000, dtype=np.float32), 16000, bands=0)


def test_plots_have_the_requested_size():
    env = flat()
    frames = torch.rand(6, 32, 48, 3)
    assert envelope_plot(env, frames=frames).size == (768, 192)
    assert envelope_plot(env, mel=torch.randn(80, 50), original=flat(value=0.2)).size == (768, 192)
    assert envelope_plot(env).size == (768, 192)
    assert layout_heatmap(Layout(np.random.rand(41, 5).astype(np.float32), 10.2)).size == (768, 120)


# --- the sampler hook and guidance ------------------------------------------------------------

@pytest.fixture(scope="module")
def net():
    return tiny_network()


@pytest.fixture(scope="module")
def vae():
    from foley_core.models.vae import MelVAE, VAEConfig

    torch.manual_seed(3)
    return MelVAE(VAEConfig(n_mels=80, embed_dim=LATENT_DIM, hidden_dim=8)).eval()


def _run(net, features, hook=None, steps=4, seed=5):
    lengths = sequence_lengths(features.duration_s, MODE)
    net.update_seq_lengths(lengths.latent, lengths.clip, lengths.sync)
    x0 = draw_noise(2, lengths.latent, LATENT_DIM, seed)
    return generate_latents(net, x0, features.clip_f, features.sync_f, features.text_f, steps=steps,
                            cfg_strength=4.5, normalized=True, velocity_hook=hook)


def test_identity_hook_and_zero_strength_are_bitwise_plain_sampling(net, vae):
    features = random_features(2.0)
    plain = _run(net, features)
    assert torch.equal(_run(net, features, hook=lambda k, t, x, v: v), plain)
    off = ControlGuidance(vae, net, envelope=flat(), strength=0.0, steps=4)
    assert torch.equal(_run(net, features, hook=off), plain)
    latents, _ = generate(net, features, MODE, GenerationSettings(seed=2, steps=3), device=CPU)
    again, _ = generate(net, features, MODE, GenerationSettings(seed=2, steps=3), device=CPU, velocity_hook=None)
    assert torch.equal(latents, again)


def test_hook_sees_every_step_in_order(net):
    seen = []

    def hook(k, t, x, v):
        seen.append((k, float(t)))
        return v

    _run(net, random_features(2.0), hook=hook, steps=4)
    assert [k for k, _ in seen] == [0, 1, 2, 3]
    assert [t for _, t in seen] == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_guided_steps_are_fractions_of_the_schedule():
    assert list(guided_steps(25, 0.0, 1.0)) == list(range(25))
    assert list(guided_steps(10, 0.2, 0.5)) == [2, 3, 4]
    assert list(guided_steps(10, 0.5, 0.5)) == []
    with pytest.raises(FoleyError):
        guided_steps(10, -0.1, 0.5)


def _target_envelope(duration_s):
    n = int(np.ceil(duration_s * 125))
    values = np.full(n, 0.05, dtype=np.float32)
    values[int(0.3 * n):int(0.5 * n)] = 1.0  # one loud event
    return Envelope(values=values, frame_rate=125.0)


@pytest.mark.parametrize("gradient", ["detached", "network"])
def test_envelope_guidance_lowers_the_envelope_distance(net, vae, gradient):
    features = random_features(2.0)
    target = _target_envelope(2.0)
    probe = ControlGuidance(vae, net, envelope=target, steps=6)
    plain = probe.loss(_run(net, features, steps=6)).mean().detach()
    hook = ControlGuidance(vae, net, envelope=target, strength=0.35, start=0.0, end=1.0, steps=6, gradient=gradient)
    guided = probe.loss(_run(net, features, hook=hook, steps=6)).mean().detach()
    assert hook.report.steps == list(range(6))
    assert guided.item() < 0.7 * plain.item(), (plain.item(), guided.item())


@pytest.mark.parametrize("gradient", ["detached", "network"])
def test_one_layout_guided_step_moves_the_estimate_downhill(net, vae, gradient):
    """First-order check at one step: x̂₁ from the steered velocity is closer to the target."""
    features = random_features(2.0)
    values = np.zeros((layout_frames(2.0), 5), dtype=np.float32)
    values[5:10, 3:] = 1.0
    hook = ControlGuidance(vae, net, layout=Layout(values, 10.2), strength=0.001, end=1.0, steps=4, gradient=gradient)
    seen = {}

    def spy(k, t, x, v):
        if k == 2:
            seen["before"] = hook.loss(x + (1 - t) * v).detach()
            v = hook(k, t, x, v)
            seen["after"] = hook.loss(x + (1 - t) * v).detach()
        return v

    spy.bind = hook.bind  # the sampler hands its velocity to the hook through the spy
    _run(net, features, hook=spy, steps=4)
    assert (seen["after"] < seen["before"]).all(), seen


def test_guidance_needs_a_target(net, vae):
    with pytest.raises(FoleyError):
        ControlGuidance(vae, net, steps=4)


def test_long_generation_re_aims_the_hook_at_each_window(net, vae):
    features = random_features(12.0)
    hook = ControlGuidance(vae, net, envelope=_target_envelope(12.0), strength=1.0, end=1.0, steps=2)
    calls = []
    original = hook.for_window

    def spy(prompt, start_s):
        calls.append((prompt, round(start_s, 3)))
        return original(prompt, start_s)

    hook.for_window = spy
    latents, plan = generate_long(net, features, MODE, GenerationSettings(seed=1, steps=2), device=CPU,
                                  velocity_hook=hook)
    assert len(calls) == len(plan.windows) > 1
    rate = plan.sample_rate / plan.hop / 2
    assert calls == [(w.prompt, round(w.start / rate, 3)) for w in plan.windows]
    assert torch.isfinite(latents).all()


def test_guidance_works_under_inference_mode_like_a_host():
    """ComfyUI runs nodes (model loading included) under torch.inference_mode()."""
    from foley_core.models.vae import MelVAE, VAEConfig

    with torch.inference_mode():
        net = tiny_network()
        vae = MelVAE(VAEConfig(n_mels=80, embed_dim=LATENT_DIM, hidden_dim=8)).eval()
        hook = ControlGuidance(vae, net, envelope=_target_envelope(2.0), strength=0.35, end=1.0, steps=4)
        out = _run(net, random_features(2.0), hook=hook, steps=4)
    assert torch.isfinite(out).all() and hook.report.steps == [0, 1, 2, 3]
    assert hook.report.losses[-1] < hook.report.losses[0]


def test_distance_and_band_weighting_options(net, vae):
    features = random_features(2.0)
    target = _target_envelope(2.0)
    for options in ({"distance": "l1"}, {"band_weighting": True}):
        hook = ControlGuidance(vae, net, envelope=target, strength=0.35, end=1.0, steps=4, **options)
        _run(net, features, hook=hook, steps=4)
        assert hook.report.losses[-1] < hook.report.losses[0], options
    with pytest.raises(FoleyError):
        ControlGuidance(vae, net, envelope=target, steps=4, distance="l3")


def test_guidance_iterations_re_take_the_gradient_at_the_moved_estimate(net, vae):
    """K iterations = K moves of 1/K of the step, each with the gradient at the moved estimate;
    K = 1 is the single move v − s·STEP/(1 − t)·g/rms(g)."""
    from foley_core.controls.guidance import STEP

    target = _target_envelope(2.0)
    lengths = sequence_lengths(2.0, MODE)
    x = torch.randn(1, lengths.latent, LATENT_DIM, generator=torch.Generator().manual_seed(3))
    v = torch.randn(1, lengths.latent, LATENT_DIM, generator=torch.Generator().manual_seed(4))
    t = torch.tensor(0.4)
    for k in (1, 3):
        hook = ControlGuidance(vae, net, envelope=target, strength=0.5, end=1.0, steps=4, iterations=k)
        steered = hook(0, t, x, v)
        expected = v.clone()
        for _ in range(k):
            grad, _ = hook.gradient_at(t, x, expected, "detached")
            rms = grad.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()
            expected = expected - 0.5 * STEP / k / (1 - 0.4) * grad / rms
        assert torch.allclose(steered, expected, atol=1e-5), k
        assert hook.report.steps == [0] and len(hook.report.losses) == 1
    with pytest.raises(FoleyError, match="iterations"):
        ControlGuidance(vae, net, envelope=target, steps=4, iterations=0)
