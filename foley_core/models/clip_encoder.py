"""CLIP image/text features for MMAudio conditioning (DFN5B ViT-H-14-378, spec §5.2).

The network itself is open_clip's `CLIP`, built from a config dict (never downloaded); weights
come from a local state dict with open_clip key names (official `open_clip_pytorch_model.bin` or
kijai's fp16 safetensors). What MMAudio changes is only how features are read out:
  * images: projected CLS token, L2-normalised, from 384-px frames fed to the 378-px model;
  * text: `ln_final` states of all 77 tokens, each L2-normalised, without `text_projection`.

open_clip is imported lazily: importing it costs seconds, which the host should not pay at
start-up for users who never load CLIP.
"""

from __future__ import annotations

import copy
import re
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, MediaError

# open_clip's built-in name whose config equals hf-hub:apple/DFN5B-CLIP-ViT-H-14-384.
DFN5B_MODEL_NAME = "ViT-H-14-378-quickgelu"

# Same dict as open_clip's built-in config; kept here so shape detection needs no open_clip import.
DFN5B_CONFIG = {
    "embed_dim": 1024,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 378, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24},
}

# OpenAI CLIP pixel statistics (RGB).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The frames MMAudio feeds in: squash-resized to 384 (not 378) upstream.
CLIP_FRAME_SIZE = 384


def _count_layers(keys, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def clip_config_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    vision_head_width: Optional[int] = None,
    text_heads: Optional[int] = None,
    quick_gelu: bool = True,
) -> dict:
    """Infer an open_clip CLIP config from tensor shapes.

    Head counts do not show in the shapes: a state dict with the DFN5B shapes gets the DFN5B
    heads; otherwise pass them or get the open_clip defaults (head width 64).
    """
    try:
        conv = state_dict["visual.conv1.weight"]
        vis_pos = state_dict["visual.positional_embedding"]
        proj = state_dict["visual.proj"]
        txt_pos = state_dict["positional_embedding"]
        tok = state_dict["token_embedding.weight"]
        ln_final = state_dict["ln_final.weight"]
    except KeyError as e:
        raise CheckpointError(
            f"Not an open_clip CLIP state dict (missing {e.args[0]!r}); expected the "
            "DFN5B-CLIP-ViT-H-14-384 weights in open_clip key names."
        ) from None
    keys = list(state_dict.keys())
    v_width, patch = int(conv.shape[0]), int(conv.shape[-1])
    grid = int(round((vis_pos.shape[0] - 1) ** 0.5))
    t_width = int(ln_final.shape[0])
    cfg = {
        "embed_dim": int(proj.shape[1]),
        "quick_gelu": quick_gelu,
        "vision_cfg": {
            "image_size": grid * patch,
            "layers": _count_layers(keys, "visual.transformer.resblocks."),
            "width": v_width,
            "head_width": 64,
            "patch_size": patch,
        },
        "text_cfg": {
            "context_length": int(txt_pos.shape[0]),
            "vocab_size": int(tok.shape[0]),
            "width": t_width,
            "heads": max(1, t_width // 64),
            "layers": _count_layers(keys, "transformer.resblocks."),
        },
    }
    v_mlp = state_dict.get("visual.transformer.resblocks.0.mlp.c_fc.weight")
    if v_mlp is not None and v_mlp.shape[0] != 4 * v_width:
        cfg["vision_cfg"]["mlp_ratio"] = v_mlp.shape[0] / v_width
    t_mlp = state_dict.get("transformer.resblocks.0.mlp.c_fc.weight")
    if t_mlp is not None and t_mlp.shape[0] != 4 * t_width:
        cfg["text_cfg"]["mlp_ratio"] = t_mlp.shape[0] / t_width
    if _same_shapes(cfg, DFN5B_CONFIG):
        cfg = copy.deepcopy(DFN5B_CONFIG)
    if vision_head_width is not None:
        cfg["vision_cfg"]["head_width"] = vision_head_width
    if text_heads is not None:
        cfg["text_cfg"]["heads"] = text_heads
    return cfg


def _same_shapes(cfg: dict, ref: dict) -> bool:
    """True when two configs differ at most in head counts (which shapes cannot reveal)."""
    def strip(c):
        c = copy.deepcopy(c)
        c["vision_cfg"].pop("head_width", None)
        c["text_cfg"].pop("heads", None)
        return c
    return strip(cfg) == strip(ref)


def build_clip_model(config: Optional[dict] = None):
    """An open_clip `CLIP` with random weights (DFN5B config by default); nothing is downloaded.

    Honours an active `torch.device(...)` context, so `with torch.device("meta")` builds it free.
    """
    from open_clip.model import CLIP

    config = copy.deepcopy(config if config is not None else DFN5B_CONFIG)
    return CLIP(**config)


def prepare_clip_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Fix known export quirks: `logit_scale` stored as shape [1] instead of a scalar."""
    sd = dict(state_dict)
    for name in ("logit_scale", "logit_bias"):
        t = sd.get(name)
        if t is not None and t.ndim == 1 and t.numel() == 1:
            sd[name] = t.reshape(())
    return sd


def _causal_mask(n: int, device) -> torch.Tensor:
    # Additive mask as open_clip builds it: -inf above the diagonal.
    return torch.full((n, n), float("-inf"), device=device).triu_(1)


class ClipEncoder(nn.Module):
    """open_clip CLIP + tokenizer with MMAudio's feature read-out."""

    def __init__(self, model: nn.Module, tokenizer=None, frame_chunk: int = 32):
        super().__init__()
        self.model = model
        self._tokenizer = tokenizer
        self.frame_chunk = frame_chunk
        self.register_buffer("pixel_mean", torch.tensor(CLIP_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(CLIP_STD).view(3, 1, 1), persistent=False)

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        config: Optional[dict] = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        frame_chunk: int = 32,
    ) -> "ClipEncoder":
        """Build from a state dict in open_clip key names (strict), config inferred if not given.

        The model is built on the meta device and takes the given tensors directly, so a 1B
        parameter checkpoint is never initialised randomly or held twice in fp32.
        """
        sd = prepare_clip_state_dict(state_dict)
        if config is None:
            config = clip_config_from_state_dict(sd)
        with torch.device("meta"):
            model = build_clip_model(config)
        try:
            model.load_state_dict(sd, strict=True, assign=True)
        except RuntimeError as e:
            raise CheckpointError(
                "CLIP weights do not match the DFN5B-CLIP-ViT-H-14-384 (open_clip) layout: "
                f"{str(e)[:500]}"
            ) from None
        model.attn_mask = _causal_mask(model.positional_embedding.shape[0], "cpu")
        model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        return cls(model, frame_chunk=frame_chunk).to(device)

    # ----------------------------------------------------------------------------- properties
    @property
    def dtype(self) -> torch.dtype:
        return self.model.visual.conv1.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.visual.conv1.weight.device

    @property
    def context_length(self) -> int:
        return int(self.model.positional_embedding.shape[0])

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            import open_clip

            self._tokenizer = open_clip.get_tokenizer(DFN5B_MODEL_NAME)
        return self._tokenizer

    # ----------------------------------------------------------------------------- images
    @torch.inference_mode()
    def encode_video_frames(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, 384, 384) uint8 RGB → (B, T, embed_dim) L2-normalised float32 features.

        No resizing here: a 378-px model on 384-px frames ignores the last 6 rows/columns,
        which is what MMAudio was trained with.
        """
        if frames_uint8.ndim != 5 or frames_uint8.shape[2] != 3:
            raise MediaError(
                f"CLIP frames must be (B, T, 3, H, W); got {tuple(frames_uint8.shape)}."
            )
        if frames_uint8.dtype != torch.uint8:
            raise MediaError(f"CLIP frames must be uint8, got {frames_uint8.dtype}.")
        b, t = frames_uint8.shape[:2]
        flat = frames_uint8.reshape(b * t, *frames_uint8.shape[2:])
        out = []
        for chunk in flat.split(max(1, self.frame_chunk)):
            # Pixel normalisation in fp32, then the model's dtype.
            x = chunk.to(self.device, torch.float32) / 255.0
            x = ((x - self.pixel_mean) / self.pixel_std).to(self.dtype)
            feat = self.model.encode_image(x)
            out.append(F.normalize(feat.float(), dim=-1))
        if not out:
            return torch.zeros(b, t, self.model.visual.proj.shape[1], device=self.device)
        return torch.cat(out).reshape(b, t, -1)

    @property
    def vision_layers(self) -> int:
        return len(self.model.visual.transformer.resblocks)

    @torch.inference_mode()
    def encode_image_layers(self, frames_uint8: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """(N, 3, H, W) uint8 RGB → (N, len(layers), 1 + patches, width) float32 hidden states.

        Layer l is the residual stream after vision block l (1-based, as TiVA's "layer 4/8/11" of
        a 12-block ViT-B); layer 0 is the embedded input (after ln_pre). Token 0 is CLS, then the
        patch tokens row by row. Same pixel handling as `encode_video_frames`.
        """
        if frames_uint8.ndim != 4 or frames_uint8.shape[1] != 3 or frames_uint8.dtype != torch.uint8:
            raise MediaError(f"CLIP frames must be uint8 (N, 3, H, W); got {frames_uint8.dtype} "
                             f"{tuple(frames_uint8.shape)}.")
        layers = [int(layer) for layer in layers]
        if not layers or min(layers) < 0 or max(layers) > self.vision_layers:
            raise MediaError(f"CLIP layers must lie in 0..{self.vision_layers} (this CLIP has "
                             f"{self.vision_layers} vision blocks); got {layers}.")
        visual = self.model.visual
        blocks = visual.transformer
        out = []
        for chunk in frames_uint8.split(max(1, self.frame_chunk)):
            x = chunk.to(self.device, torch.float32) / 255.0
            x = ((x - self.pixel_mean) / self.pixel_std).to(self.dtype)
            x = visual._embeds(x)  # open_clip's patchify + CLS + positions + ln_pre, (N, L, D)
            states = {0: x}
            for index, block in enumerate(blocks.resblocks[: max(layers)], start=1):
                if blocks.batch_first:
                    x = block(x)
                else:
                    x = block(x.transpose(0, 1)).transpose(0, 1)
                states[index] = x
            out.append(torch.stack([states[layer].float() for layer in layers], dim=1))
        if not out:
            width = visual.conv1.weight.shape[0]
            return torch.zeros(0, len(layers), 0, width)
        return torch.cat(out)

    # ----------------------------------------------------------------------------- text
    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts → (N, 77) int64 token ids (open_clip SimpleTokenizer, truncated with <end>)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        return self.tokenizer(list(prompts), context_length=self.context_length)

    @torch.inference_mode()
    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, 77) ids → (N, 77, width) `ln_final` states, each token L2-normalised (float32)."""
        m = self.model
        tokens = tokens.to(self.device)
        x = m.token_embedding(tokens).to(self.dtype) + m.positional_embedding.to(self.dtype)
        x = m.transformer(x, attn_mask=m.attn_mask.to(self.device))
        x = m.ln_final(x)
        return F.normalize(x.float(), dim=-1)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts → (N, 77, width) MMAudio text features (no pooling, no text_projection)."""
        return self.encode_tokens(self.tokenize(prompts))
