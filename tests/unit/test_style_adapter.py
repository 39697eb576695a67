"""The global style path: adapter maths, injection into the backbone, files, training, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from foley_core.errors import CheckpointError, FoleyError
from foley_core.models.mmaudio import MMAudioNetwork, NetworkConfig, sequence_lengths
from foley_core.models.style_adapter import (KIND, StyledNetwork, StyleAdapter, StyleAdapterConfig, apply_style,
                                             check_backbone, load_adapter, save_adapter, style_vector)
from foley_core.sampling.flow import draw_noise, generate_latents
from foley_core.style import ReferenceStyle
from foley_core.training import ShardWriter, draw_step_noise, step_generator
from foley_core.training.adapter import (REFERENCES_NAME, AdapterObjective, AdapterTrainConfig, export_adapter,
                                         train_adapter)

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


def adapter_for(net, **dims) -> StyleAdapter:
    dims = dims or {"acoustic_dim": DIMS["latent"]}
    return StyleAdapter(StyleAdapterConfig(width=net.config.hidden_dim, hidden_dim=16,
                                           backbone={"file": "tiny.safetensors"}, **dims))


def reference(acoustic=None, timbre=None, tempo=None) -> ReferenceStyle:
    g = torch.Generator().manual_seed(3)
    prompt = torch.randn(1, 4, DIMS["latent"], generator=g)
    return ReferenceStyle(prompt_latent=prompt, acoustic_vector=prompt.mean(1) if acoustic is None else acoustic,
                          prompt_seconds=0.25, mode=MODE, source_sample_rate=16000, offset_s=0.0,
                          timbre_embedding=timbre, tempo_embedding=tempo)


def conditions_inputs(batch: int = 2):
    g = torch.Generator().manual_seed(5)
    return (torch.randn(batch, SEQ.clip, DIMS["clip"], generator=g),
            torch.randn(batch, SEQ.sync, DIMS["sync"], generator=g),
            torch.randn(batch, SEQ.text, DIMS["text"], generator=g))


def sample(net, cfg: float):
    x0 = draw_noise(2, SEQ.latent, DIMS["latent"], seed=7)
    return generate_latents(net, x0, *conditions_inputs(), steps=4, cfg_strength=cfg)


# ----------------------------------------------------------------------------- injection
@pytest.mark.parametrize("cfg", [4.5, 0.0])
def test_zero_initialised_adapter_is_bitwise_the_backbone(cfg):
    net = tiny_network()
    adapter = adapter_for(net)
    styled = apply_style(net, adapter, reference())
    assert isinstance(styled, StyledNetwork)
    assert torch.count_nonzero(styled.extra_global) == 0
    assert torch.equal(sample(styled, cfg), sample(net, cfg))


def test_trained_adapter_changes_only_the_conditional_branch():
    net = tiny_network()
    adapter = adapter_for(net)
    torch.nn.init.normal_(adapter.out.weight, std=0.5)
    styled = apply_style(net, adapter, reference())
    assert not torch.equal(sample(styled, 4.5), sample(net, 4.5))
    # The unconditional branch carries no style; CFG's joint batch gets exact zeros there.
    assert styled.empty_conditions(2).extra_global is None
    cond = styled.preprocess_conditions(*conditions_inputs())
    joint = type(cond).concat([cond, styled.empty_conditions(2)])
    assert torch.equal(joint.extra_global[2:], torch.zeros_like(joint.extra_global[2:]))
    assert torch.equal(joint.extra_global[:2], cond.extra_global)


def test_extra_global_is_added_to_global_c():
    net = tiny_network()
    cond = net.preprocess_conditions(*conditions_inputs())
    extra = torch.randn(1, net.config.hidden_dim)
    t = torch.tensor([0.3, 0.6])
    plain, _ = net.modulation_signals(t, cond)
    shifted, extended = net.modulation_signals(t, cond.with_extra_global(extra))
    torch.testing.assert_close(shifted, plain + extra.unsqueeze(1))
    torch.testing.assert_close(extended, shifted + cond.sync_f)
    # The network's own weights (the official key layout) are untouched.
    assert not any("adapter" in k or "style" in k for k in net.state_dict())


def test_keep_mask_gives_exact_zeros():
    net = tiny_network()
    adapter = adapter_for(net)
    torch.nn.init.normal_(adapter.out.weight)
    out = adapter(keep=torch.tensor([True, False]), acoustic=torch.randn(2, DIMS["latent"]))
    assert torch.count_nonzero(out[1]) == 0 and torch.count_nonzero(out[0]) > 0


# ------------------------------------------------------------------------------ messages
def test_missing_reference_part_is_reported():
    net = tiny_network()
    adapter = adapter_for(net, acoustic_dim=DIMS["latent"], timbre_dim=12)
    with pytest.raises(FoleyError, match="timbre"):
        style_vector(adapter, reference())
    with pytest.raises(FoleyError, match="12-d timbre"):
        style_vector(adapter, reference(timbre=torch.zeros(1, 5)))
    assert style_vector(adapter, reference(timbre=torch.zeros(1, 12))).shape == (1, 32)


def test_adapter_without_reference_is_an_error():
    net = tiny_network()
    with pytest.raises(FoleyError, match="needs a reference"):
        apply_style(net, adapter_for(net), None)


def test_backbone_width_mismatch_names_the_file():
    net = tiny_network()
    adapter = StyleAdapter(StyleAdapterConfig(width=64, acoustic_dim=DIMS["latent"],
                                              backbone={"file": "other_net.safetensors"}))
    with pytest.raises(CheckpointError, match=r"my_adapter\.safetensors.*width 64.*width 32.*other_net"):
        check_backbone(adapter, net, "my_adapter.safetensors")


# --------------------------------------------------------------------------------- files
def test_export_load_round_trip(tmp_path):
    net = tiny_network()
    adapter = adapter_for(net, acoustic_dim=DIMS["latent"], tempo_dim=6)
    torch.nn.init.normal_(adapter.out.weight)
    adapter.set_input_statistics("acoustic", torch.randn(10, DIMS["latent"]))
    path = save_adapter(adapter, tmp_path / "a.safetensors", {"stage": 2})
    loaded, meta = load_adapter(path)
    assert meta["training"] == {"stage": 2} and meta["config"]["tempo_dim"] == 6
    for key, value in adapter.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    style = reference(tempo=torch.randn(1, 6))
    assert torch.equal(style_vector(loaded, style), style_vector(adapter, style))


def test_wrong_files_are_refused(tmp_path):
    net = tiny_network()
    network_file = tmp_path / "net.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(network_file))
    with pytest.raises(CheckpointError, match=r"net\.safetensors is not a Foley style adapter"):
        load_adapter(network_file)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_adapter(tmp_path / "missing.safetensors")
    pickle = tmp_path / "adapter.pt"
    torch.save({"w": torch.zeros(1)}, pickle)
    with pytest.raises(CheckpointError, match="not a .safetensors"):
        load_adapter(pickle)
    # Weights that do not fit the recorded config.
    adapter = adapter_for(net)
    state = {k: v.contiguous() for k, v in adapter.state_dict().items()}
    state["out.weight"] = torch.zeros(5, 16)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata={"kind": KIND, "config": json.dumps(adapter.config.to_dict())})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors.*out\.weight"):
        load_adapter(bad)


# ------------------------------------------------------------------------------ training
def write_toy_set(root: Path, n_clips: int = 8) -> Path:
    """Each clip's latent is a fixed per-clip pattern; its references are noisy copies of it, so a
    reference tells the adapter what the clip sounds like (what the text would otherwise)."""
    g = torch.Generator().manual_seed(0)
    out = root / "features"
    writer = ShardWriter(out, 3, {"mode": MODE, "duration_s": DURATION, "encoders": {},
                                  "seq": {"latent": SEQ.latent, "clip": SEQ.clip, "sync": SEQ.sync,
                                          "text": SEQ.text}})
    writer.write_empty_text(torch.zeros(SEQ.text, DIMS["text"]))
    refs = []
    for i in range(n_clips):
        pattern = 2 * torch.randn(DIMS["latent"], generator=g)
        writer.add(f"clip{i}.mp4", "", f"/videos/clip{i}.mp4", {
            "clip_f": torch.randn(SEQ.clip, DIMS["clip"], generator=g),
            "sync_f": torch.randn(SEQ.sync, DIMS["sync"], generator=g),
            "text_f": torch.zeros(SEQ.text, DIMS["text"]),
            "latent_mean": pattern + 0.1 * torch.randn(SEQ.latent, DIMS["latent"], generator=g),
            "latent_std": torch.full((SEQ.latent, DIMS["latent"]), 0.05)})
        refs.append(pattern + 0.05 * torch.randn(3, DIMS["latent"], generator=g))
    writer.close()
    stacked = torch.stack(refs)
    valid = torch.ones(n_clips, 3, dtype=torch.bool)
    valid[0, 1:] = False  # clip 0 has only one stage-2 segment
    meta = {"segment_s": 0.5, "per_stage": 3, "parts": ["acoustic"], "dims": {"acoustic": DIMS["latent"]},
            "clips": [f"clip{i}.mp4" for i in range(n_clips)]}
    save_file({"stage1.valid": torch.ones(n_clips, 3, dtype=torch.bool), "stage1.acoustic": stacked,
               "stage1.offset_s": torch.zeros(n_clips, 3), "stage2.valid": valid, "stage2.acoustic": stacked.flip(1),
               "stage2.offset_s": torch.zeros(n_clips, 3)},
              str(out / REFERENCES_NAME), metadata={"references": json.dumps(meta)})
    return out


def toy_backbone(root: Path) -> Path:
    path = root / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_network(1).state_dict().items()}, str(path),
              metadata={"duration_s": repr(DURATION)})
    return path


def objective_loss(objective: AdapterObjective, features: Path) -> float:
    from torch.utils.data import default_collate

    from foley_core.training import ShardDataset
    from foley_core.training.adapter import load_references

    dataset = ShardDataset(features)
    tensors, _ = load_references(features)
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    n = len(dataset)
    losses = []
    with torch.no_grad():
        for k in range(6):
            noise = draw_step_noise(step_generator(99, k, 0), n, SEQ.latent, DIMS["latent"], 0.0, 1.0)
            losses.append(objective(batch["latent_mean"], batch["latent_std"], batch["clip_f"], batch["sync_f"],
                                    batch["text_f"], noise, torch.ones(n, dtype=torch.bool),
                                    torch.ones(n, dtype=torch.bool), acoustic=tensors["stage1.acoustic"][:, 0]).item())
    return sum(losses) / len(losses)


def test_adapter_training_lowers_the_loss_and_exports(tmp_path):
    features = write_toy_set(tmp_path)
    backbone = toy_backbone(tmp_path)
    config = AdapterTrainConfig(backbone=str(backbone), stage=1, hidden_dim=32, batch_size=4, lr=1e-2,
                                steps=30, warmup_steps=2, lr_schedule="constant", text_dropout=1.0,
                                clip_dropout=1.0, ema_decay=0.5, checkpoint_every=10, log_every=5)
    summary = train_adapter(features, config, tmp_path / "run", device="cpu")
    assert summary["step"] == 30
    out = export_adapter(tmp_path / "run", tmp_path / "adapter.safetensors")
    trained, meta = load_adapter(out)
    assert meta["training"]["stage"] == 1 and meta["config"]["backbone"]["file"] == "backbone.safetensors"
    net = tiny_network(1)
    before = objective_loss(AdapterObjective(net, adapter_for(net, acoustic_dim=DIMS["latent"])), features)
    after = objective_loss(AdapterObjective(net, trained), features)
    assert after < 0.9 * before, (before, after)

    # Stage 2 continues from the stage-1 export; resuming an interrupted run is exact.
    stage2 = AdapterTrainConfig(**{**config.to_dict(), "stage": 2, "init_adapter": str(out), "steps": 8,
                                   "checkpoint_every": 4})
    train_adapter(features, stage2, tmp_path / "full", device="cpu")
    train_adapter(features, stage2, tmp_path / "split", stop_at=4, device="cpu")
    train_adapter(features, None, tmp_path / "split", resume=True, device="cpu")
    full = json.loads((tmp_path / "full" / "final.json").read_text())
    split = json.loads((tmp_path / "split" / "final.json").read_text())
    assert full["rank_digests"] == split["rank_digests"]


def test_adapter_config_checks():
    with pytest.raises(ValueError, match="backbone"):
        AdapterTrainConfig()
    with pytest.raises(ValueError, match="stage"):
        AdapterTrainConfig(backbone="x", stage=3)
    with pytest.raises(ValueError, match="parts"):
        AdapterTrainConfig(backbone="x", parts=["colour"])


def test_reference_extraction_stages(tmp_path):
    """Stage 1 segments lie inside the target, stage 2 after it (only where the recording is longer);
    each acoustic vector is what Foley Style Encode computes for that segment."""
    import numpy as np

    from foley_core.media.audio import decode_audio_stream
    from foley_core.models.vae import MelVAE, VAEConfig
    from foley_core.style import encode_reference
    from foley_core.synthetic_foley.dataset import write_wav
    from foley_core.training.adapter import extract_references, load_references

    torch.manual_seed(0)
    vae = MelVAE(VAEConfig(n_mels=80, embed_dim=DIMS["latent"], hidden_dim=8)).eval()
    rng = np.random.default_rng(0)
    clips, sources = tmp_path / "clips", tmp_path / "sources"
    clips.mkdir()
    sources.mkdir()
    writer = ShardWriter(tmp_path / "features", 4, {"mode": MODE, "duration_s": DURATION, "encoders": {}})
    for i in range(2):
        audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
        write_wav(clips / f"c{i}.wav", audio, 16000)
        if i == 0:  # only clip 0 has a longer recording: [its 1 s | 1.5 s more]
            write_wav(sources / "c0.wav", np.concatenate([audio, 0.3 * audio, 0.3 * audio[:8000]]), 16000)
        writer.add(f"c{i}.mp4", "", str(clips / f"c{i}.wav"), {
            "clip_f": torch.zeros(SEQ.clip, DIMS["clip"]), "sync_f": torch.zeros(SEQ.sync, DIMS["sync"]),
            "text_f": torch.zeros(SEQ.text, DIMS["text"]), "latent_mean": torch.zeros(SEQ.latent, DIMS["latent"]),
            "latent_std": torch.ones(SEQ.latent, DIMS["latent"])})
    writer.close()
    meta = extract_references(tmp_path / "features", vae, segment_s=0.5, per_stage=2, sources_dir=sources,
                              report=lambda _: None)
    assert meta["parts"] == ["acoustic"] and meta["stage2_clips"] == 1
    tensors, _ = load_references(tmp_path / "features")
    assert tensors["stage1.valid"].all()
    assert tensors["stage2.valid"].tolist() == [[True, True], [False, False]]
    assert ((tensors["stage1.offset_s"] >= 0) & (tensors["stage1.offset_s"] <= 0.5)).all()
    assert (tensors["stage2.offset_s"][0] >= 1.0).all()
    wave, rate = decode_audio_stream(sources / "c0.wav")
    offset = float(tensors["stage2.offset_s"][0, 1])
    expected = encode_reference(vae, wave, rate, MODE, offset_s=offset, prompt_s=0.5).acoustic_vector[0]
    torch.testing.assert_close(tensors["stage2.acoustic"][0, 1], expected)


def test_strength_scales_the_style_vector():
    net = tiny_network()
    adapter = adapter_for(net)
    torch.nn.init.normal_(adapter.out.weight)
    one = apply_style(net, adapter, reference()).extra_global
    torch.testing.assert_close(apply_style(net, adapter, reference(), strength=2.5).extra_global, 2.5 * one)
    with pytest.raises(FoleyError, match="strength"):
        apply_style(net, adapter, reference(), strength=-1.0)
