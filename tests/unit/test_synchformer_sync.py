"""Full Synchformer (audio branch, sync transformer, DeSync) against the synchformer_sync_tiny golden
data (official av-benchmark code, tiny widths, real geometry; spec synchformer_sync.md §10)."""

import pytest
import torch
from safetensors.torch import save_file

from foley_core.errors import CheckpointError, FoleyError
from foley_core.metrics.desync import desync, desync_windows, pair_window_scores
from foley_core.models.synchformer_sync import (OFFSET_GRID, SynchformerSync, audio_segments,
                                                build_synchformer_sync, log_mel_segments, mel_power, to_16k)

import parity_data

NAME = "synchformer_sync_tiny"
ATOL, RTOL = 4e-5, 0.0  # the spec §10 bound (max abs error); the README suggests 1e-4
HEADS = {"visual": 2, "audio": 3, "sync": 4}


def close(actual, expected, atol=ATOL, rtol=RTOL):
    torch.testing.assert_close(actual.float(), expected.float(), atol=atol, rtol=rtol)


@pytest.fixture(scope="module")
def io():
    return parity_data.io(NAME)


@pytest.fixture(scope="module")
def model():
    cfg = parity_data.config(NAME)
    heads = {"visual": cfg["visual"]["NUM_HEADS"], "audio": cfg["audio"]["num_attention_heads"],
             "sync": cfg["sync"]["n_head"]}
    assert heads == HEADS
    return SynchformerSync.from_state_dict(parity_data.weights(NAME), heads=heads)


def frames_224(io):
    low = io["in.frames_u8_lowres"]
    return low.repeat_interleave(8, -1).repeat_interleave(8, -2)


@pytest.fixture(scope="module")
def features(model, io):
    visual = model.encode_segments(frames_224(io))
    audio = model.encode_audio(io["in.wav_16k"])
    return visual, audio


def test_resampler(io):
    for rate in (44100, 48000):
        close(to_16k(io[f"in.resample.wav_{rate}"], rate), io[f"out.resample.from_{rate}"], atol=1e-5, rtol=0)


def test_mel_front_end(io):
    wave = io["in.wav_16k"]
    close(mel_power(audio_segments(wave)[:, 0]), io["out.audio.mel_power.seg0"], atol=1e-3, rtol=1e-4)
    spec = log_mel_segments(wave)
    assert spec.shape == (2, 17, 128, 66)
    close(spec, io["out.audio.logmel_norm"])


def test_ast_states(model, io):
    ast = model.afeat_extractor.ast
    spec = io["out.audio.logmel_norm"][:1, 0]  # sample 0, segment 0
    with torch.no_grad():
        close(ast.embeddings.patch_embeddings(spec), io["out.audio.seg0.patch_tokens"])
        emb = ast.embeddings(spec)
        close(emb, io["out.audio.seg0.embeddings"])
        close(ast.encoder.layer[0](emb), io["out.audio.seg0.after_layer0"])
        close(ast(spec), io["out.audio.seg0.last_hidden_state"])


def test_visual_states(model, io):
    vf = model.vfeat_extractor
    x = model.to_model_input(frames_224(io)[:1, :16]).permute(0, 2, 1, 3, 4)
    with torch.no_grad():
        close(vf.patch_embed_3d(x), io["out.visual.seg0.patch_tokens"])
        h = vf.embed(x)
        for block in vf.blocks:
            h = block(h, vf.cfg.time_steps, vf.cfg.grid ** 2)
        close(h, io["out.visual.seg0.after_last_block"])


def test_features(features, io):
    visual, audio = features
    close(visual, io["out.visual_features"])
    close(audio, io["out.audio_features"])


@pytest.mark.parametrize("window", ["first", "last"])
def test_sync_transformer(model, features, io, window):
    visual, audio = features
    (a, b) = desync_windows(visual.shape[1])[0 if window == "first" else 1]
    key = f"out.{window}"
    with torch.no_grad():
        v = model.vproj(visual[:, a:b])
        au = model.aproj(audio[:, a:b])
        close(v, io[f"{key}.vproj"])
        close(au, io[f"{key}.aproj"])
        tr = model.transformer
        tokens = tr.tokens(v.flatten(1, 2), au.flatten(1, 2))
        close(tokens, io[f"{key}.tokens"])
        h = tr.blocks[0](tokens)
        close(h, io[f"{key}.after_block0"])
        for block in tr.blocks[1:]:
            h = block(h)
        close(tr.ln_f(h), io[f"{key}.ln_f"])
    logits = model.window_logits(visual[:, a:b], audio[:, a:b])
    close(logits, io[f"{key}.logits"])
    close(logits.softmax(-1), io[f"{key}.probs"])
    pred = logits.argmax(-1)
    assert torch.equal(pred, io[f"{key}.pred_idx"])
    assert torch.equal(OFFSET_GRID[pred], io[f"{key}.pred_offset_sec"])


def test_desync_number(model, features, io):
    assert torch.equal(OFFSET_GRID, io["out.offset_grid"])
    scores = pair_window_scores(model, *features)  # (2 windows, B)
    assert torch.equal(scores.flatten().double(), io["out.desync_scores"])
    assert desync(scores) == pytest.approx(float(io["out.desync"]), abs=1e-12)


def test_desync_needs_14_segments(model, features):
    visual, audio = features
    with pytest.raises(FoleyError, match="at least 14"):
        pair_window_scores(model, visual[:, :13], audio[:, :13])


def test_file_round_trip_and_visual_only_error(tmp_path, io):
    weights = parity_data.weights(NAME)
    full = tmp_path / "synchformer_sync_tiny.safetensors"
    save_file(weights, str(full), metadata={f"{k}_heads": str(v) for k, v in HEADS.items()})
    built = build_synchformer_sync(full)
    logits = built.window_logits(*[f[:, :14] for f in (built.encode_segments(frames_224(io)),
                                                       built.encode_audio(io["in.wav_16k"]))])
    close(logits, io["out.first.logits"])

    visual_only = tmp_path / "mmaudio_synchformer_visual.pth"
    torch.save({k: v for k, v in weights.items() if k.startswith("vfeat_extractor.")}, str(visual_only))
    with pytest.raises(CheckpointError) as err:
        build_synchformer_sync(visual_only)
    text = str(err.value)
    assert "mmaudio_synchformer_visual.pth" in text and "afeat_extractor.*" in text
    assert "transformer.*" in text and "only the visual branch" in text and "synchformer_state_dict.pth" in text


def test_desync_verifier_scores_a_batch_like_av_benchmark(model, io):
    from foley_core.search.verifiers import SynchformerDesyncVerifier, VerifierContext, combine

    # one video for both candidates: item 0's frames; the candidates are the two golden waveforms
    frames = frames_224(io)
    verifier = SynchformerDesyncVerifier(model, frames[0], weight=2.0)
    wave = io["in.wav_16k"]
    windows = verifier.window_scores(wave.numpy(), 16000)
    visual = model.encode_segments(frames[:1]).expand(2, -1, -1, -1)
    expected = pair_window_scores(model, visual, model.encode_audio(wave)).double().numpy()
    assert windows.shape == (2, 2) and (windows == expected).all()
    scores = verifier.score(wave.numpy(), 16000)
    assert scores == pytest.approx(1.0 - expected.mean(axis=0) / 2.0, abs=1e-12)
    assert ((scores >= 0) & (scores <= 1)).all()
    # batching across candidates does not change a candidate's score
    alone = [verifier.score(wave[i:i + 1].numpy(), 16000)[0] for i in range(2)]
    assert alone == pytest.approx(list(scores), abs=1e-12)
    # combined with its weight, through the ordinary search interface
    parts = combine(verifier).score_parts(wave.numpy(), 16000, VerifierContext(duration_s=5.76))
    assert parts["synchformer_desync"] == pytest.approx(scores, abs=1e-12)
    assert parts["total"] == pytest.approx(2.0 * scores, abs=1e-12)


def test_desync_verifier_refuses_short_clips(model, io):
    from foley_core.search.verifiers import SynchformerDesyncVerifier, VerifierContext

    verifier = SynchformerDesyncVerifier(model, frames_224(io)[0])
    with pytest.raises(FoleyError, match="at least 4.8 s"):
        verifier.score(io["in.wav_16k"].numpy(), 16000, VerifierContext(duration_s=4.0))


def test_full_size_model_has_exactly_the_official_keys():
    """Built on the meta device from the real file's key list (manifests/synchformer_full.json): the
    strict load of synchformer_state_dict.pth needs exactly these 513 names and shapes."""
    import json
    from pathlib import Path

    from foley_core.models.synchformer_sync.model import full_configs

    data = json.loads((Path(parity_data.PARITY).parent / "manifests" / "synchformer_full.json").read_text())
    want = {k: tuple(shape) for k, shape, _ in data["keys"]}
    assert len(want) == data["num_tensors"] == 513
    sd = {k: torch.empty(shape, device="meta") for k, shape in want.items()}
    visual, ast, sync = full_configs(sd)
    assert (visual.num_heads, visual.depth, ast.heads, ast.layers, sync.heads, sync.layers) == (12, 12, 12, 12, 8, 3)
    with torch.device("meta"):
        model = SynchformerSync(visual, ast, sync)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == want
    assert sum(v.numel() for v in model.state_dict().values()) == data["num_elements"]
