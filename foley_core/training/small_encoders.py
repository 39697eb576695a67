"""Small frozen encoders for the embedded model set (CLIP- and Synchformer-shaped, tiny widths).

No pretrained encoder can be downloaded here and training video encoders on CPU is out of reach,
so the embedded set uses fixed-seed random encoders in the official layouts (they load through
the same loaders as the real files). One deliberate choice: half of the Synchformer's 3-D patch
filters are temporal differences (the weights for the second frame of each 2-frame patch are
the negated weights of the first), so those channels respond to change between frames and are
silent on a still picture — a motion signal the flow network can time its sounds by.
"""

from __future__ import annotations

import torch

from ..models.clip_encoder import build_clip_model
from ..models.synchformer import SynchformerConfig, SynchformerVisualEncoder

CLIP_CONFIG = {
    "embed_dim": 32, "quick_gelu": True,
    "vision_cfg": {"image_size": 378, "layers": 1, "width": 64, "head_width": 64, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1},
}
SYNC_CONFIG = SynchformerConfig(embed_dim=64, depth=1, num_heads=1)


def small_clip_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.detach().clone().contiguous() for k, v in build_clip_model(CLIP_CONFIG).state_dict().items()}


def small_synchformer_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    encoder = SynchformerVisualEncoder(SYNC_CONFIG)
    state = {k: v.detach().clone().contiguous() for k, v in encoder.state_dict().items()}
    key = "vfeat_extractor.patch_embed_3d.proj.weight"  # (D, 3, 2, 16, 16)
    weight = state[key]
    half = weight.shape[0] // 2
    weight[:half, :, 1] = -weight[:half, :, 0]
    state[key] = weight
    return state
