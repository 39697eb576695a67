"""The wav2clip verifier on the `wav2clip` package's real ResNetExtractor and a real open_clip CLIP,
both with random weights written to a models folder in the official key layouts (the real weights
are not available here): it loads weights-only, scores a batch exactly as one clip at a time (and
as the package's own forward does for one clip), and refuses missing or wrong files by name."""

import argparse

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foley_core.errors import CheckpointError, FoleyError, MediaError
from foley_core.models.wav2clip import (CLIP_FILE, SAMPLE_RATE, WAV2CLIP_FILE, embed_audio, load_clip_b32,
                                        load_wav2clip)
from foley_core.search.verifiers import VerifierContext, Wav2ClipVerifier, combine
from harness.wav2clip_files import SMALL_CLIP, clip_state_dict, wav2clip_state_dict, write_wav2clip_files

FPS = 25.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "wav2clip"
    write_wav2clip_files(folder, WAV2CLIP_FILE, CLIP_FILE)
    return folder


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(0, 256, (50, 3, 224, 224), dtype=np.uint8))  # 2 s at 25 fps


@pytest.fixture(scope="module")
def verifier(models, frames):
    return Wav2ClipVerifier.from_files(models / WAV2CLIP_FILE, models / CLIP_FILE, frames, FPS, weight=0.5)


def sounds(n=4, seconds=1.5, rate=SAMPLE_RATE, seed=0):
    """Different sounds: noise bursts and tones of various pitch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    out = [0.3 * np.sin(2 * np.pi * (200 + 300 * k) * t) * np.exp(-3 * t) + 0.05 * rng.standard_normal(t.size)
           for k in range(n)]
    return np.stack(out).astype(np.float32)


def test_release_layout_loads_into_the_package_extractor(models):
    model = load_wav2clip(models / WAV2CLIP_FILE)
    saved = torch.load(models / WAV2CLIP_FILE, weights_only=True)
    assert torch.equal(model.encoder.conv1.weight, saved["audio_encoder.conv1.weight"])
    assert torch.equal(model.encoder.layer4[1].bn2.running_var, saved["audio_encoder.layer4.1.bn2.running_var"])
    assert torch.equal(model.transform.sequential[3].weight, saved["audio_transform.sequential.3.weight"])
    assert not model.training and not model.transform.training  # frozen: dropout and batch norm in eval mode


@pytest.mark.parametrize("wrap", ["state_dict", "prefix"])
def test_nested_or_prefixed_copies_give_the_same_embeddings(models, tmp_path, wrap):
    sd = torch.load(models / WAV2CLIP_FILE, weights_only=True)
    data = {"state_dict": sd, "epoch": 3} if wrap == "state_dict" else {f"model.{k}": v for k, v in sd.items()}
    torch.save(data, tmp_path / "copy.pt")
    audio = torch.from_numpy(sounds(2))
    assert torch.equal(embed_audio(load_wav2clip(tmp_path / "copy.pt"), audio),
                       embed_audio(load_wav2clip(models / WAV2CLIP_FILE), audio))


def test_files_are_read_weights_only(models, tmp_path):
    sd = torch.load(models / WAV2CLIP_FILE, weights_only=True)
    torch.save({**sd, "args": argparse.Namespace(lr=1e-3)}, tmp_path / "pickled.pt")  # not a plain weights file
    with pytest.raises(CheckpointError, match="weights_only") as error:
        load_wav2clip(tmp_path / "pickled.pt")
    assert "pickled.pt" in str(error.value) and str(tmp_path) in str(error.value)


def test_batch_embedding_matches_the_package_forward_one_clip_at_a_time(models):
    model = load_wav2clip(models / WAV2CLIP_FILE)
    quiet = 1e-3 * np.random.default_rng(5).standard_normal((1, sounds(1).shape[1]))  # other level statistics
    audio = torch.from_numpy(np.concatenate([sounds(3), quiet]).astype(np.float32))
    batched = embed_audio(model, audio)
    with torch.no_grad():
        single = torch.cat([torch.nn.functional.normalize(model(audio[i:i + 1]), dim=-1) for i in range(4)])
    assert batched.shape == (4, 512)
    torch.testing.assert_close(batched, single, atol=2e-5, rtol=1e-4)
    # the package's own batch forward standardises over the whole batch, so it differs: why we don't use it
    with torch.no_grad():
        package_batch = torch.nn.functional.normalize(model(audio), dim=-1)
    assert (package_batch - single).abs().max() > 1e-3


def test_scores_are_per_candidate_cosines(verifier):
    audio = sounds(4)
    batch = verifier.score(audio, SAMPLE_RATE)
    one_by_one = np.array([verifier.score(audio[i:i + 1], SAMPLE_RATE)[0] for i in range(4)])
    assert batch.shape == (4,) and batch.dtype == np.float64
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)
    assert np.all(np.abs(batch) <= 1.0) and np.ptp(batch) > 1e-4  # cosines, and they tell sounds apart
    # identical audio → identical score, wherever it sits in the batch and whatever is beside it
    same = verifier.score(np.stack([audio[2], audio[0], audio[2]]), SAMPLE_RATE)
    assert same[0] == same[2] and abs(same[0] - batch[2]) < 1e-5
    # the cosine against the mean frame embedding, computed here independently
    emb = embed_audio(verifier.model, torch.from_numpy(audio))
    video = torch.nn.functional.normalize(verifier.frames.mean(0), dim=0)
    np.testing.assert_allclose(batch, (emb @ video).double().numpy(), atol=1e-6)


def test_other_rates_channels_and_duration(verifier):
    audio = sounds(2, seconds=1.5)
    base = verifier.score(audio, SAMPLE_RATE)
    stereo = np.stack([audio, audio], axis=1)  # [B, 2, T]: averaged to mono
    np.testing.assert_allclose(verifier.score(stereo, SAMPLE_RATE), base, atol=1e-6)
    import librosa

    at_44k = librosa.resample(audio, orig_sr=SAMPLE_RATE, target_sr=44100)
    assert np.all(np.abs(verifier.score(at_44k, 44100) - base) < 0.05)  # resampled back to 16 kHz
    # duration: the audio and the frames after it are left out
    short = verifier.score(audio, SAMPLE_RATE, VerifierContext(duration_s=0.5))
    np.testing.assert_allclose(short, verifier.score(audio[:, :8000], SAMPLE_RATE, VerifierContext(duration_s=0.5)))
    first = torch.nn.functional.normalize(verifier.frames[verifier.times < 0.5].mean(0), dim=0)
    emb = embed_audio(verifier.model, torch.from_numpy(audio[:, :8000]))
    np.testing.assert_allclose(short, (emb @ first).double().numpy(), atol=1e-6)
    with pytest.raises(FoleyError, match="at least 0.05 s"):
        verifier.score(audio[:, :400], SAMPLE_RATE)


def test_frames_are_thinned_to_8_fps_and_the_verifier_combines(verifier, frames):
    assert verifier.times.tolist() == pytest.approx([k * 3 / FPS for k in range(17)])  # 25 fps, every 3rd
    assert verifier.frames.shape == (17, 512)
    assert torch.allclose(verifier.frames.norm(dim=-1), torch.ones(17), atol=1e-5)
    assert any("not ViT-B/32-shaped" in note for note in verifier.notes)
    audio = sounds(3)
    parts = combine(verifier).score_parts(audio, SAMPLE_RATE)
    np.testing.assert_allclose(parts["total"], 0.5 * parts["wav2clip"])
    assert verifier.describe() == "wav2clip ×0.5"


def test_missing_files_are_named_with_their_folder(models, frames, tmp_path):
    with pytest.raises(CheckpointError) as error:
        Wav2ClipVerifier.from_files(tmp_path / WAV2CLIP_FILE, models / CLIP_FILE, frames, FPS)
    message = str(error.value)
    assert WAV2CLIP_FILE in message and str(tmp_path) in message and "does not exist" in message
    with pytest.raises(CheckpointError) as error:
        Wav2ClipVerifier.from_files(models / WAV2CLIP_FILE, tmp_path / CLIP_FILE, frames, FPS)
    message = str(error.value)
    assert CLIP_FILE in message and str(tmp_path) in message and "ViT-B/32" in message


def write_torchscript(path):
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.proj(x)

    torch.jit.trace(Tiny(), torch.zeros(1, 4)).save(str(path))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
def test_wrong_files_in_either_slot_are_refused_clearly(models, tmp_path):
    # the CLIP picked as the Wav2CLIP file, and the other way round
    with pytest.raises(CheckpointError, match=r"is not a Wav2CLIP file.*looks like a CLIP file"):
        load_wav2clip(models / CLIP_FILE)
    with pytest.raises(CheckpointError, match=r"is not a CLIP file"):
        load_clip_b32(models / WAV2CLIP_FILE)
    # a Wav2CLIP without the projection into CLIP space (e.g. trained with plain clip_loss)
    sd = {k: v for k, v in wav2clip_state_dict().items() if not k.startswith("audio_transform.")}
    torch.save(sd, tmp_path / "no_transform.pt")
    with pytest.raises(CheckpointError, match="no audio_transform"):
        load_wav2clip(tmp_path / "no_transform.pt")
    # a Wav2CLIP whose ResNet has the wrong shapes
    sd = wav2clip_state_dict()
    sd["audio_encoder.conv1.weight"] = torch.zeros(32, 1, 7, 7)
    torch.save(sd, tmp_path / "wrong_shape.pt")
    with pytest.raises(CheckpointError, match=r"wrong_shape\.pt.*does not fit Wav2CLIP"):
        load_wav2clip(tmp_path / "wrong_shape.pt")
    # a CLIP of another embedding size (e.g. MMAudio's 1024-d DFN5B)
    other = {**SMALL_CLIP, "embed_dim": 256}
    save_file(clip_state_dict(other), str(tmp_path / "clip256.safetensors"))
    with pytest.raises(CheckpointError, match=r"clip256\.safetensors.*into 256 dimensions"):
        load_clip_b32(tmp_path / "clip256.safetensors")
    # OpenAI's TorchScript release format: refused before anything runs
    write_torchscript(tmp_path / "ViT-B-32.pt")
    with pytest.raises(CheckpointError, match=r"ViT-B-32\.pt.*TorchScript.*open_clip_model\.safetensors"):
        load_clip_b32(tmp_path / "ViT-B-32.pt")


def test_openai_state_dict_extras_are_dropped(models, tmp_path):
    sd = clip_state_dict()
    sd.update(input_resolution=torch.tensor(224), context_length=torch.tensor(77), vocab_size=torch.tensor(500))
    torch.save(sd, tmp_path / "openai.pt")
    clip, _ = load_clip_b32(tmp_path / "openai.pt")
    reference, _ = load_clip_b32(models / CLIP_FILE)
    x = torch.randint(0, 256, (1, 2, 3, 224, 224), dtype=torch.uint8)
    assert torch.equal(clip.encode_video_frames(x), reference.encode_video_frames(x))


def test_frames_of_the_wrong_size_are_refused(models):
    with pytest.raises(MediaError, match=r"\[T, 3, 224, 224\]"):
        Wav2ClipVerifier.from_files(models / WAV2CLIP_FILE, models / CLIP_FILE,
                                    torch.zeros(5, 3, 384, 384, dtype=torch.uint8), 8.0)
