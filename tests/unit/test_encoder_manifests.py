"""Full-size CLIP and Synchformer modules have exactly the official state-dict keys and shapes.

Everything is built on the meta device: no memory, no weights, no download.
"""

import json
from pathlib import Path

import pytest
import torch

from foley_core.models.clip_encoder import (
    DFN5B_CONFIG,
    ClipEncoder,
    build_clip_model,
    clip_config_from_state_dict,
)
from foley_core.models.synchformer import (
    SynchformerConfig,
    SynchformerVisualEncoder,
    synchformer_config_from_state_dict,
)

MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"


def load_manifest(name):
    data = json.loads((MANIFESTS / name).read_text())
    keys = {k: (tuple(shape), dtype) for k, shape, dtype in data["keys"]}
    assert len(keys) == data["num_tensors"]
    return data, keys


def describe(module):
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()}


def meta_state_dict(keys):
    return {k: torch.empty(shape, dtype=getattr(torch, dt), device="meta") for k, (shape, dt) in keys.items()}


def diff(got, want):
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    wrong = sorted(k for k in set(got) & set(want) if got[k] != want[k])[:5]
    return f"missing={missing} extra={extra} wrong={[(k, got[k], want[k]) for k in wrong]}"


# ------------------------------------------------------------------------------------------ CLIP
@pytest.fixture(scope="module")
def clip_manifest():
    return load_manifest("clip_dfn5b_vit_h_14_378.json")


def test_clip_full_size_keys_and_shapes(clip_manifest):
    data, want = clip_manifest
    assert data["config"] == DFN5B_CONFIG
    with torch.device("meta"):
        model = build_clip_model()
    got = describe(model)
    assert got == want, diff(got, want)
    # The causal mask is a non-persistent buffer: it must not be expected in the file.
    assert "attn_mask" not in got
    n = sum(p.numel() for p in model.state_dict().values())
    assert n == data["num_elements"]


def test_clip_loader_accepts_manifest_layout(clip_manifest):
    """Config detection + strict load on the real layout, incl. kijai's fp16 and [1] logit_scale."""
    _, want = clip_manifest
    sd = meta_state_dict(want)
    assert clip_config_from_state_dict(sd) == DFN5B_CONFIG
    sd = {k: v.half() for k, v in sd.items()}
    sd["logit_scale"] = sd["logit_scale"].reshape(1)
    enc = ClipEncoder.from_state_dict(sd, dtype=torch.float16, device="meta")
    assert enc.dtype == torch.float16
    assert enc.model.visual.transformer.resblocks[0].attn.num_heads == 16
    assert enc.model.transformer.resblocks[0].attn.num_heads == 16
    assert enc.model.attn_mask.shape == (77, 77)


# ----------------------------------------------------------------------------------- Synchformer
@pytest.fixture(scope="module")
def sync_manifest():
    return load_manifest("synchformer_visual.json")


def test_synchformer_full_size_keys_and_shapes(sync_manifest):
    data, want = sync_manifest
    with torch.device("meta"):
        model = SynchformerVisualEncoder(SynchformerConfig())
    got = describe(model)
    assert got == want, diff(got, want)
    assert "vfeat_extractor.patch_embed.proj.weight" in got  # unused but in the file
    assert sum(p.numel() for p in model.state_dict().values()) == data["num_elements"]


def test_synchformer_loader_accepts_official_full_file_layout(sync_manifest):
    _, want = sync_manifest
    sd = meta_state_dict(want)
    assert synchformer_config_from_state_dict(sd) == SynchformerConfig()
    # The official file also holds the audio branch and the sync transformer.
    sd["afeat_extractor.patch_embed.proj.weight"] = torch.empty(768, 1, 16, 16, device="meta")
    sd["transformer.blocks.0.attn.qkv.weight"] = torch.empty(2304, 768, device="meta")
    enc = SynchformerVisualEncoder.from_state_dict(sd, dtype=torch.bfloat16, device="meta")
    assert enc.dtype == torch.bfloat16
    assert enc.vfeat_extractor.blocks[0].attn.num_heads == 12
