"""Sequence lengths of the MMAudio streams as a function of clip duration (spec §2).

Changing the duration changes only these lengths (and the RoPE tables derived from them); no
weight depends on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Audio settings per sample-rate mode: (sample rate, mel hop). One latent frame = 2 mel frames.
AUDIO_MODES: dict[str, tuple[int, int]] = {
    "16k": (16_000, 256),
    "44k": (44_100, 512),
}

CLIP_FPS = 8
SYNC_FPS = 25
SYNC_SEGMENT_FRAMES = 16
SYNC_SEGMENT_STRIDE = 8
SYNC_TOKENS_PER_SEGMENT = 8
TEXT_SEQ_LEN = 77
# One sync segment (16 frames at 25 fps) is the shortest clip the network can condition on.
MIN_DURATION_S = SYNC_SEGMENT_FRAMES / SYNC_FPS
TRAINED_DURATION_S = 8.0


@dataclass(frozen=True)
class SequenceLengths:
    """Token counts and audio geometry for one duration and sample-rate mode."""

    duration_s: float
    mode: str
    sample_rate: int
    hop: int
    latent: int
    clip: int
    sync: int
    sync_segments: int
    samples: int
    clip_frames: int
    sync_frames: int
    text: int = TEXT_SEQ_LEN

    @property
    def clip_rope_scale(self) -> float:
        """Factor on the clip RoPE frequencies that puts clip frames at latent-time positions."""
        return self.latent / self.clip

    @property
    def mel_frames(self) -> int:
        return 2 * self.latent


def audio_mode_settings(mode: str) -> tuple[int, int]:
    """(sample_rate, hop) of a sample-rate mode ("16k" or "44k")."""
    try:
        return AUDIO_MODES[mode]
    except KeyError:
        raise ValueError(f"unknown MMAudio mode {mode!r}; expected one of {sorted(AUDIO_MODES)}") from None


def sequence_lengths(duration_s: float, mode: str) -> SequenceLengths:
    """Latent/clip/sync lengths and sample count for `duration_s` seconds in `mode`."""
    sample_rate, hop = audio_mode_settings(mode)
    duration_s = float(duration_s)
    if not duration_s >= MIN_DURATION_S:
        raise ValueError(f"duration {duration_s} s is shorter than the minimum {MIN_DURATION_S} s")
    latent = math.ceil(duration_s * sample_rate / hop / 2)
    # Float floor division exactly as the reference: 16-frame segments, stride 8 frames.
    segments = int((duration_s * SYNC_FPS - SYNC_SEGMENT_FRAMES) // SYNC_SEGMENT_STRIDE + 1)
    clip = int(duration_s * CLIP_FPS)
    return SequenceLengths(
        duration_s=duration_s,
        mode=mode,
        sample_rate=sample_rate,
        hop=hop,
        latent=latent,
        clip=clip,
        sync=SYNC_TOKENS_PER_SEGMENT * segments,
        sync_segments=segments,
        samples=latent * 2 * hop,
        clip_frames=clip,
        sync_frames=int(duration_s * SYNC_FPS),
    )


def sync_to_latent_index(sync_len: int, latent_len: int) -> torch.Tensor:
    """For each latent position, the sync token it copies (int64, shape (latent_len,)).

    Uses PyTorch's own `nearest-exact` so the float32 rounding matches the reference exactly
    (exact rational arithmetic differs at a few positions, e.g. 192 -> 345).
    """
    positions = torch.arange(sync_len, dtype=torch.float32).view(1, 1, sync_len)
    picked = F.interpolate(positions, size=latent_len, mode="nearest-exact")
    return picked.view(latent_len).round().long()
