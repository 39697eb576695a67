"""MusicGen-Style style conditioner (the AudioIM "tempo encoder"): MERT features -> transformer ->
BatchNorm -> residual VQ bottleneck -> every 15th frame -> projection to the LM width.

Spec: shared/spec/style_conditioner.md. Parameter names follow the LM checkpoint
(`condition_provider.conditioners.self_wav.*`, prefix optional), loaded strictly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Union

import torch
from torch import nn

from ...errors import CheckpointError, MediaError
from ..checkpoint_io import describe_key_mismatch
from .mert import MERT_SAMPLE_RATE
from .quantizer import ResidualVQ
from .resample import resample_frac
from .transformer import StyleTransformer

KEY_PREFIX = "condition_provider.conditioners.self_wav."
MODEL_SAMPLE_RATE = 32000  # MusicGen's rate: lengths and the mask are counted at 32 kHz
MERT_FRAME_RATE = 75
EXCERPT_SECONDS = 3.0
HEADS_BY_WIDTH = {256: 8, 512: 8, 1024: 16}  # audiocraft's transformer scales (xsmall/default/large)


@dataclass(frozen=True)
class StyleConfig:
    dim: int = 512
    num_heads: int = 8
    num_layers: int = 8
    ffn_dim: int = 2048
    feature_dim: int = 768  # MERT-v1-95M hidden size
    n_q: int = 6
    bins: int = 1024
    output_dim: int = 1536
    ds_factor: int = 15
    batch_norm: bool = True

    @property
    def samples_per_token(self) -> float:
        """32-kHz samples per output token, for the length mask (6400)."""
        return MODEL_SAMPLE_RATE / MERT_FRAME_RATE * self.ds_factor


class StyleConditioner(nn.Module):
    def __init__(self, cfg: StyleConfig = StyleConfig()):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.feature_dim, cfg.dim)
        self.transformer = StyleTransformer(cfg.dim, cfg.num_heads, cfg.num_layers, cfg.ffn_dim)
        self.batch_norm = nn.BatchNorm1d(cfg.dim, affine=False) if cfg.batch_norm else None
        self.rvq = ResidualVQ(cfg.dim, cfg.n_q, cfg.bins)
        self.output_proj = nn.Linear(cfg.dim, cfg.output_dim)

    # ------------------------------------------------------------------------------ loading
    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], num_heads: Optional[int] = None,
                        device: Union[str, torch.device] = "cpu") -> "StyleConditioner":
        """Strictly load conditioner keys, with or without the LM prefix (an LM state dict or a
        {"best_state": ...} package is accepted: the prefixed keys are picked out of it)."""
        if isinstance(state.get("best_state"), Mapping):
            state = state["best_state"]
        state = strip_prefix(state)
        cfg = config_from_state_dict(state, num_heads)
        with torch.device("meta"):
            model = cls(cfg)
        model = model.to_empty(device=device)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError("Style conditioner: the weights do not match: "
                                  + describe_key_mismatch(missing, unexpected))
        if not model.rvq.check_initialised():
            # The official code would run k-means on the user's audio here: never what we want.
            raise CheckpointError("Style conditioner: RVQ codebooks are not initialised (inited=0).")
        return model.float().eval()

    # ------------------------------------------------------------------------------ forward
    def forward_from_features(self, mert_features: Optional[torch.Tensor], lengths: torch.Tensor,
                              eval_q: int = 3, trace: Optional[dict] = None):
        """MERT last_hidden_state (B, T, 768) + full 32-kHz input lengths (B,) ->
        (embeds (B, ceil(T/15), output_dim) zeroed where masked, mask (B, T') int32).

        mert_features=None is the null condition (no style audio): zeros (B, 1, dim) replace the
        embedded features, and `lengths` must be 0, so the output is zeros with mask 0.
        """
        lengths = torch.as_tensor(lengths)
        if mert_features is None:
            x = torch.zeros(lengths.shape[0], 1, self.cfg.dim, device=self.embed.weight.device)
        else:
            x = self.embed(mert_features.to(self.embed.weight.dtype))
        if trace is not None:
            trace["embed"] = x
        x = self.transformer(x, trace)
        if trace is not None:
            trace["transformer_out"] = x
        if self.batch_norm is not None:
            x = self.batch_norm(x.transpose(1, 2)).transpose(1, 2)
        if trace is not None:
            trace["batch_norm"] = x
        quantized, codes = self.rvq(x, eval_q)
        down = quantized[:, :: self.cfg.ds_factor]  # quantize every frame, then keep every 15th
        mask = self.length_mask(lengths, down.shape[1]).to(down.device)
        embeds = self.output_proj(down) * mask.unsqueeze(-1).to(down.dtype)
        if trace is not None:
            trace.update(codes=codes, quantized=quantized, downsampled=down)
        return embeds, mask

    def null_condition(self, batch_size: int):
        """The 'no style audio' condition used for classifier-free guidance: zeros, mask 0."""
        return self.forward_from_features(None, torch.zeros(batch_size, dtype=torch.long))

    def length_mask(self, lengths: torch.Tensor, num_tokens: int) -> torch.Tensor:
        """Token t is valid iff t < length / 6400 (real-valued), as int32."""
        positions = torch.arange(num_tokens, dtype=torch.float64)
        limit = lengths.to(torch.float64).cpu().unsqueeze(1) / self.cfg.samples_per_token
        return (positions.unsqueeze(0) < limit).to(torch.int32)

    @torch.no_grad()
    def tempo_embedding(self, waveform: torch.Tensor, sample_rate: int, mert: Callable,
                        eval_q: int = 3, excerpt_seconds: float = EXCERPT_SECONDS,
                        excerpt_start: Optional[int] = None):
        """Style tokens of a reference recording: (embeds (B, T', output_dim), mask (B, T')).

        waveform (N,), (B, N) or (B, C, N) at `sample_rate`. The official path (user rate ->
        32 kHz -> mono -> 3-s excerpt -> 24 kHz -> MERT) is followed; the excerpt start is drawn
        at random there, here it defaults to the middle (deterministic; any start is official).
        Clips shorter than the excerpt are zero-padded (the official code raises) and masked by
        their true length.
        """
        wav = _as_batch_channels_time(waveform)
        wav32 = resample_frac(wav.float(), int(sample_rate), MODEL_SAMPLE_RATE).mean(dim=1)
        total = wav32.shape[-1]
        excerpt = int(excerpt_seconds * MODEL_SAMPLE_RATE)
        if total < excerpt:
            wav32 = torch.nn.functional.pad(wav32, (0, excerpt - total))
        start = excerpt_start if excerpt_start is not None else max(0, (total - excerpt) // 2)
        if not 0 <= start <= wav32.shape[-1] - excerpt:
            raise MediaError(f"Style excerpt start {start} is outside the {total}-sample clip.")
        clip24 = mert_input(wav32[:, start:start + excerpt])
        features = mert_features(mert, clip24.to(self.embed.weight.device))
        lengths = torch.full((wav.shape[0],), total, dtype=torch.long)
        return self.forward_from_features(features, lengths, eval_q)


def mert_input(wav_32k: torch.Tensor) -> torch.Tensor:
    """(B, N) 32-kHz excerpt -> (B, 3N/4) 24-kHz waveform, raw (MERT gets no normalisation)."""
    return resample_frac(wav_32k, MODEL_SAMPLE_RATE, MERT_SAMPLE_RATE)


def mert_features(mert: Callable, wav_24k: torch.Tensor) -> torch.Tensor:
    """last_hidden_state of a HubertModel-like module (or a callable returning the tensor)."""
    out = mert(wav_24k)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out


def _as_batch_channels_time(waveform: torch.Tensor) -> torch.Tensor:
    if waveform.dim() == 1:
        return waveform[None, None]
    if waveform.dim() == 2:
        return waveform.unsqueeze(1)
    if waveform.dim() == 3:
        return waveform
    raise MediaError(f"Style audio must be (N,), (B, N) or (B, C, N), got {tuple(waveform.shape)}.")


def strip_prefix(state: Mapping[str, torch.Tensor]) -> dict:
    """Conditioner keys without the LM prefix; other LM keys are dropped when the prefix is used."""
    if any(k.startswith(KEY_PREFIX) for k in state):
        return {k[len(KEY_PREFIX):]: v for k, v in state.items() if k.startswith(KEY_PREFIX)}
    return dict(state)


def config_from_state_dict(state: Mapping[str, torch.Tensor], num_heads: Optional[int] = None) -> StyleConfig:
    try:
        embed = state["embed.weight"]
        linear1 = state["transformer.layers.0.linear1.weight"]
        codebook = state["rvq.vq.layers.0._codebook.embed"]
        out = state["output_proj.weight"]
    except KeyError as missing:
        raise CheckpointError(f"Style conditioner: key {missing.args[0]} is missing; "
                              "this is not a MusicGen-Style conditioner state dict.") from None
    dim = embed.shape[0]
    if num_heads is None:
        if dim not in HEADS_BY_WIDTH:
            raise CheckpointError(f"Style conditioner: width {dim} is not an official scale; pass num_heads.")
        num_heads = HEADS_BY_WIDTH[dim]
    layers = {int(m.group(1)) for k in state if (m := re.match(r"transformer\.layers\.(\d+)\.", k))}
    n_q = {int(m.group(1)) for k in state if (m := re.match(r"rvq\.vq\.layers\.(\d+)\.", k))}
    return StyleConfig(dim=dim, num_heads=num_heads, num_layers=len(layers), ffn_dim=linear1.shape[0],
                       feature_dim=embed.shape[1], n_q=len(n_q), bins=codebook.shape[0],
                       output_dim=out.shape[0], batch_norm="batch_norm.running_mean" in state)

