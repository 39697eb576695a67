"""TiVA's joint stage (training/layout_joint.py): predictor + layout adapter on the frozen backbone —
a tiny run end to end, exact resume, clip matching, gradients reaching the predictor through the
adapter, the token map equal to the sampler's, and the exported pair read by the existing loaders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.controls.layout import Layout, layout_frames
from foley_core.controls.layout_adapter import layout_tokens, load_layout_adapter, save_layout_adapter
from foley_core.errors import FoleyError
from foley_core.models.layout_predictor import LayoutPredictor, LayoutPredictorConfig, load_predictor, save_predictor
from foley_core.training import draw_step_noise, step_generator
from foley_core.training.layout_joint import (LayoutJointConfig, build_objective, export_joint, load_joint_data,
                                              token_matrix, train_joint)
from foley_core.training.layout_predictor_trainer import FEATURES_NAME
from foley_core.training.layout_predictor_trainer import main as cli
from test_layout_adapter import DURATION, RATE, SEQ, adapter_for, tiny_network
from test_layout_adapter_training import backbone_file, write_features

SIGNATURE = {"blocks": 1, "width": 8, "patch_size": 4, "tokens": 17, "probe": [0.1, -0.2, 0.3]}
N_FRAMES, N_LAYOUT, FEAT = 8, layout_frames(DURATION), 16  # 1 s at 8 fps; 10.2 layout frames/s; 2 layers × 8


def write_predictor_features(root, names, seed: int = 0):
    """Predictor features whose CLS carries the clip's layout (band 0) so there is something to learn."""
    g = torch.Generator().manual_seed(seed)
    layouts, cls = [], []
    for i, _ in enumerate(names):
        t = np.arange(N_LAYOUT) / 10.2
        lay = np.where((t >= 0.1 * i) & (t < 0.1 * i + 0.3), 0.9, 0.1)[:, None] * np.ones((1, 5))
        layouts.append(torch.from_numpy(lay.astype(np.float32)))
        level = torch.from_numpy(np.interp(np.arange(N_FRAMES) / 8.0, (np.arange(N_LAYOUT) + 0.5) / 10.2, lay[:, 0]))
        cls.append(level.float()[:, None] * torch.ones(N_FRAMES, FEAT) + 0.1 * torch.randn(N_FRAMES, FEAT, generator=g))
    meta = {"duration_s": DURATION, "frame_rate": 8.0, "layout_rate": 10.2, "bands": 5, "layers": [0, 1], "grid": 3,
            "clip_file": "tiny_clip.safetensors", "clip_signature": SIGNATURE, "clip_width": 8,
            "feature_version": LayoutPredictorConfig().feature_version, "clips": list(names),
            "seeds": list(range(100, 100 + len(names))), "skipped": [], "source": "test"}
    root.mkdir(parents=True, exist_ok=True)
    save_file({"cls": torch.stack(cls).half(), "patches": torch.randn(len(names), N_FRAMES, 9, FEAT, generator=g).half(),
               "layouts": torch.stack(layouts)}, str(root / FEATURES_NAME),
              metadata={"layout_predictor_features": json.dumps(meta)})


def write_pair(tmp_path, net):
    """An 'L2-stage' predictor file and a trained-looking adapter file (the joint stage's inputs)."""
    torch.manual_seed(3)
    predictor = LayoutPredictor(LayoutPredictorConfig(
        clip_file="tiny_clip.safetensors", clip_signature=SIGNATURE, layers=(0, 1), clip_width=8, grid=3,
        width=16, heads=2, decoder_blocks=1, dropout=0.0, context_s=DURATION))
    from foley_core.training.layout_predictor_trainer import load_features

    cls, patches, layouts, _ = load_features(tmp_path / "pf")
    predictor.set_statistics(cls, patches, layouts)
    p = save_predictor(predictor, tmp_path / "predictor_l2.safetensors",
                       {"stage": "L2 (TiVA Eq. 8)", "step": 5, "train_clips": 6, "features": {"seeds": list(range(100, 108))}})
    adapter = adapter_for(net, trained_seed=6)
    adapter.config.backbone = {"file": "backbone.safetensors", "mode": "16k"}
    a = save_layout_adapter(adapter, tmp_path / "adapter.safetensors", {"step": 7})
    return p, a


@pytest.fixture()
def setup(tmp_path):
    write_features(tmp_path / "ff", n=8)
    write_predictor_features(tmp_path / "pf", [f"clip_{i}.wav" for i in range(8)])
    backbone = backbone_file(tmp_path)
    predictor, adapter = write_pair(tmp_path, tiny_network())
    config = LayoutJointConfig(backbone=str(backbone), predictor=str(predictor), adapter=str(adapter), batch_size=3,
                               steps=12, lr=3e-3, warmup_steps=1, log_every=2, checkpoint_every=4, holdout=2,
                               eval_draws=2)
    return tmp_path, config


def test_token_matrix_is_the_samplers_layout_tokens():
    rng = np.random.default_rng(0)
    values = rng.random((N_LAYOUT, 5)).astype(np.float32)
    span = token_matrix(N_LAYOUT, 10.2, SEQ.latent, RATE)
    expected, _ = layout_tokens(Layout(values, 10.2), SEQ.latent, RATE)
    np.testing.assert_allclose((span @ torch.from_numpy(values)).numpy(), expected[:, :5], atol=1e-6)


def test_runs_resumes_exactly_validates_and_exports_a_loadable_pair(setup):
    tmp_path, config = setup
    straight = train_joint(tmp_path / "ff", tmp_path / "pf", config, tmp_path / "run", device="cpu",
                           report=lambda _: None)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert straight["step"] == 12 and len(log) == 6 and all(np.isfinite(e["loss"]) for e in log)
    validation = json.loads((tmp_path / "run" / "validation.json").read_text())
    assert validation["names"] == ["clip_6.wav", "clip_7.wav"] and validation["train_clips"] == 6
    assert validation["heldout_clips_in_predictor_training"] == 0  # seeds 106, 107: not among the first 6
    for label in ("initial", "raw", "ema"):
        assert all(np.isfinite(validation[label][k]) for k in ("layout_l2", "flow_predicted", "flow_true_layout"))
    # The flow loss without the adapter term does not depend on the trained weights (same fixed draws).
    assert validation["initial"]["flow_no_adapter"] == validation["raw"]["flow_no_adapter"]
    assert validation["initial"]["flow_predicted"] != validation["raw"]["flow_predicted"]

    train_joint(tmp_path / "ff", tmp_path / "pf", config, tmp_path / "split", device="cpu", stop_at=4,
                report=lambda _: None)
    resumed = train_joint(tmp_path / "ff", tmp_path / "pf", None, tmp_path / "split", resume=True, device="cpu",
                          report=lambda _: None)
    assert resumed["rank_digests"] == straight["rank_digests"], "a resumed run must end bit-identical"

    p_out, a_out = export_joint(tmp_path / "run", tmp_path / "p.safetensors", tmp_path / "a.safetensors")
    predictor, p_info = load_predictor(p_out)
    adapter, a_info = load_layout_adapter(a_out)
    assert p_info["training"]["stage"].startswith("joint") and a_info["training"]["stage"].startswith("joint")
    assert p_info["training"]["pair_id"] == a_info["training"]["pair_id"]
    assert p_info["training"]["adapter_file"] == "a.safetensors" and a_info["training"]["predictor_file"] == "p.safetensors"
    assert p_info["training"]["l2_stage"].startswith("L2") and a_info["config"]["backbone"]["file"] == "backbone.safetensors"
    initial, _ = load_predictor(config.predictor)
    changed = [k for k, v in initial.state_dict().items() if not torch.equal(v, predictor.state_dict()[k])]
    assert "head.weight" in changed and "cls_in.weight" in changed, "the joint stage trained the predictor"
    assert all(not k.endswith(("_mean", "_std")) for k in changed), "input statistics stay the L2 stage's"


def test_the_flow_loss_alone_reaches_the_predictor_through_the_adapter(setup):
    tmp_path, config = setup
    predictor, _ = load_predictor(config.predictor)
    adapter, _ = load_layout_adapter(config.adapter)
    data = load_joint_data(tmp_path / "ff", tmp_path / "pf", config.backbone, predictor.config, adapter.config)
    objective = build_objective(data, predictor.train(), adapter.train(), l2_weight=0.0, train_adapter=False)
    items = [data.dataset[i] for i in range(3)]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("latent_mean", "latent_std", "clip_f", "sync_f", "text_f")}
    noise = draw_step_noise(step_generator(0, 0, 0), 3, SEQ.latent, 8, 0.0, 0.0)
    yes, no = torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)
    args = (data.cls[:3], data.patches[:3], data.layouts[:3], *batch.values(), noise)
    objective(*args, yes, no).backward()
    assert predictor.head.weight.grad is not None and predictor.head.weight.grad.abs().sum() > 0
    assert predictor.cls_in.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in adapter.parameters()), "train_adapter false keeps the adapter frozen"
    predictor.zero_grad()
    objective(*args, ~yes, no).backward()  # layout dropped: the flow loss no longer sees the predictor
    assert predictor.head.weight.grad.abs().sum() == 0


def test_clips_without_predictor_features_are_refused_by_name(setup):
    tmp_path, config = setup
    write_predictor_features(tmp_path / "pf_other", [f"clip_{i}.wav" for i in range(5)] + ["x.mp4", "y.mp4"])
    with pytest.raises(FoleyError, match=r"3 of the 8 clips .* clip_5.wav.*layout-predictor extract --clips"):
        train_joint(tmp_path / "ff", tmp_path / "pf_other", config, tmp_path / "bad", device="cpu")
    assert not (tmp_path / "bad" / "checkpoint.pt").exists()


def test_cli_train_eval_export(setup, capsys):
    tmp_path, config = setup
    common = ["--features", str(tmp_path / "ff"), "--predictor-features", str(tmp_path / "pf")]
    cli(["joint", *common, "--predictor", config.predictor, "--adapter", config.adapter, "--backbone",
         config.backbone, "--out", str(tmp_path / "run"), "--steps", "3", "--batch-size", "3", "--holdout", "2",
         "--eval-draws", "1", "--l2-weight", "0.5", "--train-adapter", "false", "--device", "cpu"])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["l2_weight"] == 0.5 and saved["train_adapter"] is False and saved["steps"] == 3
    cli(["joint-export", "--run", str(tmp_path / "run"), "--predictor-out", str(tmp_path / "p.safetensors"),
         "--adapter-out", str(tmp_path / "a.safetensors")])
    adapter, info = load_layout_adapter(tmp_path / "a.safetensors")
    initial, _ = load_layout_adapter(config.adapter)
    assert info["training"]["train_adapter"] is False
    assert all(torch.equal(v, initial.state_dict()[k]) for k, v in adapter.state_dict().items())
    cli(["joint-eval", *common, "--predictor", str(tmp_path / "p.safetensors"), "--adapter",
         str(tmp_path / "a.safetensors"), "--backbone", config.backbone, "--clips", "2", "--draws", "1",
         "--json", str(tmp_path / "eval.json")])
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["clips"] == 2 and result["predictor_stage"].startswith("joint")
    assert result["names"] == ["clip_6.wav", "clip_7.wav"] and np.isfinite(result["flow_predicted"])


def test_two_processes_keep_predictor_and_adapter_in_step(setup):
    """torchrun (gloo, 2 CPU processes): both ranks end with the same joint weights and EMA."""
    from harness.torchrun import run_torchrun

    tmp_path, config = setup

    run_torchrun(["foley_core.training", "layout-predictor", "joint",
                  "--features", str(tmp_path / "ff"), "--predictor-features", str(tmp_path / "pf"),
                  "--predictor", config.predictor, "--adapter", config.adapter, "--backbone", config.backbone,
                  "--out", str(tmp_path / "ddp"), "--steps", "3", "--batch-size", "2", "--holdout", "2",
                  "--eval-draws", "1", "--device", "cpu"], tmp_path / "ddp")
    final = json.loads((tmp_path / "ddp" / "final.json").read_text())
    assert final["world_size"] == 2 and final["step"] == 3
    assert final["rank_digests"][0] == final["rank_digests"][1], "DDP kept the replicas in step"
    assert (tmp_path / "ddp" / "validation.json").is_file()
