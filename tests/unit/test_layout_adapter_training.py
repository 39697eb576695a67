"""Layout-adapter training on training/driver.py: layouts extraction, the objective's dropouts, a tiny
run whose loss falls, exact resume, export."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.controls.layout import audio_layout
from foley_core.controls.layout_adapter import load_layout_adapter
from foley_core.training.checkpoint import CHECKPOINT_NAME, save_checkpoint
from foley_core.training import FlowMatchingObjective, ShardWriter, draw_step_noise, step_generator
from foley_core.training.layout_adapter import (LAYOUTS_NAME, LayoutAdapterObjective, LayoutAdapterTrainConfig,
                                                export_layout_adapter, extract_layouts, load_layouts,
                                                train_layout_adapter)
from foley_core.training.__main__ import main as training_cli
from foley_core.training.layout_adapter import main as cli
from test_layout_adapter import DIMS, DURATION, MODE, RATE, SEQ, adapter_for, tiny_network


def write_features(root, n: int = 8, sources=None):
    """A tiny feature folder whose latents' level follows band 0 of each clip's layout."""
    writer = ShardWriter(root, 4, {"mode": MODE, "duration_s": DURATION, "sample_rate": 16000,
                                   "seq": {"latent": SEQ.latent, "clip": SEQ.clip, "sync": SEQ.sync,
                                           "text": SEQ.text}, "encoders": {}})
    g = torch.Generator().manual_seed(0)
    layouts = []
    frames = np.arange(10) / 10.2
    for i in range(n):
        lay = np.where((frames >= 0.1 * i) & (frames < 0.1 * i + 0.3), 0.9, 0.1)[:, None] * np.ones((1, 5))
        layouts.append(torch.from_numpy(lay.astype(np.float32)))
        level = torch.from_numpy(np.interp((np.arange(SEQ.latent) + 0.5) / RATE, (np.arange(10) + 0.5) / 10.2,
                                           lay[:, 0])).float()
        writer.add(f"clip_{i}.wav", "", "" if sources is None else str(sources[i]), {
            "clip_f": torch.randn(SEQ.clip, DIMS["clip"], generator=g),
            "sync_f": torch.randn(SEQ.sync, DIMS["sync"], generator=g),
            "text_f": torch.randn(SEQ.text, DIMS["text"], generator=g),
            "latent_mean": 3 * level[:, None] * torch.ones(SEQ.latent, DIMS["latent"]),
            "latent_std": 0.01 * torch.ones(SEQ.latent, DIMS["latent"])})
    writer.close()
    if sources is None:
        save_file({"layout": torch.stack(layouts)}, str(root / LAYOUTS_NAME), metadata={"layouts": json.dumps(
            {"frame_rate": 10.2, "bands": 5, "duration_s": DURATION, "clips": [f"clip_{i}.wav" for i in range(n)]})})


def backbone_file(tmp_path):
    path = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_network().state_dict().items()}, str(path))
    return path


def test_layouts_are_each_clips_own_audio_layout(tmp_path):
    sources = []
    for i in range(2):
        t = np.arange(16000) / 16000
        audio = (0.5 * np.sin(2 * np.pi * (300 + 500 * i) * t) * (t > 0.2 * (i + 1))).astype(np.float32)
        path = tmp_path / f"clip_{i}.wav"
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
            handle.writeframes((audio * 32767).astype(np.int16).tobytes())
        sources.append(path)
    write_features(tmp_path / "features", n=2, sources=sources)
    cli(["layouts", "--features", str(tmp_path / "features"), "--bands", "4"])
    layouts, meta = load_layouts(tmp_path / "features")
    assert layouts.shape == (2, 10, 4) and meta["bands"] == 4 and meta["clips"] == ["clip_0.wav", "clip_1.wav"]
    with wave.open(str(sources[0]), "rb") as handle:  # the file's own 16-bit samples
        samples = np.frombuffer(handle.readframes(16000), np.int16).astype(np.float32) / 32768
    # `extract` fed the VAE the clip cut/padded to whole latents (16384 samples for 1 s at 16k).
    expected = audio_layout(np.pad(samples, (0, SEQ.samples - samples.size)), 16000, bands=4)
    np.testing.assert_allclose(layouts[0].numpy(), expected.values, atol=2e-3)
    assert layouts[0, 0].max() < layouts[0, 5].max()  # silent start, then the tone


def test_objective_dropouts_and_zero_init_give_the_backbone_loss():
    net = tiny_network()
    noise = draw_step_noise(step_generator(0, 0, 0), 2, SEQ.latent, DIMS["latent"], 0.0, 0.0)
    mean = torch.randn(2, SEQ.latent, DIMS["latent"])
    g = torch.Generator().manual_seed(1)
    conds = (torch.randn(2, SEQ.clip, 16, generator=g), torch.randn(2, SEQ.sync, 16, generator=g),
             torch.randn(2, SEQ.text, 16, generator=g))
    inputs = (mean, torch.ones_like(mean) * 0.1, *conds)
    a, b = torch.rand(2, SEQ.latent, 6), torch.rand(2, SEQ.latent, 6)
    yes, no = torch.tensor([True, True]), torch.tensor([False, False])
    plain = FlowMatchingObjective(net)(*inputs, noise)
    assert torch.equal(LayoutAdapterObjective(net, adapter_for(net))(*inputs, noise, a, yes, no), plain)
    trained = LayoutAdapterObjective(net, adapter_for(net, trained_seed=6))
    assert torch.equal(trained(*inputs, noise, a, no, no), trained(*inputs, noise, b, no, no))  # layout dropped
    assert not torch.equal(trained(*inputs, noise, a, yes, no), trained(*inputs, noise, b, yes, no))
    assert torch.equal(trained(*inputs, noise, a, yes, yes), plain)  # CFG's unconditional rows: no term


def test_training_lowers_the_loss_resumes_exactly_and_exports(tmp_path):
    write_features(tmp_path / "features")
    config = LayoutAdapterTrainConfig(backbone=str(backbone_file(tmp_path)), hidden=16, batch_size=4, steps=30,
                                      lr=3e-3, warmup_steps=1, log_every=5, checkpoint_every=10, holdout=0)
    straight = train_layout_adapter(tmp_path / "features", config, tmp_path / "run", device="cpu")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert straight["step"] == 30 and log[-1]["loss"] < 0.9 * log[0]["loss"], log
    # The split run goes through the command line (`python -m foley_core.training ...`) as documented.
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    common = ["--features", str(tmp_path / "features"), "--out", str(tmp_path / "split"), "--device", "cpu"]
    assert training_cli(["train-layout-adapter", *common, "--config", str(tmp_path / "config.json"), "--stop-at", "10"]) == 0
    assert training_cli(["train-layout-adapter", *common, "--resume"]) == 0
    resumed = json.loads((tmp_path / "split" / "final.json").read_text())
    assert resumed["step"] == 30 and resumed["rank_digests"] == straight["rank_digests"], \
        "a resumed run must end bit-identical"
    out = tmp_path / "layout.safetensors"
    assert training_cli(["export-layout-adapter", "--run", str(tmp_path / "run"), "--out", str(out)]) == 0
    adapter, meta = load_layout_adapter(out)
    assert meta["config"]["backbone"]["file"] == "backbone.safetensors" and meta["config"]["bands"] == 5
    assert meta["training"]["step"] == 30 and meta["training"]["layout_dropout"] == 0.1
    assert adapter.proj.weight.abs().max() > 0, "training moved the zero-initialised layer"
    (tmp_path / "other").mkdir()
    save_checkpoint(tmp_path / "other" / CHECKPOINT_NAME, {"kind": "controlnet", "step": 1})
    with pytest.raises(ValueError, match="not a layout-adapter run"):
        export_layout_adapter(tmp_path / "other", tmp_path / "nope.safetensors")


def test_config_checks(tmp_path):
    with pytest.raises(ValueError, match="backbone"):
        LayoutAdapterTrainConfig()
    with pytest.raises(ValueError, match="layout_dropout must be a probability"):
        LayoutAdapterTrainConfig(backbone="x", layout_dropout=1.5)
    with pytest.raises(ValueError, match="unknown layout-adapter config fields"):
        LayoutAdapterTrainConfig.from_dict({"backbone": "x", "envelope_dropout": 0.1})
    write_features(tmp_path / "features", n=4)
    config = LayoutAdapterTrainConfig(backbone=str(backbone_file(tmp_path)), batch_size=4, holdout=2)
    with pytest.raises(Exception, match="2 training clips"):
        train_layout_adapter(tmp_path / "features", config, tmp_path / "run", device="cpu")
