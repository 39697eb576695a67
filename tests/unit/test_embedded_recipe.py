"""Rebuilding the embedded set keeps the add-ons trained by their own commands."""

import json

from foley_core.training.embedded_recipe import FILES, _keep_add_ons


def test_rebuild_keeps_existing_add_ons_and_drops_missing_ones(tmp_path):
    (tmp_path / "mapper.safetensors").write_bytes(b"weights")
    (tmp_path / "manifest.json").write_text(json.dumps({
        "files": {**FILES, "rms_mapper": "mapper.safetensors", "controlnet": "deleted.safetensors"},
        "rms_mapper": {"epochs": 90}, "controlnet": {"steps": 4000}}))
    manifest = {"files": dict(FILES)}
    _keep_add_ons(tmp_path / "manifest.json", manifest)
    assert manifest["files"]["rms_mapper"] == "mapper.safetensors"
    assert manifest["rms_mapper"] == {"epochs": 90}
    assert "controlnet" not in manifest["files"] and "controlnet" not in manifest
    assert "rms_mapper" not in FILES  # the recipe's own table is not modified


def test_first_build_has_nothing_to_keep(tmp_path):
    manifest = {"files": dict(FILES)}
    _keep_add_ons(tmp_path / "manifest.json", manifest)
    assert manifest == {"files": dict(FILES)}


# ------------------------------------------------------------------- control stages, end to end
def _tiny_build(work, out, stages, **controls):
    from foley_core.training.embedded_controls import ControlSettings
    from foley_core.training.embedded_recipe import build

    settings = ControlSettings(**{"mapper_epochs": 1, "mapper_batch_size": 2, "mapper_val_clips": 2,
                                  "controlnet_steps": 2, "controlnet_batch_size": 2, **controls})
    return build(work, out, train_clips=6, duration=4.0, vae_steps=4, flow_minutes=0.0, batch_size=2,
                 seed=0, flow_steps=2, stages=stages, controls=settings)


def test_recipe_trains_the_control_stages_and_the_set_loads_for_the_pipeline(tmp_path):
    """Base + mapper + ControlNet at tiny size: the manifest lists the control files the way the
    committed one does (files["rms_mapper"], files["controlnet"]: model_loaders' EMBEDDED_KEYs),
    they load for the envelope-from-video benchmark, and the ControlNet was made for this network."""
    from foley_core.controls.controlnet import load_controlnet
    from foley_core.evaluation.synthetic_benchmark import load_model_set
    from foley_core.models.rms_mapper import load_mapper
    from foley_core.training.embedded_controls import CONTROL_FILES, CONTROL_LOGS

    work, out = tmp_path / "work", tmp_path / "out"
    manifest = _tiny_build(work, out, ("base", "mapper", "controlnet"))
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["files"] == {**FILES, **CONTROL_FILES}
    for key in ("rms_mapper", "controlnet"):
        assert (out / manifest["files"][key]).is_file()
        assert (out / manifest["training_logs"][key]).read_text().strip()
        assert manifest["training_logs"][key] == CONTROL_LOGS[key]
    assert (work / "features" / "envelopes.safetensors").is_file()
    entry = manifest["controlnet"]
    assert entry["kind"] == "foley_controlnet" and entry["backbone"] == FILES["network"]
    assert entry["config"]["steps"] == 2 and entry["trained_on"] == {"synthetic_clips": 6}
    assert manifest["rms_mapper"]["epochs"] == 1

    _, cn_meta = load_controlnet(out / CONTROL_FILES["controlnet"])
    assert cn_meta["config"]["backbone"]["file"] == FILES["network"]
    assert cn_meta["training"]["step"] == 2 and entry["blocks_copied"] == cn_meta["config"]["blocks"]
    _, mapper_meta = load_mapper(out / CONTROL_FILES["rms_mapper"])
    assert mapper_meta["training"]["train_clips"] == 4 and mapper_meta["training"]["val_clips"] == 2
    models = load_model_set(out, envelope_from_video=True)
    assert models.controlnet is not None and models.rms_mapper is not None
    assert models.controlnet.config.backbone_arch["hidden_dim"] == manifest["network"]["hidden_dim"]

    # Re-running only the ControlNet stage reuses the features and the mapper, retrains the
    # ControlNet with the new step count and keeps the rest of the manifest.
    mapper_bytes = (out / CONTROL_FILES["rms_mapper"]).read_bytes()
    again = _tiny_build(work, out, ("controlnet",), controlnet_steps=3)
    assert again["controlnet"]["config"]["steps"] == 3
    assert load_controlnet(out / CONTROL_FILES["controlnet"])[1]["training"]["step"] == 3
    assert (out / CONTROL_FILES["rms_mapper"]).read_bytes() == mapper_bytes
    assert {k: v for k, v in again.items() if k != "controlnet"} == \
        {k: v for k, v in manifest.items() if k != "controlnet"}


def test_control_stages_need_a_built_set(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="base stage"):
        _tiny_build(tmp_path / "work", tmp_path / "out", ("controlnet",))
    with pytest.raises(ValueError, match="unknown stages"):
        _tiny_build(tmp_path / "work", tmp_path / "out", ("flow",))
