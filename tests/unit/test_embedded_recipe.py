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
