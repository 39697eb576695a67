"""The full Synchformer: visual encoder (reused), audio encoder, projections, sync transformer.

Loads MMAudio's `synchformer_state_dict.pth` (or a safetensors copy) strictly, weights-only. Head
counts are not visible in the shapes: the real model's head widths (visual/AST 64, sync 96) are
the defaults; a safetensors file may state them in its metadata (`visual_heads`, `audio_heads`,
`sync_heads`), which the small test models do.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import torch
from torch import nn

from ...errors import CheckpointError, MediaError
from ..checkpoint_io import read_metadata, read_state_dict
from ..synchformer import SynchformerVisualEncoder, synchformer_config_from_state_dict
from .audio_encoder import AstConfig, AudioFeatureExtractor
from .frontend import log_mel_segments
from .transformer import SyncConfig, SyncTransformer

WINDOW_SEGMENTS = 14  # the position table fits exactly 14 segments (4.8 s)
# class k ↔ offset −2 + 0.2k s (+ = audio early): −2 + k·0.2 in float64, rounded to float32, as the
# reference grid (torch's float32 linspace is one ulp off in some entries, float64's leaves 1e-16 at 0)
OFFSET_GRID = torch.from_numpy(np.linspace(-2.0, 2.0, 21)).float()
FULL_FILE = "synchformer_state_dict.pth"
BRANCHES = {  # key prefix → what it is, for error messages
    "vfeat_extractor.": "visual encoder",
    "afeat_extractor.": "audio encoder (AST)",
    "vproj.": "visual projection",
    "aproj.": "audio projection",
    "transformer.": "sync transformer + offset head",
}


def missing_branches(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    return [p for p in BRANCHES if not any(k.startswith(p) for k in state_dict)]


def _depth(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    found = [int(m.group(1)) for k in sd if (m := re.match(pattern, k))]
    if not found:
        raise CheckpointError(f"Synchformer: no layers matching {pattern!r}.")
    return 1 + max(found)


def _heads(width: int, head_width: int, given: Optional[int], what: str) -> int:
    if given:
        return int(given)
    if width % head_width:
        raise CheckpointError(f"Synchformer: cannot infer the {what} head count for width {width}; "
                              f"state it in the file's metadata ({what}_heads).")
    return width // head_width


def sync_configs(sd: Mapping[str, torch.Tensor], heads: Mapping[str, int]) -> tuple[AstConfig, SyncConfig]:
    try:
        a_dim = int(sd["afeat_extractor.ast.embeddings.cls_token"].shape[-1])
        a_ff = int(sd["afeat_extractor.ast.encoder.layer.0.intermediate.dense.weight"].shape[0])
        s_dim = int(sd["transformer.OFF_tok"].shape[-1])
        positions = int(sd["transformer.pos_emb_cfg.pos_emb"].shape[1])
        classes = int(sd["transformer.off_head.weight"].shape[0])
    except KeyError as e:
        raise CheckpointError(f"Synchformer weights incomplete: missing {e.args[0]!r}.") from None
    ast = AstConfig(a_dim, _depth(sd, r"afeat_extractor\.ast\.encoder\.layer\.(\d+)\."),
                    _heads(a_dim, 64, heads.get("audio"), "audio"), a_ff)
    sync = SyncConfig(s_dim, _depth(sd, r"transformer\.blocks\.(\d+)\."),
                      _heads(s_dim, 96, heads.get("sync"), "sync"), positions, classes)
    return ast, sync


def full_configs(sd: Mapping[str, torch.Tensor], heads: Optional[Mapping[str, int]] = None):
    """(visual, AST, sync) configs from a full state dict's shapes (+ head counts where given)."""
    heads = dict(heads or {})
    visual = {k: v for k, v in sd.items() if k.startswith("vfeat_extractor.")}
    return (synchformer_config_from_state_dict(visual, num_heads=heads.get("visual")),
            *sync_configs(sd, heads))


class SynchformerSync(SynchformerVisualEncoder):
    """Offset classifier over 14-segment windows. Inherits the visual encoder (`vfeat_extractor`,
    `encode_segments`) and adds the audio branch and the sync head under the file's names."""

    def __init__(self, visual_cfg, ast_cfg: AstConfig, sync_cfg: SyncConfig, segment_chunk: int = 16):
        super().__init__(visual_cfg, segment_chunk=segment_chunk)
        self.afeat_extractor = AudioFeatureExtractor(ast_cfg)
        self.vproj = nn.Linear(visual_cfg.embed_dim, sync_cfg.width)
        self.aproj = nn.Linear(ast_cfg.hidden, sync_cfg.width)
        self.transformer = SyncTransformer(sync_cfg)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], heads: Optional[Mapping[str, int]] = None,
                        dtype: torch.dtype = torch.float32, device="cpu", segment_chunk: int = 16,
                        name: str = FULL_FILE) -> "SynchformerSync":
        missing = missing_branches(state_dict)
        if missing:
            lacks = ", ".join(f"{p}* ({BRANCHES[p]})" for p in missing)
            only_visual = missing == [p for p in BRANCHES if p != "vfeat_extractor."]
            hint = " It holds only the visual branch that MMAudio conditions on." if only_visual else ""
            raise CheckpointError(
                f"Synchformer DeSync: {name} lacks {lacks}.{hint} DeSync needs the FULL Synchformer file "
                f"{FULL_FILE} (MMAudio's download, ~907 MB, all five parts: vfeat_extractor, "
                "afeat_extractor, vproj, aproj, transformer).")
        with torch.device("meta"):
            model = cls(*full_configs(state_dict, heads), segment_chunk=segment_chunk)
        try:
            model.load_state_dict(dict(state_dict), strict=True, assign=True)
        except RuntimeError as e:
            raise CheckpointError(f"Synchformer DeSync: {name} does not match the full model: "
                                  f"{str(e)[:500]}") from None
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)

    @torch.inference_mode()
    def encode_audio(self, wave_16k: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """(B, N) 16-kHz mono → (B, S, 6, D) float32; all segments of all items batched together."""
        if wave_16k.ndim != 2:
            raise MediaError(f"Synchformer audio must be (B, N) mono at 16 kHz; got {tuple(wave_16k.shape)}.")
        spec = log_mel_segments(wave_16k.float().to(self.device))  # (B, S, 128, 66)
        b, s = spec.shape[:2]
        flat = spec.flatten(0, 1).to(self.dtype)
        out = [self.afeat_extractor(x).float() for x in flat.split(max(1, chunk))]
        return torch.cat(out).reshape(b, s, *out[0].shape[1:])

    @torch.inference_mode()
    def window_logits(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """visual (B, 14, 8, Dv), audio (B, 14, 6, Da) features of the same segments → (B, 21) logits."""
        if visual.shape[1] != WINDOW_SEGMENTS or audio.shape[1] != WINDOW_SEGMENTS:
            raise MediaError(f"The sync transformer takes exactly {WINDOW_SEGMENTS} segments; got "
                             f"{visual.shape[1]} visual and {audio.shape[1]} audio.")
        v = self.vproj(visual.to(self.device, self.dtype)).flatten(1, 2)
        a = self.aproj(audio.to(self.device, self.dtype)).flatten(1, 2)
        return self.transformer(v, a).float()


def build_synchformer_sync(path: Path, dtype: torch.dtype = torch.float32, device="cpu") -> SynchformerSync:
    """Weights-only load of a full Synchformer file (.pth or .safetensors)."""
    path = Path(path)
    state_dict = read_state_dict(path, "Synchformer DeSync")
    meta = read_metadata(path)
    heads = {k: int(meta[f"{k}_heads"]) for k in ("visual", "audio", "sync") if meta.get(f"{k}_heads")}
    return SynchformerSync.from_state_dict(state_dict, heads=heads, dtype=dtype, device=device, name=path.name)
