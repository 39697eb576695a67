"""TiVA layout predictor: CLIP layer features, shapes, files, CLIP mismatch, a short L2 training run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.controls.layout import layout_frames
from foley_core.errors import CheckpointError, FoleyError
from foley_core.models.builders import build_clip
from foley_core.models.clip_encoder import ClipEncoder
from foley_core.models.layout_predictor import (KIND, LayoutPredictor, LayoutPredictorConfig, check_clip,
                                                clip_layer_features, clip_signature, frame_times, load_predictor,
                                                predict_layout, query_times, save_predictor, tiva_layers,
                                                video_layout, window_mask)
from foley_core.synthetic_foley import make_clip, write_clip
from foley_core.training.layout_predictor_trainer import (FEATURES_NAME, LayoutTrainConfig, export_predictor,
                                                          extract_features, load_features, train_predictor)
from foley_core.training.checkpoint import save_checkpoint
from foley_core.training.small_encoders import CLIP_CONFIG, small_clip_state_dict

EMBEDDED_CLIP = Path(__file__).resolve().parents[2] / "embedded_models" / "foley_embedded_clip.safetensors"


@pytest.fixture(scope="module")
def clip():
    return build_clip(EMBEDDED_CLIP)


def _config(clip, **overrides) -> LayoutPredictorConfig:
    return LayoutPredictorConfig(clip_file=EMBEDDED_CLIP.name, clip_signature=clip_signature(clip),
                                 layers=tiva_layers(clip.vision_layers), **overrides)


def test_tiva_layers_keep_the_papers_fractions():
    assert tiva_layers(12) == (4, 8, 11)
    assert tiva_layers(24) == (8, 16, 22)
    assert tiva_layers(32) == (11, 21, 29)
    assert tiva_layers(1) == (0, 1)  # the embedded CLIP: its input embedding and its only block
    with pytest.raises(FoleyError):
        tiva_layers(0)


def test_hidden_states_end_in_the_image_embedding_and_pool_to_a_grid(clip):
    frames = torch.randint(0, 256, (3, 3, 384, 384), dtype=torch.uint8)
    states = clip.encode_image_layers(frames, [0, 1])
    assert states.shape == (3, 2, 1 + 27 * 27, 64)
    visual = clip.model.visual
    pooled = visual.ln_post(states[:, 1, 0]) @ visual.proj  # what encode_image makes of the last layer's CLS
    reference = clip.model.encode_image((frames.float() / 255 - clip.pixel_mean) / clip.pixel_std)
    torch.testing.assert_close(pooled, reference, atol=1e-5, rtol=1e-5)
    cls, patches = clip_layer_features(clip, frames, [0, 1], grid=3)
    assert cls.shape == (3, 128) and patches.shape == (3, 9, 128)
    torch.testing.assert_close(cls[:, 64:], states[:, 1, 0])
    torch.testing.assert_close(patches[:, 0, :64], states[:, 0, 1:].reshape(3, 27, 27, 64)[:, :9, :9].mean((1, 2)))
    with pytest.raises(Exception, match="layers must lie in 0..1"):
        clip.encode_image_layers(frames, [2])


def test_shapes_any_duration_and_window_mask(clip):
    torch.manual_seed(0)
    predictor = LayoutPredictor(_config(clip)).eval()
    cls, patches = torch.randn(2, 32, 128), torch.randn(2, 32, 9, 128)
    out = predictor(cls, patches, frame_times(32, 8.0), query_times(41, 10.2))
    assert out.shape == (2, 41, 5)
    for duration in (2.0, 4.0, 10.0, 9.3):  # longer than the 4 s context: predicted in windows
        frames = int(round(8 * duration))
        layout = predict_layout(predictor, torch.randn(frames, 128), torch.randn(frames, 9, 128), duration)
        assert layout.values.shape == (layout_frames(duration), 5) and layout.frame_rate == 10.2
        assert layout.values.min() >= 0 and layout.values.max() <= 1
    deltas = LayoutPredictor(_config(clip, frame_deltas=True)).eval()
    assert deltas.patch_in.in_features == 256
    out = deltas(cls, patches, frame_times(32, 8.0), query_times(41, 10.2))
    still = deltas(cls[:, :1].expand(-1, 32, -1), patches[:, :1].expand(-1, 32, -1, -1), frame_times(32, 8.0),
                   query_times(41, 10.2))
    assert out.shape == still.shape == (2, 41, 5) and not torch.allclose(out, still)
    mask = window_mask(torch.tensor([0.0, 0.4, 1.0]), torch.tensor([0.0, 0.5, 1.2]), 0.5)
    assert mask.tolist() == [[False, False, True], [False, False, True], [True, False, False]]


def test_config_and_file_round_trip_and_wrong_files(clip, tmp_path):
    config = _config(clip, width=32, heads=2)
    assert LayoutPredictorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown"):
        LayoutPredictorConfig.from_dict({**config.to_dict(), "colour": 1})
    torch.manual_seed(1)
    predictor = LayoutPredictor(config).eval()
    path = save_predictor(predictor, tmp_path / "p.safetensors", {"step": 3})
    loaded, meta = load_predictor(path)
    assert meta["training"] == {"step": 3} and loaded.config == config
    cls, patches = torch.randn(1, 16, 128), torch.randn(1, 16, 9, 128)
    args = (frame_times(16, 8.0), query_times(20, 10.2))
    torch.testing.assert_close(loaded(cls, patches, *args), predictor(cls, patches, *args))
    save_file({"decoder.conv_in.weight": torch.zeros(2)}, str(tmp_path / "vae.safetensors"),
              metadata={"kind": "something_else"})
    with pytest.raises(CheckpointError, match="not a Foley layout predictor"):
        load_predictor(tmp_path / "vae.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_predictor(tmp_path / "missing.safetensors")
    state = {k: v for k, v in predictor.state_dict().items() if k != "head.bias"}
    save_file(state, str(tmp_path / "cut.safetensors"),
              metadata={"kind": KIND, "format_version": "1", "config": json.dumps(config.to_dict())})
    with pytest.raises(CheckpointError, match="do not match its config"):
        load_predictor(tmp_path / "cut.safetensors")


def test_another_clip_is_refused_and_the_same_one_in_fp16_accepted(clip):
    predictor = LayoutPredictor(_config(clip))
    check_clip(predictor, clip)
    check_clip(predictor, ClipEncoder.from_state_dict(small_clip_state_dict(0), CLIP_CONFIG, dtype=torch.float16))
    other = ClipEncoder.from_state_dict(small_clip_state_dict(7), CLIP_CONFIG)
    with pytest.raises(FoleyError, match="trained on CLIP foley_embedded_clip.safetensors.*other weights"):
        video_layout(predictor, other, torch.zeros(8, 3, 384, 384, dtype=torch.uint8), 8.0, 1.0, "CLIP seven")
    wider = dict(CLIP_CONFIG, vision_cfg=dict(CLIP_CONFIG["vision_cfg"], layers=2))
    torch.manual_seed(0)
    from foley_core.models.clip_encoder import build_clip_model

    deeper = ClipEncoder.from_state_dict(build_clip_model(wider).state_dict(), wider)
    with pytest.raises(FoleyError, match="blocks 2 instead of 1"):
        check_clip(predictor, deeper)


def test_extract_train_export_on_synthetic_clips(tmp_path):
    clips = tmp_path / "clips"
    for i in range(6):
        write_clip(clips, f"clip_{i}", make_clip(500 + i, duration_s=2.0, fps=25, sample_rate=16000, size=64))
    meta = extract_features(clips, tmp_path / "features", duration_s=2.0, report=lambda _: None)
    cls, patches, layouts, _ = load_features(tmp_path / "features")
    assert (tmp_path / "features" / FEATURES_NAME).is_file() and meta["layers"] == [0, 1]
    assert cls.shape == (6, 16, 128) and patches.shape == (6, 16, 9, 128) and layouts.shape == (6, 20, 5)
    config = LayoutTrainConfig(steps=60, batch_size=4, val_clips=2, warmup_steps=5, log_every=5,
                               checkpoint_every=30, dropout=0.0, width=32, heads=2)
    summary = train_predictor(tmp_path / "features", config, tmp_path / "run", device="cpu", report=lambda _: None)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert summary["step"] == 60 and len(log) == 12
    assert log[-1]["loss"] < 0.6 * log[0]["loss"]  # L2 on the four training clips falls
    assert np.isfinite(summary["val_l2"]) and summary["val_clips"] == 2
    # Interrupted at step 30 and resumed: the same weights as the uninterrupted run (the driver's contract).
    train_predictor(tmp_path / "features", config, tmp_path / "split", device="cpu", stop_at=30,
                    report=lambda _: None)
    resumed = train_predictor(tmp_path / "features", None, tmp_path / "split", resume=True, device="cpu",
                              report=lambda _: None)
    assert resumed["rank_digests"] == summary["rank_digests"] and resumed["val_l2"] == summary["val_l2"]
    path = export_predictor(tmp_path / "run", tmp_path / "predictor.safetensors")
    predictor, info = load_predictor(path)
    assert info["training"]["stage"].startswith("L2") and info["training"]["step"] == 60
    assert predictor.config.context_s == 2.0 and predictor.config.clip_file == EMBEDDED_CLIP.name
    with pytest.raises(ValueError, match="not a layout-predictor run"):
        (tmp_path / "other").mkdir()
        save_checkpoint(tmp_path / "other" / "checkpoint.pt", {"kind": "rms_mapper"})
        export_predictor(tmp_path / "other", tmp_path / "x.safetensors")


def test_a_feature_constant_in_training_is_ignored_at_inference(clip):
    """Layer 0's CLS token is the same for every frame; rounding differences there must not matter."""
    torch.manual_seed(2)
    predictor = LayoutPredictor(_config(clip)).eval()
    cls, patches, layouts = torch.randn(4, 16, 128), torch.randn(4, 16, 9, 128), torch.rand(4, 20, 5)
    cls[..., :64] = 0.5
    predictor.set_statistics(cls, patches, layouts)
    args = (frame_times(16, 8.0), query_times(20, 10.2))
    nudged = cls.clone()
    nudged[..., :64] += 1e-3  # e.g. fp16 features in training, fp32 at inference
    torch.testing.assert_close(predictor(nudged, patches, *args), predictor(cls, patches, *args))
    torch.testing.assert_close(predictor.head.bias, layouts.mean((0, 1)))
