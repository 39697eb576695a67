"""Verifiers of the noise search: each scores what it claims on signals whose answer is known,
they combine by weight, and missing CLAP files are named."""

import json

import numpy as np
import pytest
import torch

from foley_core.controls.envelope import rms_envelope
from foley_core.errors import FoleyError
from foley_core.search.verifiers import (ClapVerifier, EnvelopeVerifier, MotionOnsetVerifier, TimbreVerifier,
                                         VerifierContext, check_clap_folder, combine, motion_onsets,
                                         not_implemented, onset_f1)

SR = 16000


def clicks(times, duration=2.0, freq=900.0, seed=0):
    """Decaying tone bursts at `times` (clear onsets)."""
    rng = np.random.default_rng(seed)
    y = 0.001 * rng.standard_normal(int(duration * SR)).astype(np.float32)
    t = np.arange(int(0.15 * SR)) / SR
    burst = (np.sin(2 * np.pi * freq * t) * np.exp(-t * 30)).astype(np.float32)
    for time in times:
        start = int(time * SR)
        y[start:start + burst.size] += burst[: y.size - start]
    return y


def test_envelope_verifier_prefers_the_audio_with_the_target_envelope():
    target_audio = clicks([0.3, 1.2])
    verifier = EnvelopeVerifier(rms_envelope(target_audio, SR))
    scores = verifier.score(np.stack([target_audio, clicks([0.8, 1.6])]), SR)
    assert scores[0] == pytest.approx(1.0, abs=1e-6)  # 1 − E-L1 of identical envelopes
    assert scores[1] < 0.95
    assert EnvelopeVerifier.from_audio(target_audio, SR).score(target_audio[None], SR)[0] == pytest.approx(1.0)


def test_timbre_verifier_prefers_the_same_sound():
    reference = clicks([0.2, 0.9], freq=600.0, seed=1)
    verifier = TimbreVerifier.from_audio(reference, SR)
    same, other = clicks([0.5, 1.5], freq=600.0, seed=2), clicks([0.5, 1.5], freq=3000.0, seed=2)
    scores = verifier.score(np.stack([same, other]), SR)
    assert 0 < scores[1] < scores[0] <= 1
    with pytest.raises(FoleyError, match="silent"):
        TimbreVerifier.from_audio(np.zeros(SR, np.float32), SR)


def test_motion_onsets_find_where_a_moving_square_stops():
    fps, frames = 25, np.zeros((50, 3, 32, 48), np.uint8)
    x = 0
    for k in range(50):  # moves right until frame 20, rests, moves again 30..40, rests
        if k < 20 or 30 <= k < 40:
            x += 1
        frames[k, :, 10:18, x:x + 8] = 255
    times = motion_onsets(frames, fps)
    assert any(abs(t - 20 / fps) <= 0.08 for t in times), times
    assert any(abs(t - 40 / fps) <= 0.08 for t in times), times


def test_motion_onset_verifier_scores_onset_f1():
    verifier = MotionOnsetVerifier([0.3, 1.2])
    scores = verifier.score(np.stack([clicks([0.3, 1.2]), clicks([0.7, 1.6])]), SR, VerifierContext(2.0))
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(0.0)
    assert onset_f1([0.3], [0.3, 1.0]) == pytest.approx(2 / 3)
    assert onset_f1([], []) == 1.0 and onset_f1([0.1], []) == 0.0


def test_combination_is_the_weighted_sum_and_names_each_part():
    audio = np.stack([clicks([0.3, 1.2]), clicks([0.7, 1.6])])
    env = EnvelopeVerifier(rms_envelope(audio[0], SR), weight=2.0)
    onsets = MotionOnsetVerifier([0.3, 1.2], weight=0.5)
    second = MotionOnsetVerifier([0.7], weight=1.0)
    combined = combine(combine(env, onsets), None, second)  # nested combinations flatten
    parts = combined.score_parts(audio, SR, VerifierContext(2.0))
    assert set(parts) == {"total", "envelope", "motion_onsets", "motion_onsets#2"}
    expected = 2.0 * parts["envelope"] + 0.5 * parts["motion_onsets"] + 1.0 * parts["motion_onsets#2"]
    assert np.allclose(parts["total"], expected)
    assert np.allclose(combined.score(audio, SR, VerifierContext(2.0)), expected)
    assert "envelope ×2" in combined.describe()
    with pytest.raises(FoleyError, match="No verifier"):
        combine(None)


def test_missing_clap_files_are_named(tmp_path):
    with pytest.raises(FoleyError, match="does not exist") as error:
        check_clap_folder(tmp_path / "clap")
    assert str(tmp_path / "clap") in str(error.value)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FoleyError) as error:
        ClapVerifier(tmp_path, "a knock")
    message = str(error.value)
    assert "model.safetensors or pytorch_model.bin" in message
    assert "tokenizer.json" in message and "preprocessor_config.json" in message
    assert "lacks config.json" not in message  # present, so not listed


def test_unimplemented_verifiers_say_so():
    message = str(not_implemented("imagebind"))
    assert "is not implemented" in message and "clap" in message and "wav2clip" in message


def write_tiny_clap(folder):
    """A random tiny CLAP written by transformers' own save_pretrained (local folder, no network)."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for i, ch in enumerate("abcdefghijklmnopqrstuvwxyz"):
        vocab[ch], vocab["Ġ" + ch] = 5 + i, 31 + i
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    features = ClapFeatureExtractor(feature_size=64, sampling_rate=48000, max_length_s=2, truncation="rand_trunc",
                                    padding="repeatpad", fft_window_size=1024, hop_length=480)
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(str(folder))
    config = ClapConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=80),
        audio_config=dict(spec_size=256, num_mel_bins=64, patch_embeds_hidden_size=16, depths=[1, 1],
                          num_attention_heads=[1, 1], window_size=4, hidden_size=32, patch_stride=[4, 4]),
        projection_dim=16)
    torch.manual_seed(0)
    ClapModel(config).save_pretrained(str(folder))


@pytest.mark.slow
def test_clap_verifier_scores_a_batch_from_a_local_folder(tmp_path):
    write_tiny_clap(tmp_path / "clap")
    verifier = ClapVerifier(tmp_path / "clap", weight=0.5)
    audio = np.stack([clicks([0.3]), clicks([1.0], freq=2000.0)])
    scores = verifier.score(audio, SR, VerifierContext(prompt="a wood knock"))
    assert scores.shape == (2,) and np.all(np.abs(scores) <= 1.0 + 1e-6)
    single = verifier.score(audio[1:], SR, VerifierContext(prompt="a wood knock"))
    assert single[0] == pytest.approx(scores[1], abs=1e-4)  # batching does not change a score
    with pytest.raises(FoleyError, match="needs a text"):
        verifier.score(audio, SR, VerifierContext(prompt=""))
