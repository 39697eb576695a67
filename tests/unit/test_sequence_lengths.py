"""Sequence lengths per duration (spec §2) against the official table (parity seq_tables)."""

from __future__ import annotations

import pytest
import torch

from foley_core.models.mmaudio import MIN_DURATION_S, sequence_lengths, sync_to_latent_index
from foley_core.models.mmaudio.rope import rope_phases

import parity_data


TABLE = parity_data.config("seq_tables")["table"]


def _id(row) -> str:
    return f"{row['mode']}-{row['duration']:g}s"


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return parity_data.io("seq_tables")


@pytest.mark.parametrize("row", TABLE, ids=_id)
def test_lengths_match_official_table(row):
    lengths = sequence_lengths(row["duration"], row["mode"])
    assert lengths.latent == row["latent_seq_len"]
    assert lengths.clip == row["clip_seq_len"]
    assert lengths.sync == row["sync_seq_len"]
    assert lengths.sync_segments == row["num_sync_segments"]
    assert lengths.samples == row["num_audio_samples"]
    assert lengths.clip_rope_scale == pytest.approx(row["clip_rope_freq_scaling"], rel=1e-12)
    assert lengths.clip_frames == row["video_frames_needed"]["clip_8fps"]
    assert lengths.sync_frames == row["video_frames_needed"]["sync_25fps"]
    assert lengths.text == 77


@pytest.mark.parametrize("row", TABLE, ids=_id)
def test_sync_index_and_clip_rope_phase(row, io):
    lengths = sequence_lengths(row["duration"], row["mode"])
    prefix = f"out.{row['mode']}.{row['duration']:g}s"
    assert torch.equal(sync_to_latent_index(lengths.sync, lengths.latent), io[f"{prefix}.sync_to_latent_index"])
    phase = rope_phases(lengths.clip, 64, lengths.clip_rope_scale)
    assert torch.allclose(phase, io[f"{prefix}.clip_rope_phase"], atol=1e-4, rtol=1e-4)


def test_spec_examples_and_nearest_exact_pitfall():
    assert [(s.latent, s.clip, s.sync, s.samples, s.sample_rate, s.hop) for s in
            (sequence_lengths(8.0, "44k"), sequence_lengths(8.0, "16k"))] == [
        (345, 64, 192, 353_280, 44_100, 512), (250, 64, 192, 128_000, 16_000, 256)]
    index = sync_to_latent_index(192, 345)
    exact = [min(int((j + 0.5) * 192 / 345), 191) for j in range(345)]
    differing = [j for j in range(345) if index[j].item() != exact[j]]
    assert differing == [57, 172]  # PyTorch's float32 scale, not exact arithmetic


def test_invalid_duration_and_mode():
    assert sequence_lengths(MIN_DURATION_S, "44k").sync == 8
    with pytest.raises(ValueError, match="minimum"):
        sequence_lengths(0.5, "44k")
    with pytest.raises(ValueError, match="mode"):
        sequence_lengths(8.0, "48k")
