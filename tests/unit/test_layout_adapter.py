"""TiVA layout adapter: zero-init identity, conditional branch only, per-window layout, stacking with
the other add-ons, files and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.controls.controlnet import ControlNetConfig, ControlledNetwork, EnvelopeControlNet
from foley_core.controls.envelope import Envelope
from foley_core.controls.layout import Layout
from foley_core.controls.layout_adapter import (KIND, LayoutAdapter, LayoutAdapterConfig, LayoutAdaptedNetwork,
                                                apply_layout_adapter, layout_tokens, load_layout_adapter,
                                                save_layout_adapter)
from foley_core.errors import CheckpointError, FoleyError
from foley_core.features import VisualFeatures
from foley_core.generation import GenerationSettings
from foley_core.long_generation import generate_long
from foley_core.models.mmaudio import MMAudioNetwork, NetworkConfig, sequence_lengths
from foley_core.models.prompt_channel import PromptChannel, PromptChannelConfig, apply_prompt_channel
from foley_core.sampling.flow import draw_noise, generate_latents
from foley_core.style import ReferenceStyle

MODE, DURATION = "16k", 1.0
SEQ = sequence_lengths(DURATION, MODE)
RATE = 16000 / 256 / 2  # latents per second at 16k
DIMS = {"clip": 16, "sync": 16, "text": 16, "latent": 8}
ARCH = {"latent_dim": DIMS["latent"], "hidden_dim": 32, "depth": 2, "fused_depth": 1, "num_heads": 2,
        "clip_dim": DIMS["clip"], "sync_dim": DIMS["sync"], "text_dim": DIMS["text"], "v2": True}
CPU = torch.device("cpu")


def tiny_network(seed: int = 0, **arch) -> MMAudioNetwork:
    torch.manual_seed(seed)
    net = MMAudioNetwork(NetworkConfig(**{**ARCH, **arch}, mode=MODE, latent_seq_len=SEQ.latent,
                                       clip_seq_len=SEQ.clip, sync_seq_len=SEQ.sync))
    return net.eval().requires_grad_(False)


def adapter_for(net, trained_seed=None, bands: int = 5) -> LayoutAdapter:
    adapter = LayoutAdapter(LayoutAdapterConfig(width=net.config.hidden_dim, latent_dim=net.config.latent_dim,
                                                bands=bands, hidden=16,
                                                backbone={"file": "tiny.safetensors", "mode": MODE}))
    if trained_seed is not None:  # stands for a trained adapter: the zero layer made non-zero
        g = torch.Generator().manual_seed(trained_seed)
        with torch.no_grad():
            adapter.proj.weight.copy_(torch.randn(adapter.proj.weight.shape, generator=g) * 0.5)
    return adapter.eval()


def layout(seconds: float = 4.0, bands: int = 5) -> Layout:
    frames = int(round(seconds * 10.2))
    t = np.arange(frames) / 10.2
    values = np.where(((t % 1.0) < 0.3)[:, None], 0.9, 0.1) * np.linspace(1, 0.5, bands)[None]
    return Layout(values.astype(np.float32), 10.2)


def features(seconds: float) -> VisualFeatures:
    lengths = sequence_lengths(seconds, MODE)
    g = torch.Generator().manual_seed(11)
    return VisualFeatures(clip_f=torch.randn(1, lengths.clip, DIMS["clip"], generator=g),
                          sync_f=torch.randn(1, lengths.sync, DIMS["sync"], generator=g),
                          text_f=torch.randn(1, SEQ.text, DIMS["text"], generator=g), negative_text_f=None,
                          duration_s=seconds)


def sample(net, cfg: float):
    g = torch.Generator().manual_seed(5)
    clip = torch.randn(2, SEQ.clip, DIMS["clip"], generator=g)
    sync = torch.randn(2, SEQ.sync, DIMS["sync"], generator=g)
    text = torch.randn(2, SEQ.text, DIMS["text"], generator=g)
    x0 = draw_noise(2, SEQ.latent, DIMS["latent"], seed=7)
    return generate_latents(net, x0, clip, sync, text, steps=3, cfg_strength=cfg)


@pytest.mark.parametrize("cfg", [0.0, 4.5])
def test_zero_initialised_adapter_is_bitwise_the_backbone(cfg):
    net = tiny_network()
    plain = sample(net, cfg)
    assert torch.equal(plain, sample(apply_layout_adapter(net, adapter_for(net), layout()), cfg))
    # A trained adapter at strength 0 is off, bit for bit; at strength 1 it changes the output.
    trained = adapter_for(net, trained_seed=1)
    assert torch.equal(plain, sample(apply_layout_adapter(net, trained, layout(), strength=0.0), cfg))
    assert not torch.allclose(plain, sample(apply_layout_adapter(net, trained, layout()), cfg))


def test_zero_initialised_add_ons_together_leave_long_generation_unchanged():
    """Layout adapter + ControlNet + prompt channel, all untrained, over several windows with a reference."""
    net = tiny_network()
    reference = ReferenceStyle(prompt_latent=torch.randn(1, 6, DIMS["latent"]), acoustic_vector=torch.zeros(1, 8),
                               prompt_seconds=0.2, mode=MODE, source_sample_rate=16000, offset_s=0.0)
    controlnet = EnvelopeControlNet(ControlNetConfig.for_backbone(net.config, {"mode": MODE}, 1)).eval()
    controlnet.copy_backbone_blocks(net)
    channel = PromptChannel(PromptChannelConfig(width=32, latent_dim=8))
    wrapped = ControlledNetwork(net, controlnet, Envelope(np.ones(500, np.float32), 125.0))
    wrapped = apply_layout_adapter(wrapped, adapter_for(net), layout())
    wrapped = apply_prompt_channel(wrapped, channel, reference)

    def run(network):
        return generate_long(network, features(4.0), MODE, GenerationSettings(seed=2, steps=2, cfg_strength=4.5),
                             window_s=2.0, overlap_s=0.5, reference=reference, device=CPU)

    plain, plan = run(net)
    assert len(plan.windows) > 1
    assert torch.equal(plain, run(wrapped)[0])


def test_term_reaches_only_the_conditional_branch_and_stacks_with_the_prompt_channel():
    net = tiny_network()
    adapter = adapter_for(net)
    with torch.no_grad():
        adapter.proj.bias.fill_(0.2)
    wrapped = apply_layout_adapter(net, adapter, layout())
    cond, uncond = wrapped.preprocess_conditions(None, None, None), wrapped.empty_conditions(1)
    assert uncond.extra_input is None and torch.allclose(cond.extra_input, torch.full_like(cond.extra_input, 0.2))
    joint = type(cond).concat([cond, uncond])
    assert torch.equal(joint.extra_input[1], torch.zeros_like(joint.extra_input[1]))
    channel = PromptChannel(PromptChannelConfig(width=32, latent_dim=8))
    with torch.no_grad():
        channel.proj.bias.fill_(0.3)
    reference = ReferenceStyle(prompt_latent=torch.zeros(1, 4, 8), acoustic_vector=torch.zeros(1, 8),
                               prompt_seconds=0.1, mode=MODE, source_sample_rate=16000, offset_s=0.0)
    both = apply_prompt_channel(wrapped, channel, reference).with_prompt(torch.zeros(1, 4, 8), SEQ.latent)
    assert torch.allclose(both.preprocess_conditions(None, None, None).extra_input,
                          torch.full((1, SEQ.latent, 32), 0.5))


def test_layout_tokens_follow_the_timeline():
    lay = layout(4.0)
    full, mask = layout_tokens(lay, 100, RATE)
    assert full.shape == (100, 6) and mask.all() and np.all(full[:, 5] == 1.0)
    # A continuation window [10 prompt tokens | target from 40 tokens in] sees the same rows.
    window, _ = layout_tokens(lay, 30, RATE, start_s=40 / RATE, prompt_tokens=10)
    np.testing.assert_allclose(window, full[30:60], atol=1e-6)
    # A reference prompt lies before 0 s: no layout there.
    first, mask = layout_tokens(lay, 30, RATE, start_s=0.0, prompt_tokens=6)
    assert not mask[:6].any() and mask[6:].all() and np.all(first[:6] == 0)
    np.testing.assert_allclose(first[6:], full[:24], atol=1e-6)
    # Token values are the layout at the token centres: a step at 2 s shows at 2 s.
    frames = np.arange(41) / 10.2
    step = Layout(np.repeat(np.where(frames < 2.0, 0.1, 0.9)[:, None], 5, axis=1).astype(np.float32), 10.2)
    tokens, _ = layout_tokens(step, 125, RATE)
    centre = (np.arange(125) + 0.5) / RATE
    assert np.allclose(tokens[centre < 1.9, 0], 0.1) and np.allclose(tokens[centre > 2.1, 0], 0.9)


def test_long_generation_aims_the_adapter_at_each_window():
    net = tiny_network()
    seen = []

    class Probe(LayoutAdaptedNetwork):
        def latent_input(self, like):
            seen.append((self.prompt_latents, round(self.start_s, 3)))
            return super().latent_input(like)

    probe = Probe(ControlledNetwork(net, EnvelopeControlNet(ControlNetConfig.for_backbone(net.config, {}, 1)),
                                    Envelope(np.ones(500, np.float32), 125.0)), adapter_for(net, 3), layout())
    latents, plan = generate_long(probe, features(4.0), MODE, GenerationSettings(steps=2, cfg_strength=4.5),
                                  window_s=2.0, overlap_s=0.5, device=CPU)
    assert len(plan.windows) > 1 and torch.isfinite(latents).all()
    assert sorted(set(seen)) == sorted({(w.prompt, round(w.start / RATE, 3)) for w in plan.windows})
    window = probe.for_window(5, 1.0)
    assert (window.prompt_latents, window.start_s, probe.prompt_latents) == (5, 1.0, 0)
    assert (window.network.prompt_latents, window.network.start_s) == (5, 1.0)  # the inner ControlNet too


def test_mismatches_are_clear_errors():
    net = tiny_network()
    with pytest.raises(FoleyError, match="needs a layout.*Foley Layout Predict"):
        apply_layout_adapter(net, adapter_for(net), None)
    with pytest.raises(FoleyError, match="5 bands.*has 3.*bands to 5"):
        apply_layout_adapter(net, adapter_for(net), layout(bands=3))
    with pytest.raises(CheckpointError, match=r"width 32.*width 64.*tiny\.safetensors.*train-layout-adapter"):
        apply_layout_adapter(tiny_network(hidden_dim=64), adapter_for(net), layout())
    assert apply_layout_adapter(net, None, None) is net


def test_file_round_trip_and_wrong_files(tmp_path):
    net = tiny_network()
    adapter = adapter_for(net, trained_seed=2)
    path = save_layout_adapter(adapter, tmp_path / "layout.safetensors", {"steps": 5})
    loaded, meta = load_layout_adapter(path)
    assert meta["training"] == {"steps": 5} and meta["config"]["backbone"]["file"] == "tiny.safetensors"
    assert torch.equal(sample(apply_layout_adapter(net, adapter, layout()), 4.5),
                       sample(apply_layout_adapter(net, loaded, layout()), 4.5))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_layout_adapter(tmp_path / "missing.safetensors")
    (tmp_path / "a.pt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a .safetensors"):
        load_layout_adapter(tmp_path / "a.pt")
    save_file({"w": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"kind": "foley_prompt_channel"})
    with pytest.raises(CheckpointError, match=f"not a Foley layout adapter.*{KIND}"):
        load_layout_adapter(tmp_path / "other.safetensors")
    state = {k: v.clone() for k, v in adapter.state_dict().items()}
    state["proj.weight"] = torch.zeros(3, 3)
    from safetensors import safe_open
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    save_file(state, str(tmp_path / "damaged.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="wrong shapes: proj.weight"):
        load_layout_adapter(tmp_path / "damaged.safetensors")


def test_half_precision_network_uses_a_private_copy():
    half = tiny_network().to(torch.bfloat16)
    adapter = adapter_for(tiny_network(), trained_seed=5)
    out = sample(apply_layout_adapter(half, adapter, layout()), 4.5)
    assert torch.isfinite(out).all() and adapter.proj.weight.dtype == torch.float32


def test_shipped_adapter_fits_the_embedded_network_and_acts():
    import json
    from pathlib import Path

    from foley_core.models import builders

    models = Path(__file__).resolve().parents[2] / "embedded_models"
    manifest = json.loads((models / "manifest.json").read_text())
    adapter, meta = load_layout_adapter(models / manifest["files"]["layout_adapter"])
    assert meta["config"]["backbone"]["file"] == manifest["files"]["network"]
    net = builders.build_network(models / manifest["files"]["network"]).network.eval()
    lengths = sequence_lengths(2.0, MODE)
    net.update_seq_lengths(lengths.latent, lengths.clip, lengths.sync)
    wrapped = apply_layout_adapter(net, adapter, layout(2.0))  # backbone and bands match
    term = wrapped.preprocess_conditions(None, None, None).extra_input
    assert term.shape == (1, lengths.latent, net.config.hidden_dim) and term.abs().mean() > 1e-3
