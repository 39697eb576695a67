"""Training package: extraction, dataset, objective, DDP training, exact resume, export.

Tiny nets and data keep the file around a minute on a 2-core CPU; multi-process runs go through
torchrun (`python -m torch.distributed.run`) exactly as documented in docs/training.md.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import default_collate

from foley_core.media.synthetic import write_flash_video
from foley_core.models.checkpoint_io import read_state_dict, require_kind
from foley_core.models.clip_encoder import ClipEncoder, build_clip_model
from foley_core.models.mmaudio import (MMAudioNetwork, detect_network_config, load_network_weights,
                                       sequence_lengths)
from foley_core.models.synchformer import SynchformerVisualEncoder
from foley_core.models.vae import MelVAE, VAEConfig
from foley_core.training import (FlowMatchingObjective, ShardDataset, ShardWriter, TrainConfig,
                                 draw_step_noise, export_network, load_checkpoint, step_generator)
from foley_core.training.__main__ import main as cli_main
from foley_core.training.loop import initialise_new_network, lr_factor
from harness.model_files import CLIP_CONFIG, SYNC_CONFIG
from harness.torchrun import run_torchrun

REPO = Path(__file__).resolve().parents[2]
MODE, DURATION = "16k", 1.0
SEQ = sequence_lengths(DURATION, MODE)  # latent 32, clip 8, sync 16
DIMS = {"clip": 16, "sync": 16, "text": 16, "latent": 8}
NETWORK = {"latent_dim": DIMS["latent"], "hidden_dim": 64, "depth": 2, "fused_depth": 1, "num_heads": 2,
           "clip_dim": DIMS["clip"], "sync_dim": DIMS["sync"], "text_dim": DIMS["text"]}
STEPS = 24
STOP = 11  # odd: the interruption falls inside an epoch (2 batches per epoch per rank)


def run_config(**overrides) -> TrainConfig:
    values = dict(network=NETWORK, mode=MODE, duration_s=DURATION, batch_size=2, lr=3e-3,
                  lr_schedule="constant", warmup_steps=2, steps=STEPS, grad_clip=5.0, ema_decay=0.9,
                  seed=1, checkpoint_every=6, log_every=1)
    values.update(overrides)
    return TrainConfig(**values)


def write_toy_features(out: Path, n_clips: int = 8) -> Path:
    """A learnable toy set: each clip has its own fixed latent pattern and its own conditions."""
    g = torch.Generator().manual_seed(0)
    writer = ShardWriter(out, 3, {"mode": MODE, "duration_s": DURATION, "encoders": {}})
    writer.write_empty_text(torch.randn(SEQ.text, DIMS["text"], generator=g))
    for i in range(n_clips):
        pattern = torch.randn(DIMS["latent"], generator=g)
        writer.add(f"clip{i}.mp4", "" if i % 4 == 0 else f"caption {i}", f"/videos/clip{i}.mp4", {
            "clip_f": torch.randn(SEQ.clip, DIMS["clip"], generator=g),
            "sync_f": torch.randn(SEQ.sync, DIMS["sync"], generator=g),
            "text_f": torch.randn(SEQ.text, DIMS["text"], generator=g),
            "latent_mean": pattern + 0.3 * torch.randn(SEQ.latent, DIMS["latent"], generator=g),
            "latent_std": torch.full((SEQ.latent, DIMS["latent"]), 0.05)})
    writer.close()
    return out


def torchrun_train(features: Path, run: Path, *extra: str, config: Path | None = None) -> None:
    args = ["foley_core.training", "train", "--features", str(features), "--out", str(run), "--device", "cpu", *extra]
    if config is not None:
        args += ["--config", str(config)]
    run_torchrun(args, run)


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three 2-process runs: uninterrupted; stopped halfway; the stopped one resumed."""
    root = tmp_path_factory.mktemp("training")
    features = write_toy_features(root / "features")
    config_file = root / "run.json"
    run_config().save(config_file)
    full, split = root / "full", root / "split"
    torchrun_train(features, full, config=config_file)
    torchrun_train(features, split, "--stop-at", str(STOP), config=config_file)
    halfway = read_log(split)
    torchrun_train(features, split, "--resume")
    return {"features": features, "full": full, "split": split, "halfway": halfway}


# --------------------------------------------------------------------------- training runs
def evaluation_loss(net: MMAudioNetwork, features: Path) -> float:
    """Objective on the whole toy set with fixed noise (8 draws): far less noisy than step losses."""
    dataset = ShardDataset(features)
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    objective = FlowMatchingObjective(net.eval())
    losses = []
    with torch.no_grad():
        for k in range(8):
            noise = draw_step_noise(step_generator(99, k, 0), len(dataset), SEQ.latent, DIMS["latent"], 0.0, 0.0)
            losses.append(objective(batch["latent_mean"], batch["latent_std"], batch["clip_f"],
                                    batch["sync_f"], batch["text_f"], noise).item())
    return sum(losses) / len(losses)


def test_two_process_training_learns_and_ranks_agree(runs):
    log = read_log(runs["full"])
    assert [e["step"] for e in log] == list(range(1, STEPS + 1))
    losses = [e["loss"] for e in log]
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < first, (first, last)

    # The same initial network the run built (seeded), against the trained one.
    config = run_config()
    dataset = ShardDataset(runs["features"])
    torch.manual_seed(config.seed)
    initial = MMAudioNetwork(config.network_config())
    initialise_new_network(initial, dataset, dataset.latent_statistics())
    trained = MMAudioNetwork(config.network_config())
    trained.load_state_dict(load_checkpoint(runs["full"] / "checkpoint.pt")["model"])
    before, after = evaluation_loss(initial, runs["features"]), evaluation_loss(trained, runs["features"])
    assert after < 0.85 * before, (before, after)

    final = json.loads((runs["full"] / "final.json").read_text())
    assert final["world_size"] == 2 and final["step"] == STEPS
    assert final["rank_digests"][0] == final["rank_digests"][1]  # DDP kept the replicas equal


def test_resume_reproduces_the_uninterrupted_run(runs):
    halfway = runs["halfway"]
    assert halfway[-1]["step"] == STOP
    full_log, split_log = read_log(runs["full"]), read_log(runs["split"])
    assert [e["loss"] for e in split_log] == [e["loss"] for e in full_log]  # bitwise
    assert split_log[: len(halfway)] == halfway  # the first half was kept, not re-logged
    full = load_checkpoint(runs["full"] / "checkpoint.pt")
    split = load_checkpoint(runs["split"] / "checkpoint.pt")
    assert full["step"] == split["step"] == STEPS
    for part in ("model", "ema"):
        for key, value in full[part].items():
            assert torch.equal(value, split[part][key]), f"{part}.{key}"
    assert len(full["rng"]) == 2  # one RNG state per rank


def test_export_loads_through_the_plugin_path(runs, tmp_path):
    out = cli_main(["export", "--run", str(runs["full"]), "--out", str(tmp_path / "net.safetensors"),
                    "--ema"])
    assert out == 0
    state = read_state_dict(tmp_path / "net.safetensors", "Flow network")
    require_kind(state, "flow network", "Flow network", "net.safetensors")
    variant, config = detect_network_config(state)
    assert variant == "custom" and config.architecture() == run_config().network_config().architecture()
    with torch.device("meta"):
        net = MMAudioNetwork(config)
    load_network_weights(net, state)
    ema = load_checkpoint(runs["full"] / "checkpoint.pt")["ema"]
    assert set(net.state_dict()) == set(ema)
    for key, value in net.state_dict().items():
        assert torch.equal(value, ema[key]), key
    with safe_open(str(tmp_path / "net.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["weights"] == "ema" and meta["mode"] == MODE
    assert TrainConfig.from_dict(json.loads(meta["training_config"])) == run_config()

    export_network(runs["full"], tmp_path / "half.safetensors", use_ema=False, fp16=True)
    half = read_state_dict(tmp_path / "half.safetensors")
    model = load_checkpoint(runs["full"] / "checkpoint.pt")["model"]
    assert half["latent_std"].dtype == torch.float16
    assert torch.equal(half["final_layer.conv.weight"], model["final_layer.conv.weight"].half())


def test_new_network_takes_dataset_statistics_and_empty_text(runs):
    dataset = ShardDataset(runs["features"])
    mean, std = dataset.latent_statistics()
    stats = json.loads((runs["full"] / "latent_stats.json").read_text())
    assert torch.allclose(torch.tensor(stats["mean"]), mean) and torch.allclose(torch.tensor(stats["std"]), std)
    model = load_checkpoint(runs["full"] / "checkpoint.pt")["model"]
    assert torch.equal(model["latent_mean"].flatten(), mean)
    assert torch.equal(model["empty_string_feat"], dataset.empty_text_features())


# --------------------------------------------------------------------------- pieces
def test_dataset_items_and_statistics(tmp_path):
    dataset = ShardDataset(write_toy_features(tmp_path / "f", n_clips=5))
    assert len(dataset) == 5 and len(dataset.index["shards"]) == 2
    item = dataset[4]
    assert item["name"] == "clip4.mp4" and not bool(item["has_text"]) and bool(dataset[1]["has_text"])
    assert item["latent_mean"].shape == (SEQ.latent, DIMS["latent"])
    means = torch.stack([dataset[i]["latent_mean"] for i in range(5)]).double().flatten(0, 1)
    stds = torch.stack([dataset[i]["latent_std"] for i in range(5)]).double().flatten(0, 1)
    expected_std = (means.var(0, unbiased=False) + stds.square().mean(0)).sqrt()
    mean, std = dataset.latent_statistics()
    assert torch.allclose(mean.double(), means.mean(0), atol=1e-6)
    assert torch.allclose(std.double(), expected_std, atol=1e-6)


def tiny_net(seed: int = 0) -> MMAudioNetwork:
    torch.manual_seed(seed)
    net = MMAudioNetwork(run_config().network_config())
    with torch.no_grad():
        for name in ("empty_clip_feat", "empty_sync_feat", "empty_string_feat"):
            getattr(net, name).normal_()
        net.latent_mean.normal_()
        net.latent_std.uniform_(0.5, 2.0)
    return net


def test_condition_dropout_rate_and_empty_features():
    noise = draw_step_noise(step_generator(3, 0, 0), 40_000, 1, 1, 0.1, 0.1)
    video, text = noise.drop_video.float(), noise.drop_text.float()
    assert abs(video.mean() - 0.1) < 0.01 and abs(text.mean() - 0.1) < 0.01
    assert abs((video * text).mean() - 0.01) < 0.003  # independent coins
    assert draw_step_noise(step_generator(3, 0, 0), 100, 1, 1, 0.0, 1.0).drop_text.all()

    net = tiny_net()
    objective = FlowMatchingObjective(net)
    b = 4
    clip_f, sync_f = torch.randn(b, SEQ.clip, DIMS["clip"]), torch.randn(b, SEQ.sync, DIMS["sync"])
    text_f = torch.randn(b, SEQ.text, DIMS["text"])
    drop_video, drop_text = torch.tensor([True, False, True, False]), torch.tensor([False, False, True, True])
    c, s, t = objective.dropped_conditions(clip_f, sync_f, text_f, drop_video, drop_text)
    for i in range(b):
        assert torch.equal(c[i], net.empty_clip_feat.expand(SEQ.clip, -1) if drop_video[i] else clip_f[i])
        assert torch.equal(s[i], net.empty_sync_feat.expand(SEQ.sync, -1) if drop_video[i] else sync_f[i])
        assert torch.equal(t[i], net.empty_string_feat if drop_text[i] else text_f[i])


def test_loss_matches_hand_computation():
    net = tiny_net(1)
    torch.manual_seed(5)
    b, shape = 3, (3, SEQ.latent, DIMS["latent"])
    mean, std = torch.randn(shape), torch.rand(shape) * 0.1
    clip_f, sync_f = torch.randn(b, SEQ.clip, DIMS["clip"]), torch.randn(b, SEQ.sync, DIMS["sync"])
    text_f = torch.randn(b, SEQ.text, DIMS["text"])
    noise = draw_step_noise(step_generator(0, 7, 1), b, SEQ.latent, DIMS["latent"], 0.0, 0.0)
    noise.t = torch.tensor([0.1, 0.5, 0.9])
    loss = FlowMatchingObjective(net)(mean, std, clip_f, sync_f, text_f, noise)

    x1 = (mean + std * noise.posterior_eps - net.latent_mean) / net.latent_std
    t = noise.t.view(-1, 1, 1)
    x_t = (1 - t) * noise.x0 + t * x1
    with torch.no_grad():
        pred = net(x_t, noise.t, clip_f, sync_f, text_f)
    by_hand = sum(((pred[i] - (x1[i] - noise.x0[i])) ** 2).mean() for i in range(b)) / b
    assert torch.allclose(loss.detach(), by_hand, rtol=1e-5, atol=1e-6)


def test_flow_time_is_logit_normal_and_steps_are_seeded():
    t = draw_step_noise(step_generator(0, 0, 0), 20_000, 1, 1, 0.1, 0.1).t
    logit = torch.log(t / (1 - t))
    assert abs(logit.mean()) < 0.03 and abs(logit.std() - 1) < 0.03
    a = draw_step_noise(step_generator(0, 5, 0), 2, 4, 3, 0.1, 0.1)
    assert torch.equal(a.x0, draw_step_noise(step_generator(0, 5, 0), 2, 4, 3, 0.1, 0.1).x0)
    for other in (step_generator(0, 6, 0), step_generator(0, 5, 1), step_generator(1, 5, 0)):
        assert not torch.equal(a.x0, draw_step_noise(other, 2, 4, 3, 0.1, 0.1).x0)


def test_lr_schedule_and_config_round_trip(tmp_path):
    config = run_config(lr_schedule="cosine", warmup_steps=4, steps=14, min_lr_ratio=0.1)
    factors = [lr_factor(config, s) for s in range(15)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0] and factors[4] == 1.0
    assert abs(factors[14] - 0.1) < 1e-12 and all(a >= b for a, b in zip(factors[4:], factors[5:]))
    config.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == config
    with pytest.raises(ValueError):
        TrainConfig.from_dict({**config.to_dict(), "lerning_rate": 1})


# --------------------------------------------------------------------------- extraction
def write_encoder_files(folder: Path) -> dict[str, Path]:
    """Random-weight CLIP / Synchformer / 16k VAE in the official formats (as harness/model_files)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    paths = {"clip": folder / "clip.safetensors", "synchformer": folder / "synchformer.pth",
             "vae": folder / "vae_16k.pth"}
    save_file({k: v.contiguous() for k, v in build_clip_model(CLIP_CONFIG).state_dict().items()},
              str(paths["clip"]))
    torch.save(SynchformerVisualEncoder(SYNC_CONFIG).state_dict(), paths["synchformer"])
    vae = MelVAE(VAEConfig(n_mels=80, embed_dim=20, hidden_dim=8)).state_dict()
    # Raw EDM2 weights (row norms ≈ sqrt(fan_in)) as in the official files.
    vae = {k: torch.randn_like(v) if k.endswith(".weight") and v.dim() == 3 else v for k, v in vae.items()}
    torch.save(vae, paths["vae"])
    return paths


def test_extract_end_to_end(tmp_path):
    models = write_encoder_files(tmp_path / "models")
    videos = tmp_path / "videos"
    videos.mkdir()
    fps = Fraction(25)
    write_flash_video(videos / "a.mp4", fps, 30, [3], size=(64, 48), with_audio=16000)
    write_flash_video(videos / "b.mkv", fps, 28, [10], size=(64, 48), with_audio=22050)
    write_flash_video(videos / "short.mp4", fps, 12, size=(64, 48), with_audio=16000)
    write_flash_video(videos / "silent.mp4", fps, 30, size=(64, 48))
    (videos / "b.txt").write_text("a door slams\n")
    (tmp_path / "captions.json").write_text(json.dumps({"a.mp4": "glass breaking"}))
    out = tmp_path / "features"
    assert cli_main(["extract", "--videos", str(videos), "--out", str(out), "--clip", str(models["clip"]),
                     "--synchformer", str(models["synchformer"]), "--vae", str(models["vae"]),
                     "--mode", MODE, "--duration", str(DURATION), "--captions",
                     str(tmp_path / "captions.json"), "--shard-size", "1", "--batch-size", "2"]) == 0

    dataset = ShardDataset(out)
    assert [c["name"] for c in dataset.clips] == ["a.mp4", "b.mkv"]
    assert [c["caption"] for c in dataset.clips] == ["glass breaking", "a door slams"]
    assert sorted(Path(s["source"]).name for s in dataset.index["skipped"]) == ["short.mp4", "silent.mp4"]
    assert len(dataset.index["shards"]) == 2
    assert dataset.index["encoders"]["vae"] == "vae_16k.pth"
    assert dataset.shapes == {"clip_f": [SEQ.clip, 32], "sync_f": [SEQ.sync, 64], "text_f": [77, 64],
                              "latent_mean": [SEQ.latent, 20], "latent_std": [SEQ.latent, 20]}
    clip = ClipEncoder.from_state_dict(read_state_dict(models["clip"]))
    expected = clip.encode_text(["", "a door slams"])
    assert torch.allclose(dataset.empty_text_features(), expected[0], atol=1e-6)
    item = dataset[1]
    assert torch.allclose(item["text_f"], expected[1], atol=1e-6) and bool(item["has_text"])
    assert (item["latent_std"] > 0).all() and torch.isfinite(item["latent_mean"]).all()
    # Different audio (16 vs 22.05 kHz sources, different pictures) gives different features.
    assert not torch.equal(dataset[0]["latent_mean"], item["latent_mean"])
    assert not torch.equal(dataset[0]["clip_f"], item["clip_f"])
    # The stored posterior is the VAE encoding of exactly SEQ.samples mono samples, channel-last.
    from foley_core.media.audio import decode_audio_stream, fit_to_length, resample
    from foley_core.models.mel import MelConverter
    from foley_core.models.vae import load_vae

    wav, rate = decode_audio_stream(videos / "b.mkv", 0.0, DURATION)
    mono = fit_to_length(resample(wav.mean(0, keepdim=True), rate, SEQ.sample_rate), SEQ.samples)
    posterior = load_vae(read_state_dict(models["vae"])).encode(MelConverter(MODE)(mono))
    assert torch.allclose(item["latent_mean"], posterior.mean[0].T, atol=1e-5)
    assert torch.allclose(item["latent_std"], posterior.std[0].T, atol=1e-5)
