"""MusicGen-Style style conditioner (tempo encoder) against style_conditioner_tiny (official
audiocraft code, MERT replaced by fixed features) and the full-size key manifests
(spec: shared/spec/style_conditioner.md)."""

import json
from pathlib import Path

import pytest
import torch

from foley_core.errors import CheckpointError
from foley_core.models.style_conditioner import (
    KEY_PREFIX,
    StyleConditioner,
    StyleConfig,
    build_mert,
    load_mert,
    mert_input,
    resample_frac,
    to_classic_names,
    to_parametrized_names,
)

import parity_data


DATA = Path(__file__).resolve().parents[1] / "data"
TOL = 1e-4
HEADS = 4  # tiny width 32 is not an official scale, so the head count is given


@pytest.fixture(scope="module")
def parity():
    weights = parity_data.weights("style_conditioner_tiny")
    io = parity_data.io("style_conditioner_tiny")
    return weights, io


@pytest.fixture(scope="module")
def model(parity):
    weights, _ = parity
    return StyleConditioner.from_state_dict(weights, num_heads=HEADS)


def close(got, want):
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=TOL, rtol=TOL)


def manifest(name):
    data = json.loads((DATA / "manifests" / name).read_text())
    return data, {k: (tuple(shape), dtype) for k, shape, dtype in data["keys"]}


def describe(state):
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}


# ------------------------------------------------------------------------------------ resampler
def test_resampler_32k_to_24k(parity):
    _, io = parity
    close(mert_input(io["in.wav_32k"][:, 0]), io["out.mert_input_24k"])
    odd = resample_frac(io["in.resample.wav_32k_odd"], 32000, 24000)
    close(odd, io["out.resample.wav_24k_odd"])


# ------------------------------------------------------------------------------------ network
def test_embed_transformer_and_batch_norm(model, parity):
    _, io = parity
    trace = {}
    with torch.no_grad():
        model.forward_from_features(io["in.mert_features"], io["in.lengths"], trace=trace)
    for name in ("embed", "transformer_in", "transformer.layer0", "transformer.layer1",
                 "transformer_out", "batch_norm"):
        close(trace[name], io[f"out.{name}"])


@pytest.mark.parametrize("eval_q", [1, 3, 6])
def test_rvq_bottleneck_and_output(model, parity, eval_q):
    _, io = parity
    trace = {}
    with torch.no_grad():
        embeds, mask = model.forward_from_features(io["in.mert_features"], io["in.lengths"],
                                                   eval_q=eval_q, trace=trace)
    assert torch.equal(trace["codes"], io[f"out.q{eval_q}.codes"])
    close(trace["quantized"], io[f"out.q{eval_q}.quantized"])
    close(trace["downsampled"], io[f"out.q{eval_q}.downsampled"])
    close(embeds, io[f"out.q{eval_q}.embeds"])
    assert mask.dtype == torch.int32 and torch.equal(mask, io[f"out.q{eval_q}.mask"])
    assert mask[1].sum() == 13  # 80000 / 6400 = 12.5 -> positions 0..12


def test_default_eval_q_is_three_and_range_checked(model, parity):
    _, io = parity
    with torch.no_grad():
        embeds, _ = model.forward_from_features(io["in.mert_features"], io["in.lengths"])
        close(embeds, io["out.q3.embeds"])
        for bad in (0, 7):
            with pytest.raises(ValueError):
                model.forward_from_features(io["in.mert_features"], io["in.lengths"], eval_q=bad)


def test_null_condition_is_exact_zero(model, parity):
    _, io = parity
    with torch.no_grad():
        embeds, mask = model.null_condition(2)
    assert torch.equal(embeds, io["out.null.embeds"]) and torch.equal(mask, io["out.null.mask"])


def test_tempo_embedding_pipeline_with_stand_in_mert(model, parity):
    """user audio -> 32 kHz excerpt -> 24 kHz -> MERT -> conditioner; MERT is a stand-in here."""
    _, io = parity
    seen = {}

    def fake_mert(wav_24k):
        seen["wav"] = wav_24k
        return io["in.mert_features"][: wav_24k.shape[0]]

    embeds, mask = model.tempo_embedding(io["in.wav_32k"][:1], 32000, mert=fake_mert)
    close(seen["wav"], io["out.mert_input_24k"][:1])
    close(embeds, io["out.q3.embeds"][:1])
    assert torch.equal(mask, io["out.q3.mask"][:1])
    # a clip shorter than the excerpt is zero-padded and masked by its true length
    _, short_mask = model.tempo_embedding(io["in.wav_32k"][:1, :, :80000], 32000, mert=fake_mert)
    assert short_mask.sum() == 13


# ------------------------------------------------------------------------------------ loading
def test_prefixed_lm_state_dict_and_strictness(parity):
    weights, io = parity
    lm = {KEY_PREFIX + k: v for k, v in weights.items()}
    lm["transformer.layers.0.cross_attention.in_proj_weight"] = torch.zeros(3)  # other LM keys
    model = StyleConditioner.from_state_dict({"best_state": lm}, num_heads=HEADS)
    with torch.no_grad():
        embeds, _ = model.forward_from_features(io["in.mert_features"], io["in.lengths"])
    close(embeds, io["out.q3.embeds"])
    broken = dict(weights)
    broken.pop("transformer.layers.1.norm2.bias")
    with pytest.raises(CheckpointError, match="missing"):
        StyleConditioner.from_state_dict(broken, num_heads=HEADS)
    with pytest.raises(CheckpointError, match="num_heads"):
        StyleConditioner.from_state_dict(weights)
    uninitialised = {**weights, "rvq.vq.layers.2._codebook.inited": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="inited"):
        StyleConditioner.from_state_dict(uninitialised, num_heads=HEADS)


def test_full_size_conditioner_matches_manifest():
    data, want = manifest("style_conditioner.json")
    with torch.device("meta"):
        model = StyleConditioner(StyleConfig())
    got = describe({KEY_PREFIX + k: v for k, v in model.state_dict().items()})
    assert got == want
    assert sum(v.numel() for v in model.state_dict().values()) == data["num_elements"]
    meta_state = {k: torch.empty(s, device="meta") for k, (s, _) in want.items()}
    from foley_core.models.style_conditioner import config_from_state_dict, strip_prefix

    assert config_from_state_dict(strip_prefix(meta_state)) == StyleConfig()


def test_mert_hubert_layout_matches_manifest():
    data, want = manifest("mert_v1_95m.json")
    with torch.device("meta"):
        mert = build_mert()
    got = describe(to_classic_names(mert.state_dict()))
    assert got == want
    assert sum(v.numel() for v in mert.state_dict().values()) == data["num_elements"]
    meta_state = {k: torch.empty(s, device="meta") for k, (s, _) in want.items()}
    mert.load_state_dict(to_parametrized_names(meta_state), strict=True, assign=True)


def test_load_mert_from_local_folder_with_classic_weight_norm_names(tmp_path):
    tiny = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 32, "conv_dim": [8] * 7, "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 2}
    torch.manual_seed(0)
    reference = build_mert(tiny)
    state = to_classic_names(reference.state_dict())
    assert "encoder.pos_conv_embed.conv.weight_g" in state
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({**tiny, "model_type": "mert_model"}))
    loaded = load_mert(tmp_path)
    wav = torch.randn(1, 4800)
    with torch.no_grad():
        want = reference(wav).last_hidden_state
        got = loaded(wav).last_hidden_state
    assert got.shape == (1, 14, 16)
    torch.testing.assert_close(got, want)
