"""The search's sampler is the Flow Sampler's computation with the noise given from outside, and
a whole search runs on a tiny network + VAE with one sampler batch per round."""

import numpy as np
import torch

from foley_core.generation import GenerationSettings, generate
from foley_core.models.griffin_lim import GriffinLimVocoder
from foley_core.models.mel import MEL_SETTINGS
from foley_core.sampling.flow import draw_noise
from foley_core.sampling.latent_prompt import generate_with_prompt
from foley_core.search import gmds_search
from foley_core.search.sampling import make_sampler, make_scorer
from foley_core.search.verifiers import EnvelopeVerifier, VerifierContext
from test_latent_prompting import CPU, MODE, random_features, tiny_network

SETTINGS = GenerationSettings(seed=3, steps=3, cfg_strength=4.5, batch_size=2)


def test_same_noise_gives_the_flow_samplers_latents():
    net, features = tiny_network(), random_features(2.0)
    expected, _ = generate(net, features, MODE, SETTINGS, device=CPU)
    sampler = make_sampler(net, features, MODE, steps=3, cfg_strength=4.5, device=CPU)
    noise = draw_noise(2, *sampler.noise_shape, SETTINGS.seed)
    assert torch.allclose(sampler(noise), expected, atol=1e-5)


def test_same_noise_gives_the_prompted_latents_with_a_reference():
    net, features = tiny_network(), random_features(2.0)
    prompt = torch.randn(1, 12, net.config.latent_dim)
    expected = generate_with_prompt(net, features, MODE, SETTINGS, prompt, CPU)
    sampler = make_sampler(net, features, MODE, steps=3, cfg_strength=4.5, device=CPU, reference=prompt)
    assert sampler.noise_shape[0] == 12 + expected.shape[1]
    noise = draw_noise(2, *sampler.noise_shape, SETTINGS.seed)
    assert torch.allclose(sampler(noise), expected, atol=1e-5)


def test_search_on_a_tiny_model_batches_each_round_and_is_reproducible():
    from test_latent_prompting import MelVAE, VAEConfig

    torch.manual_seed(0)
    vae = MelVAE(VAEConfig(n_mels=MEL_SETTINGS[MODE].n_mels, embed_dim=8, hidden_dim=8)).eval()
    vocoder = GriffinLimVocoder(MEL_SETTINGS[MODE])
    net, features = tiny_network(), random_features(2.0)
    sampler = make_sampler(net, features, MODE, steps=2, cfg_strength=4.5, device=CPU)
    target = np.abs(np.sin(np.linspace(0, 6, 250))).astype(np.float32)
    from foley_core.controls.envelope import Envelope

    verifier = EnvelopeVerifier(Envelope(target, 125.0))
    scorer = make_scorer(vae, vocoder, verifier, 16000, 32000, VerifierContext(2.0))
    sizes = []

    def counted(noise):
        sizes.append(noise.shape[0])
        return sampler(noise)

    runs = [gmds_search(counted, scorer, sampler.noise_shape, population=2, rounds=2, seed=9) for _ in range(2)]
    assert sizes == [2, 4, 4] * 2
    assert runs[0].best_score == runs[1].best_score
    assert torch.equal(runs[0].best_latent, runs[1].best_latent)
    assert runs[0].best_latent.shape == (1, sampler.lengths.latent, 8)
    assert set(runs[0].trace[1]["parts"]) == {"envelope"}
