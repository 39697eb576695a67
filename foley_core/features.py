"""Conditioning features of one video: CLIP (8 fps), Synchformer (25 fps) and CLIP text.

Encoded once per video and prompt; the sampler only slices them to the duration it generates,
so re-sampling with another seed never re-runs the encoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .errors import FoleyError
from .models.synchformer import num_segments

CLIP_FPS = 8
SYNC_FPS = 25
SYNC_TOKENS_PER_SEGMENT = 8


@dataclass
class VisualFeatures:
    """FOLEY_FEATURES. Tensors are float32, batch 1, on the host's intermediate device."""

    clip_f: Optional[torch.Tensor]  # (1, int(8·d), D_clip); None = text-only
    sync_f: Optional[torch.Tensor]  # (1, 8·S, D_sync); None = text-only
    text_f: torch.Tensor  # (1, 77, D_text)
    negative_text_f: torch.Tensor  # (1, 77, D_text): the unconditional branch's text
    duration_s: float  # what the video covers (exact value of the loaded segment)
    prompt: str = ""
    negative_prompt: str = ""

    def sliced(self, clip_len: int, sync_len: int) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """The first clip_len CLIP and sync_len Synchformer tokens (what a shorter clip needs)."""
        if self.clip_f is None:
            return None, None
        if self.clip_f.shape[1] < clip_len or self.sync_f.shape[1] < sync_len:
            raise FoleyError(
                f"The video features cover {self.duration_s:.2f} s but {clip_len / CLIP_FPS:.2f} s "
                "were requested; lower the duration or load a longer video segment.")
        return self.clip_f[:, :clip_len], self.sync_f[:, :sync_len]


@torch.inference_mode()
def encode_visual(clip_encoder, synchformer, clip_frames: torch.Tensor, sync_frames: torch.Tensor,
                  duration_s: float, prompt: str = "", negative_prompt: str = "",
                  *, mask_video: bool = False, output_device: torch.device | str = "cpu",
                  progress: Optional[Callable[[int, int], None]] = None) -> VisualFeatures:
    """Encode uint8 frame stacks [T, 3, H, W] (CLIP 384², sync 224²) and the prompts.

    mask_video keeps only the text (the network then sees its learned empty video features).
    """
    progress = progress or (lambda done, total: None)
    progress(0, 3)
    clip_f = sync_f = None
    if not mask_video:
        if num_segments(sync_frames.shape[0]) < 1:
            raise FoleyError(
                f"The video segment is {duration_s:.2f} s long; MMAudio needs at least 0.64 s "
                "(16 frames at 25 fps). Load a longer segment.")
        clip_f = clip_encoder.encode_video_frames(clip_frames.unsqueeze(0).to(clip_encoder.device))
        progress(1, 3)
        sync_f = synchformer(sync_frames.unsqueeze(0).to(synchformer.device))
        progress(2, 3)
    texts = clip_encoder.encode_text([prompt or "", negative_prompt or ""])
    progress(3, 3)

    def out(t):
        return t.float().to(output_device)

    return VisualFeatures(
        clip_f=None if clip_f is None else out(clip_f), sync_f=None if sync_f is None else out(sync_f),
        text_f=out(texts[:1]), negative_text_f=out(texts[1:2]), duration_s=float(duration_s),
        prompt=prompt or "", negative_prompt=negative_prompt or "")
