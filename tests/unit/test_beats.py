"""BEATs timbre encoder against the beats_tiny golden data (official microsoft/unilm code) and the
full-size key manifest (spec: shared/spec/beats.md)."""

import json
from pathlib import Path

import pytest
import torch

from foley_core.errors import CheckpointError, MediaError
from foley_core.models.beats import (
    ITER3_CONFIG,
    ITER3_FINETUNED_CONFIG,
    BEATsEncoder,
    chunk_mask,
    config_from_state_dict,
    log_mel_fbank,
    masked_token_mean,
    normalise_fbank,
    relative_position_bucket,
)

import parity_data


DATA = Path(__file__).resolve().parents[1] / "data"
TOL = 1e-4


@pytest.fixture(scope="module")
def parity():
    meta = parity_data.config("beats_tiny")
    weights = parity_data.weights("beats_tiny")
    io = parity_data.io("beats_tiny")
    return meta, weights, io


@pytest.fixture(scope="module")
def model(parity):
    meta, weights, _ = parity
    return BEATsEncoder.from_checkpoint({"cfg": meta["beats_cfg"], "model": weights})


@pytest.fixture(scope="module")
def run(model, parity):
    """One masked and one unmasked pass over the 10-s batch, keeping the hidden states."""
    _, _, io = parity
    with torch.no_grad():
        hidden = []
        features, token_mask = model.extract_features(io["in.wav_16k"], io["in.padding_mask"], hidden)
        nomask_features, nomask_token_mask = model.extract_features(io["in.wav_16k"])
    return dict(features=features, token_mask=token_mask, hidden=hidden,
                nomask_features=nomask_features, nomask_token_mask=nomask_token_mask)


def close(got, want, atol=TOL):
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=atol, rtol=TOL)


# ------------------------------------------------------------------------------------ front end
def test_fbank_matches_kaldi_reference(parity):
    _, _, io = parity
    raw = log_mel_fbank(io["in.wav_16k"])
    close(raw, io["out.fbank_raw"], atol=3e-3)
    close(normalise_fbank(raw), io["out.fbank"], atol=3e-4)
    close(log_mel_fbank(io["in.short.wav_16k"]), io["out.short.fbank_raw"], atol=3e-3)


def test_padding_mask_chunk_mapping(parity):
    _, _, io = parity
    frames = chunk_mask(io["in.padding_mask"], 998)
    tokens = chunk_mask(frames, 496)
    assert torch.equal(frames, io["out.padding_mask_frames"])
    assert torch.equal(tokens, io["out.padding_mask_tokens"])
    # the official mapping splits time row 45: tokens 360..364 valid, 365..367 padded
    assert not tokens[1, 364] and tokens[1, 365]


def test_relative_buckets_and_raw_bias(model, parity):
    _, _, io = parity
    assert torch.equal(relative_position_bucket(io["in.rel_positions"], 320, 800), io["out.rel_bucket"])
    close(model.encoder.position_bias(496)[:, :8], io["out.pos_bias_rows0_7"])


# ------------------------------------------------------------------------------------ network
def test_patch_embedding_and_projection(model, parity):
    _, _, io = parity
    with torch.no_grad():
        fbank = io["out.fbank"]
        close(model.patch_embedding(fbank.unsqueeze(1)), io["out.patch_conv"])
        tokens = model.tokens_from_fbank(fbank)
        close(tokens, io["out.patch_tokens"])
        close(model.layer_norm(tokens), io["out.patch_ln"])
        proj = model.post_extract_proj(model.layer_norm(tokens))
        close(proj, io["out.proj"])
        masked = proj.masked_fill(io["out.padding_mask_tokens"].unsqueeze(-1), 0.0)
        close(model.encoder.positional(masked), io["out.pos_conv"])


def test_encoder_states_and_features(run, parity):
    _, _, io = parity
    assert torch.equal(run["token_mask"], io["out.padding_mask_tokens"])
    close(run["hidden"][0], io["out.encoder_in"])
    close(run["hidden"][1], io["out.layer0"])
    close(run["hidden"][2], io["out.layer1"])
    close(run["features"], io["out.features"])
    close(masked_token_mean(run["features"], run["token_mask"]), io["out.features_mean_valid"])
    assert run["nomask_token_mask"] is None
    close(run["nomask_features"], io["out.nomask.features"])


def test_finetuned_head(model, parity):
    _, _, io = parity
    with torch.no_grad():
        close(model.classify(io["in.wav_16k"], io["in.padding_mask"]), io["out.probs"])
        close(model.classify(io["in.wav_16k"]), io["out.nomask.probs"])


def test_short_odd_length_input(model, parity):
    _, _, io = parity
    with torch.no_grad():
        features, mask = model.extract_features(io["in.short.wav_16k"])
        close(features, io["out.short.features"])
        close(model.classify(io["in.short.wav_16k"]), io["out.short.probs"])
    assert mask is None
    with pytest.raises(MediaError):
        model.extract_features(torch.zeros(1, 2799))


def test_timbre_embedding_resamples_and_pools(model, parity):
    _, _, io = parity
    wav = io["in.wav_16k"]
    close(model.timbre_embedding(wav, 16000), io["out.nomask.features"].mean(dim=1))
    # stereo at 32 kHz: mixed to mono, resampled to 16 kHz, one vector per item
    stereo = torch.stack([wav[:, :16000], wav[:, :16000]], dim=1).repeat_interleave(2, dim=-1)
    out = model.timbre_embedding(stereo, 32000)
    assert out.shape == (2, 32) and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------ loading
def test_config_inferred_from_shapes_matches_stored_cfg(model, parity):
    _, weights, _ = parity
    assert config_from_state_dict(weights) == model.cfg
    assert model.cfg.deep_norm_alpha == pytest.approx(4 ** 0.25)


def test_official_pt_file_loads_weights_only(tmp_path, parity):
    meta, weights, io = parity
    path = tmp_path / "BEATs_tiny.pt"
    torch.save({"cfg": meta["beats_cfg"], "model": weights, "label_dict": {0: "/m/09x0r"}}, path)
    model = BEATsEncoder.from_checkpoint(path)
    assert model.label_dict == {0: "/m/09x0r"}
    assert model.cfg.max_distance == 800 and model.cfg.finetuned_model


def test_strict_loading_reports_missing_and_extra_keys(parity):
    _, weights, _ = parity
    broken = dict(weights)
    broken.pop("encoder.layers.1.fc2.bias")
    with pytest.raises(CheckpointError, match="missing 1 keys"):
        BEATsEncoder.from_checkpoint(broken)
    with pytest.raises(CheckpointError, match="unexpected"):
        BEATsEncoder.from_checkpoint({**weights, "encoder.layers.0.extra": torch.zeros(1)})


def test_relative_table_is_shared_and_last_copy_wins(parity):
    _, weights, _ = parity
    edited = dict(weights)
    key = "encoder.layers.{}.self_attn.relative_attention_bias.weight"
    edited[key.format(1)] = torch.full_like(weights[key.format(0)], 0.5)
    model = BEATsEncoder.from_checkpoint(edited)
    tables = [layer.self_attn.relative_attention_bias for layer in model.encoder.layers]
    assert tables[0] is tables[1]
    assert torch.all(tables[0].weight == 0.5)


def test_full_size_module_matches_manifest():
    data = json.loads((DATA / "manifests" / "beats_iter3.json").read_text())
    want = {k: (tuple(shape), dtype) for k, shape, dtype in data["keys"]}
    with torch.device("meta"):
        model = BEATsEncoder(ITER3_FINETUNED_CONFIG)
        pretrained = BEATsEncoder(ITER3_CONFIG)
    got = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}
    assert got == want
    assert sum(v.numel() for v in model.state_dict().values()) == data["num_elements"]
    assert len(pretrained.state_dict()) == data["num_tensors_pretrained"]
    cfg = {k: v for k, v in data["cfg_reported"].items() if k != "finetuned_model"}
    assert config_from_state_dict({k: torch.empty(s, device="meta") for k, (s, _) in want.items()}) \
        == ITER3_FINETUNED_CONFIG
    assert all(getattr(ITER3_CONFIG, k) == v for k, v in cfg.items() if hasattr(ITER3_CONFIG, k))
