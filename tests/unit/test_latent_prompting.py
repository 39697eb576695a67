"""Latent prompting on the unchanged backbone (AudioIM prompt-only inference) and reference encoding."""

from __future__ import annotations

import pytest
import torch

from foley_core.errors import FoleyError
from foley_core.features import VisualFeatures
from foley_core.generation import GenerationSettings, generate
from foley_core.models.mmaudio import MMAudioNetwork, NetworkConfig
from foley_core.models.mmaudio.sequence import sequence_lengths, sync_to_latent_index
from foley_core.models.vae import MelVAE, VAEConfig
from foley_core.sampling.latent_prompt import generate_with_prompt, plan_prompt_window
from foley_core.style import encode_reference, prompt_latent_length

MODE = "16k"
LATENT_DIM = 8
CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_network(seed: int = 0) -> MMAudioNetwork:
    """Random tiny net with non-trivial statistics and empty features (so every path matters)."""
    torch.manual_seed(seed)
    net = MMAudioNetwork(NetworkConfig(latent_dim=LATENT_DIM, hidden_dim=64, depth=2, fused_depth=1, num_heads=1,
                                       clip_dim=16, sync_dim=16, text_dim=16, v2=True, mode=MODE))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        net.latent_mean.copy_(torch.randn_like(net.latent_mean))
        net.latent_std.copy_(0.5 + torch.rand_like(net.latent_std))
        net.empty_clip_feat.copy_(torch.randn_like(net.empty_clip_feat))
        net.empty_sync_feat.copy_(torch.randn_like(net.empty_sync_feat))
    return net.eval()


def random_features(duration_s: float, seed: int = 1) -> VisualFeatures:
    lengths = sequence_lengths(duration_s, MODE)
    g = torch.Generator().manual_seed(seed)
    return VisualFeatures(clip_f=torch.randn(1, lengths.clip, 16, generator=g),
                          sync_f=torch.randn(1, lengths.sync, 16, generator=g),
                          text_f=torch.randn(1, 77, 16, generator=g),
                          negative_text_f=torch.randn(1, 77, 16, generator=g), duration_s=duration_s)


@pytest.fixture(scope="module")
def net() -> MMAudioNetwork:
    return tiny_network()


@pytest.fixture(scope="module")
def vae() -> MelVAE:
    torch.manual_seed(3)
    return MelVAE(VAEConfig(n_mels=80, embed_dim=LATENT_DIM, hidden_dim=8)).eval()


SETTINGS = GenerationSettings(seed=7, steps=3, cfg_strength=4.5, batch_size=2)


def test_prompt_span_of_final_state_is_the_prompt(net):
    features = random_features(2.0)
    prompt = torch.randn(1, 24, LATENT_DIM)
    states = []
    target = generate_with_prompt(net, features, MODE, SETTINGS, prompt, CPU,
                                  callback=lambda k, n, x, x1: states.append(x))
    final = states[-1]
    n_target = sequence_lengths(2.0, MODE).latent
    assert final.shape == (2, 24 + n_target, LATENT_DIM) and target.shape == (2, n_target, LATENT_DIM)
    # Normalised: bit for bit, for every batch item.
    assert torch.equal(final[:, :24], net.normalize(prompt).expand(2, -1, -1))
    # Un-normalised: the reference latent up to fp32 rounding of normalise/unnormalise.
    torch.testing.assert_close(net.unnormalize(final[:, :24]), prompt.expand(2, -1, -1), atol=1e-5, rtol=1e-5)
    # The returned target is the rest of that state, and the prompt changed it.
    torch.testing.assert_close(target, net.unnormalize(final[:, 24:]))
    plain, _ = generate(net, features, MODE, SETTINGS, device=CPU)
    assert not torch.allclose(plain, target)


def test_intermediate_prompt_span_follows_the_flow_path(net):
    """Before each evaluation the span is (1 - t)·x0 + t·prompt of the SAME noise."""
    features = random_features(1.0)
    prompt = torch.randn(1, 10, LATENT_DIM)
    settings = GenerationSettings(seed=5, steps=4, cfg_strength=1.5, batch_size=1)
    seen = []
    generate_with_prompt(net, features, MODE, settings, prompt, CPU, callback=lambda k, n, x, x1: seen.append(x))
    from foley_core.sampling.flow import draw_noise

    x0 = draw_noise(1, seen[0].shape[1], LATENT_DIM, settings.seed)
    for k, x in enumerate(seen):  # state after step k, i.e. at t_{k+1}
        t = (k + 1) / settings.steps
        torch.testing.assert_close(x[:, :10], (1 - t) * x0[:, :10] + t * net.normalize(prompt))


def test_zero_length_prompt_is_plain_generation(net):
    features = random_features(1.5)
    plain, _ = generate(net, features, MODE, SETTINGS, device=CPU)
    prompted = generate_with_prompt(net, features, MODE, SETTINGS, torch.zeros(1, 0, LATENT_DIM), CPU)
    assert torch.equal(plain, prompted)


def test_prompt_span_gets_the_empty_video_features(net, monkeypatch):
    features = random_features(3.0)
    n_prompt = 31  # ~1 s at 16k
    calls = []
    original = net.preprocess_conditions

    def spy(clip_f, sync_f, text_f):
        calls.append((clip_f, sync_f, text_f))
        return original(clip_f, sync_f, text_f)

    monkeypatch.setattr(net, "preprocess_conditions", spy)
    generate_with_prompt(net, features, MODE, GenerationSettings(seed=1, steps=2, batch_size=1),
                         torch.randn(1, n_prompt, LATENT_DIM), CPU)
    clip, sync, _ = calls[0]  # the conditional branch (the unconditional one is all-empty)
    target = sequence_lengths(3.0, MODE)
    window = plan_prompt_window(target, n_prompt)
    assert window.clip_prompt > 0 and window.sync_prompt > 0 and window.sync_prompt % 8 == 0
    assert clip.shape[1] == window.clip == net.clip_seq_len and sync.shape[1] == window.sync == net.sync_seq_len
    assert torch.equal(clip[:, :window.clip_prompt], net.empty_clip_feat.expand(1, window.clip_prompt, -1))
    assert torch.equal(sync[:, :window.sync_prompt], net.empty_sync_feat.expand(1, window.sync_prompt, -1))
    assert torch.equal(clip[:, window.clip_prompt:], features.clip_f)
    assert torch.equal(sync[:, window.sync_prompt:], features.sync_f)
    # The target's first sync token lands on (about) the first target latent after upsampling.
    index = sync_to_latent_index(window.sync, window.latent)
    first_real = int((index >= window.sync_prompt).nonzero()[0])
    assert abs(first_real - n_prompt) <= 3
    # Unconditional branch: empty video everywhere.
    uncond_clip = calls[1][0]
    assert torch.equal(uncond_clip, net.empty_clip_feat.expand(1, window.clip, -1))


def test_prompt_must_match_the_network(net):
    features = random_features(1.0)
    with pytest.raises(FoleyError, match="channels|shape"):
        generate_with_prompt(net, features, MODE, SETTINGS, torch.randn(1, 5, LATENT_DIM + 1), CPU)
    with pytest.raises(FoleyError, match="NaN"):
        generate_with_prompt(net, features, MODE, SETTINGS, torch.full((1, 5, LATENT_DIM), float("nan")), CPU)


# ----------------------------------------------------------------------------- encode_reference
def test_encode_reference_shapes_from_44k_stereo(vae):
    sr = 44_100
    t = torch.arange(int(4.0 * sr)) / sr
    stereo = torch.stack([torch.sin(2 * torch.pi * 440 * t), 0.5 * torch.sin(2 * torch.pi * 220 * t)]) * 0.5
    style = encode_reference(vae, stereo, sr, MODE, offset_s=0.5, prompt_s=3.0)
    n = prompt_latent_length(3.0, MODE)
    assert n == 94  # ceil(3 · 16000 / 256 / 2)
    assert style.prompt_latent.shape == (1, n, LATENT_DIM) and style.prompt_latent.dtype == torch.float32
    torch.testing.assert_close(style.acoustic_vector, style.prompt_latent.mean(dim=1))
    assert style.padded_s == 0.0 and style.source_sample_rate == sr and style.prompt_seconds == 3.0
    assert style.active_parts == ("latent_prompt", "acoustic_vector")
    assert style.timbre_embedding is None and style.tempo_embedding is None
    # Same as encoding the mono mix resampled to 16 kHz by hand: the posterior mean, channel-last.
    from foley_core.media.audio import resample
    from foley_core.models.mel import MelConverter

    mono = resample(stereo.mean(0)[int(0.5 * sr):], sr, 16_000)[: n * 512]
    expected = vae.encode(MelConverter(MODE)(mono[None])).mean.transpose(1, 2)
    torch.testing.assert_close(style.prompt_latent, expected, atol=1e-4, rtol=1e-4)
    # The batch form [B, C, T] uses item 0.
    batched = encode_reference(vae, torch.stack([stereo, -stereo]), sr, MODE, offset_s=0.5)
    torch.testing.assert_close(batched.prompt_latent, style.prompt_latent)


def test_encode_reference_pads_short_recordings_with_silence(vae):
    sr = 16_000
    wave = 0.3 * torch.randn(1, sr)  # 1 s, but 3 s asked for
    style = encode_reference(vae, wave, sr, MODE, prompt_s=3.0)
    assert style.prompt_latent.shape == (1, 94, LATENT_DIM)
    assert style.padded_s == pytest.approx(3.008 - 1.0, abs=1e-3)
    padded = torch.nn.functional.pad(wave, (0, 94 * 512 - sr))
    explicit = encode_reference(vae, padded, sr, MODE, prompt_s=3.0)
    torch.testing.assert_close(style.prompt_latent, explicit.prompt_latent)


def test_encode_reference_errors(vae):
    sr = 16_000
    with pytest.raises(FoleyError, match="empty"):
        encode_reference(vae, torch.zeros(1, 0), sr, MODE)
    nan = torch.zeros(1, sr)
    nan[0, 10] = float("nan")
    with pytest.raises(FoleyError, match="NaN"):
        encode_reference(vae, nan, sr, MODE)
    with pytest.raises(FoleyError, match="past the end"):
        encode_reference(vae, torch.zeros(1, sr), sr, MODE, offset_s=1.5)
    with pytest.raises(FoleyError, match="positive"):
        encode_reference(vae, torch.zeros(1, sr), sr, MODE, prompt_s=0.0)
    with pytest.raises(FoleyError, match="mode"):
        encode_reference(vae, torch.zeros(1, sr), sr, "44k")
