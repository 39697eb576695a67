"""The synthetic benchmark runs end to end on a model folder and scores the true soundtrack as
perfect (the detector's ceiling), so a broken metric or pipeline shows up here."""

import json

import torch
from safetensors.torch import save_file

from foley_core.evaluation.synthetic_benchmark import markdown_table, run
from foley_core.models.mmaudio import MMAudioNetwork, NetworkConfig
from foley_core.models.vae import MelVAE, VAEConfig
from foley_core.training.small_encoders import small_clip_state_dict, small_synchformer_state_dict


def write_random_model_set(folder):
    torch.manual_seed(0)
    net = MMAudioNetwork(NetworkConfig(latent_dim=20, hidden_dim=64, depth=2, fused_depth=1, num_heads=1,
                                       clip_dim=32, sync_dim=64, text_dim=32, v2=True))
    vae = MelVAE(VAEConfig(n_mels=80, embed_dim=20, hidden_dim=8)).state_dict()
    vae = {k: (torch.randn_like(v) if v.dim() == 3 and k.endswith(".weight") else v) for k, v in vae.items()}
    files = {"network": "net.safetensors", "vae": "vae.safetensors", "clip": "clip.safetensors",
             "synchformer": "sync.safetensors"}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / files["network"]))
    save_file({k: v.contiguous() for k, v in vae.items()}, str(folder / files["vae"]))
    save_file(small_clip_state_dict(0), str(folder / files["clip"]))
    save_file(small_synchformer_state_dict(1), str(folder / files["synchformer"]))
    (folder / "manifest.json").write_text(json.dumps({"files": files}))


def test_benchmark_runs_and_scores_the_true_soundtrack_as_perfect(tmp_path):
    write_random_model_set(tmp_path)
    report = run(tmp_path, n_clips=2, seed=0, duration=2.0, steps=2, cfg=4.5, log=lambda _: None)
    truth = report["summary"]["truth"]
    assert truth["onset_acc@0.1s"]["mean"] == 1.0
    assert truth["onset_ap_det@0.1s"]["mean"] == 1.0
    assert truth["e_l1"]["mean"] == 0.0
    for condition in ("video", "masked"):
        summary = report["summary"][condition]
        assert 0.0 <= summary["onset_acc@0.1s"]["mean"] <= 1.0
        assert summary["e_l1"]["mean"] > 0.0  # random weights cannot reproduce the soundtrack
    assert len(report["clips"]) == 2 and report["clips"][0]["n_events"] > 0
    assert "| onset acc @0.1 s |" in markdown_table(report)


def test_envelope_from_video_runs_mapper_and_controlnet_and_a_zero_controlnet_changes_nothing(tmp_path):
    """The pipeline benchmark (RMS-Mapper envelope → ControlNet) uses both files; with a
    zero-initialised ControlNet its "video" condition equals the plain benchmark exactly."""
    import pytest

    from foley_core.controls.controlnet import ControlNetConfig, EnvelopeControlNet, save_controlnet
    from foley_core.models.builders import build_network
    from foley_core.models.rms_mapper import RMSMapper, save_mapper

    write_random_model_set(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    with pytest.raises(FileNotFoundError, match="rms_mapper or controlnet"):
        run(tmp_path, n_clips=1, seed=0, duration=2.0, steps=2, cfg=4.5, log=lambda _: None,
            envelope_from_video=True)

    net = build_network(tmp_path / manifest["files"]["network"]).network
    controlnet = EnvelopeControlNet(ControlNetConfig.for_backbone(net.config, {"mode": "16k"}))
    controlnet.copy_backbone_blocks(net)
    save_controlnet(controlnet, tmp_path / "cn.safetensors")
    torch.manual_seed(0)
    save_mapper(RMSMapper(), tmp_path / "mapper.safetensors")
    manifest["files"].update(controlnet="cn.safetensors", rms_mapper="mapper.safetensors")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    plain = run(tmp_path, n_clips=1, seed=0, duration=2.0, steps=2, cfg=4.5, log=lambda _: None)
    piped = run(tmp_path, n_clips=1, seed=0, duration=2.0, steps=2, cfg=4.5, log=lambda _: None,
                envelope_from_video=True)
    assert piped["envelope_from_video"] and not plain["envelope_from_video"]
    assert piped["clips"][0]["video"] == plain["clips"][0]["video"]
    assert piped["clips"][0]["masked"] == plain["clips"][0]["masked"]

    with torch.no_grad():  # a "trained" ControlNet must change the video condition, not the masked one
        for layer in (controlnet.input_proj, *controlnet.output_projs):
            layer.weight.normal_(0.0, 0.3)
    save_controlnet(controlnet, tmp_path / "cn.safetensors")
    steered = run(tmp_path, n_clips=1, seed=0, duration=2.0, steps=2, cfg=4.5, log=lambda _: None,
                  envelope_from_video=True)
    assert steered["clips"][0]["video"] != plain["clips"][0]["video"]
    assert steered["clips"][0]["masked"] == plain["clips"][0]["masked"]
