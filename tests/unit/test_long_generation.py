"""Long videos: windows chained by latent prompting, decoded per window and crossfaded."""

from __future__ import annotations

import pytest
import torch

from foley_core.errors import FoleyError
from foley_core.generation import GenerationSettings, generate
from foley_core.long_generation import decode_long, generate_long, plan_long_generation
from foley_core.models.griffin_lim import GriffinLimVocoder
from foley_core.models.mel import MEL_16K
from foley_core.models.mmaudio.sequence import MIN_DURATION_S, sequence_lengths
from foley_core.models.vae import MelVAE, VAEConfig

from test_latent_prompting import LATENT_DIM, MODE, random_features, tiny_network

CPU = torch.device("cpu")
SR = 16_000
DURATION = 30.0


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def net():
    return tiny_network()


@pytest.fixture(scope="module")
def long_run(net):
    """30 s video, 2 steps; records every window's final sampler state and the progress calls."""
    features = random_features(DURATION)
    finals, progress = [], []

    def callback(k, n, x, x1):
        if k == n - 1:
            finals.append(x.clone())

    latents, plan = generate_long(net, features, MODE, GenerationSettings(seed=3, steps=2), device=CPU,
                                  callback=callback, progress=lambda done, total: progress.append((done, total)))
    return latents, plan, finals, progress


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(3)
    vae = MelVAE(VAEConfig(n_mels=80, embed_dim=LATENT_DIM, hidden_dim=8)).eval()
    vae.data_mean.fill_(-3.0)  # a quiet log10 mel, so Griffin-Lim output stays far from clipping
    vae.data_std.fill_(0.5)
    return vae, GriffinLimVocoder(MEL_16K, n_iter=4)


def test_plan_covers_the_video_in_backbone_windows():
    plan = plan_long_generation(DURATION, MODE, window_s=8.0, overlap_s=1.0)
    window_latents = sequence_lengths(8.0, MODE).latent
    assert plan.latent == sequence_lengths(DURATION, MODE).latent and plan.samples == round(DURATION * SR)
    assert len(plan.windows) == 5 and plan.overlap == 32
    first, *rest = plan.windows
    assert (first.start, first.prompt, first.end) == (0, 0, window_latents)
    assert plan.windows[-1].end == plan.latent
    for before, window in zip(plan.windows, rest):
        assert window.prompt == plan.overlap and window.start - window.prompt >= 0
        assert before.start < window.start <= before.end  # no gap, always forward
        assert window.prompt + window.target.latent <= window_latents
        assert window.target.latent == window.end - window.start
        assert window.target.duration_s >= MIN_DURATION_S
        assert window.sync_offset % 8 == 0  # whole Synchformer segments
    total = sequence_lengths(DURATION, MODE)
    last = plan.windows[-1]
    assert last.sync_offset + last.target.sync <= total.sync and last.clip_offset + last.target.clip <= total.clip


def test_plan_keeps_the_last_target_long_enough():
    plan = plan_long_generation(8.1, MODE)  # 0.1 s past one window
    assert len(plan.windows) == 2
    last = plan.windows[1]
    assert last.target.duration_s >= MIN_DURATION_S and last.end == plan.latent
    assert last.start <= plan.windows[0].end
    with pytest.raises(FoleyError, match="too little room"):
        plan_long_generation(30.0, MODE, window_s=2.0, overlap_s=1.0)


def test_long_generation_chains_windows(long_run, net):
    latents, plan, finals, progress = long_run
    assert latents.shape == (1, plan.latent, LATENT_DIM) and bool(torch.isfinite(latents).all())
    assert progress == [(k + 1, 5) for k in range(5)]
    assert len(finals) == len(plan.windows)
    for i, (window, state) in enumerate(zip(plan.windows, finals)):
        assert state.shape[1] == window.prompt + window.target.latent
        # The prompt of window k is the output just before its target ...
        prompt = latents[:, window.start - window.prompt:window.start]
        torch.testing.assert_close(state[:, :window.prompt], net.normalize(prompt), atol=1e-5, rtol=1e-5)
        # ... and its target is the output up to where the next window takes over.
        keep = (plan.windows[i + 1].start if i + 1 < len(plan.windows) else window.end) - window.start
        torch.testing.assert_close(net.unnormalize(state[:, window.prompt:window.prompt + keep]),
                                   latents[:, window.start:window.start + keep])


def test_short_video_is_plain_generation(net):
    features = random_features(5.0)
    settings = GenerationSettings(seed=11, steps=2, batch_size=2)
    long_latents, plan = generate_long(net, features, MODE, settings, device=CPU)
    plain, _ = generate(net, features, MODE, settings, device=CPU)
    assert len(plan.windows) == 1 and torch.equal(long_latents, plain)


def test_reference_prompt_starts_the_first_window(net):
    features = random_features(10.0)
    reference = torch.randn(1, 47, LATENT_DIM)  # ~1.5 s
    finals = []
    latents, plan = generate_long(net, features, MODE, GenerationSettings(seed=2, steps=2), device=CPU,
                                  reference=reference,
                                  callback=lambda k, n, x, x1: finals.append(x) if k == n - 1 else None)
    first = plan.windows[0]
    assert first.from_reference and first.prompt == 47 and first.start == 0
    assert first.prompt + first.target.latent <= sequence_lengths(8.0, MODE).latent
    assert torch.equal(finals[0][:, :47], net.normalize(reference))
    assert latents.shape[1] == plan.latent


def test_callback_interrupt_stops_generation(net):
    progress = []

    class Stop(Exception):
        pass

    def callback(k, n, x, x1):
        if len(progress) == 1:  # during the second window
            raise Stop

    with pytest.raises(Stop):
        generate_long(net, random_features(DURATION), MODE, GenerationSettings(seed=3, steps=2), device=CPU,
                      callback=callback, progress=lambda done, total: progress.append(done))
    assert progress == [1]


def seam_report(wave: torch.Tensor, pos: int, sample_rate: int = SR) -> tuple[float, float, float]:
    """(jump at pos, local range, largest other step) over the 10 ms around `pos`."""
    half = sample_rate // 200
    region = wave[pos - half:pos + half]
    steps = region.diff().abs()
    jump = float((wave[pos] - wave[pos - 1]).abs())
    others = torch.cat([steps[:half - 3], steps[half + 2:]])  # all steps but the 4 next to the seam
    return jump, float(region.max() - region.min()), float(others.max())


def assert_no_click(wave: torch.Tensor, pos: int) -> None:
    jump, local_range, other = seam_report(wave, pos)
    assert jump <= local_range, f"seam at {pos}: jump {jump:.3e} > local range {local_range:.3e}"
    assert jump <= 1.5 * other, f"seam at {pos}: jump {jump:.3e} vs {other:.3e} elsewhere in 10 ms"
    assert local_range > 0, f"seam at {pos}: silence (a gap)"


def test_seam_check_catches_a_click():
    t = torch.arange(SR) / SR
    wave = 0.5 * torch.sin(2 * torch.pi * 110 * t)
    assert_no_click(wave, 8000)
    clicked = wave.clone()
    clicked[8000:] += 0.2
    with pytest.raises(AssertionError, match="elsewhere"):
        assert_no_click(clicked, 8000)


def test_decoded_long_audio_is_exact_and_seamless(long_run, codec):
    latents, plan, _, _ = long_run
    vae, vocoder = codec
    wave = decode_long(vae, vocoder, latents, plan)
    assert wave.shape == (1, 1, round(DURATION * SR)) and bool(torch.isfinite(wave).all())
    assert float(wave.abs().max()) < 0.9  # far from clipping: the seam check sees the real signal
    signal = wave[0, 0]
    per = plan.samples_per_latent
    for window in plan.windows[1:]:
        for pos in (window.decode_start * per, window.start * per):  # both ends of the crossfade
            assert_no_click(signal, pos)


class SmoothCodec(torch.nn.Module):
    """Stand-in VAE + vocoder whose waveform is a smooth function of latent channel 0 (linear
    interpolation), so sample-level seams are visible and the ideal output is known."""

    def __init__(self, hop: int = 256):
        super().__init__()
        self.cfg = VAEConfig(n_mels=80, embed_dim=LATENT_DIM, hidden_dim=8)
        self.hop = hop
        self.register_buffer("anchor", torch.zeros(()))

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, C, N) -> "mel" (B, C, 2N)
        return z.repeat_interleave(2, dim=-1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # "mel" -> (B, 1, 2N·hop)
        line = mel[:, :1] * 0.1
        return torch.nn.functional.interpolate(line, scale_factor=self.hop, mode="linear", align_corners=False)


def test_crossfade_assembly_matches_one_long_decode():
    """With coherent windows, the per-window decode + crossfade equals decoding everything at once
    (away from the window edges, where the stand-in clamps), and seams are click-free."""
    plan = plan_long_generation(DURATION, MODE)
    g = torch.Generator().manual_seed(0)
    walk = torch.randn(1, plan.latent, LATENT_DIM, generator=g).cumsum(1) * 0.1  # slowly varying
    codec = SmoothCodec()
    wave = decode_long(codec, codec, walk, plan)[0, 0]
    whole = codec(codec.decode(walk.transpose(1, 2)))[0, 0, :plan.samples].clamp(-1, 1)
    per = plan.samples_per_latent
    for window in plan.windows[1:]:
        for pos in (window.decode_start * per, window.start * per):
            assert_no_click(wave, pos)
    edges = {p for w in plan.windows for p in (w.decode_start * per, w.end * per)}
    interior = torch.ones(plan.samples, dtype=torch.bool)
    for p in edges:
        interior[max(0, p - per):p + per] = False
    torch.testing.assert_close(wave[interior], whole[interior], atol=1e-6, rtol=0)
