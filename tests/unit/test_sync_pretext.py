"""The audio-visual pretext's targets mark the clip's own sound events, and a few training steps
change the encoder but keep its official layout."""

import numpy as np
import torch

from foley_core.models.synchformer import SynchformerConfig, SynchformerVisualEncoder
from foley_core.synthetic_foley import make_clip
from foley_core.synthetic_foley.scenes import ONSET_KINDS
from foley_core.training.sync_pretext import token_targets, train_sync_encoder


def test_energy_rise_targets_peak_at_the_events():
    clip = make_clip(3, duration_s=4.0, fps=25, sample_rate=16000, size=64)
    targets = token_targets(clip.audio, 16000, 100)  # 100 frames at 25 fps
    assert targets.shape == (11, 8, 2)
    # Slot times of segment-major tokens: token j of segment s starts at frame 8s + 2j.
    rise = {}
    for s in range(11):
        for j in range(8):
            rise[(8 * s + 2 * j) / 25] = float(targets[s, j, 1])
    events = [e["time_s"] for e in clip.meta["events"] if e["kind"] in ONSET_KINDS and e["time_s"] < 3.5]
    assert events
    top = sorted(rise, key=rise.get, reverse=True)[: len(events)]
    for t in events:  # every event's slot is among the strongest rises
        assert min(abs(slot + 0.04 - t) for slot in top) <= 0.08, (t, top)


def test_pretext_training_updates_the_encoder_in_place():
    torch.manual_seed(0)
    encoder = SynchformerVisualEncoder(SynchformerConfig(embed_dim=64, depth=1, num_heads=1))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    frames = torch.randint(0, 255, (32, 3, 224, 224), dtype=torch.uint8)
    targets = token_targets(np.random.default_rng(0).normal(size=16000 * 2) * 0.1, 16000, 32)
    train_sync_encoder(encoder, [(frames, targets)], steps=3, batch_segments=2, log=lambda _: None)
    after = encoder.state_dict()
    assert set(after) == set(before)
    assert any(not torch.equal(after[k], before[k]) for k in before)
