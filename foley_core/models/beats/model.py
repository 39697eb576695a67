"""BEATs audio encoder (the AudioIM "timbre encoder"): patches of a Kaldi log-mel -> transformer.

Spec: shared/spec/beats.md. Parameter names follow the official `BEATs_iter3*.pt` state dicts,
so those files load with strict matching.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Union

import torch
from torch import nn

from ...errors import CheckpointError, MediaError
from ...media.audio import resample
from ..checkpoint_io import describe_key_mismatch, read_state_dict
from . import frontend
from .config import BEATsConfig, config_from_cfg_dict, config_from_state_dict
from .encoder import LN_EPS, BEATsTransformer

# One row of 16 fbank frames: the shortest input that yields a token.
MIN_SAMPLES_16K = frontend.WINDOW_SAMPLES + 15 * frontend.HOP_SAMPLES


class BEATsEncoder(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.cfg = cfg.validate()
        p = cfg.input_patch_size
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, p, stride=p, bias=cfg.conv_bias)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim, eps=LN_EPS)
        # The official model only has this projection when the widths differ.
        self.post_extract_proj = (nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
                                  if cfg.embed_dim != cfg.encoder_embed_dim else None)
        self.encoder = BEATsTransformer(cfg)
        self.predictor = (nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)
                          if cfg.finetuned_model else None)
        self.label_dict: Optional[dict] = None

    # ------------------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(cls, source: Union[str, Path, Mapping], cfg: Optional[Mapping] = None,
                        device: Union[str, torch.device] = "cpu",
                        dtype: torch.dtype = torch.float32) -> "BEATsEncoder":
        """Build and strictly load from an official .pt path, a {"cfg", "model"} dict or a flat
        state dict (config then inferred from shapes unless `cfg` is given)."""
        label_dict = None
        if isinstance(source, (str, Path)):
            source = _read_checkpoint(Path(source))
        if "model" in source and isinstance(source["model"], Mapping):
            cfg = cfg if cfg is not None else source.get("cfg")
            label_dict = source.get("label_dict")
            state = source["model"]
        else:
            state = source
        config = config_from_cfg_dict(cfg) if cfg is not None else config_from_state_dict(state)
        with torch.device("meta"):
            model = cls(config)
        # to_empty() keeps module identity, so the shared relative-bias table stays shared.
        model = model.to_empty(device=device)
        missing, unexpected = model.load_state_dict(dict(state), strict=False)
        if missing or unexpected:
            raise CheckpointError("BEATs: the checkpoint does not match the model: "
                                  + describe_key_mismatch(missing, unexpected))
        model.label_dict = label_dict
        return model.to(dtype=dtype).eval()

    # ------------------------------------------------------------------------------ forward
    def tokens_from_fbank(self, fbank: torch.Tensor) -> torch.Tensor:
        """Normalised (B, T, 128) -> patch tokens (B, L, embed_dim), time-major (8 per row)."""
        x = self.patch_embedding(fbank.unsqueeze(1))  # (B, C, T // 16, 128 // 16)
        return x.flatten(2).transpose(1, 2)

    def extract_features(self, wav_16k: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                         hidden_states: Optional[list] = None):
        """(B, N) 16-kHz waveform in [-1, 1] -> (features (B, L, D), token_mask (B, L) or None).

        `padding_mask` (B, N) bool, True = padding sample. Features are the last layer's output
        (for fine-tuned files too; use `classify` for the AudioSet probabilities).
        """
        wav_16k = _check_wav(wav_16k)
        fbank = frontend.preprocess(wav_16k).to(self.patch_embedding.weight.dtype)
        tokens = self.tokens_from_fbank(fbank)
        token_mask = None
        if padding_mask is not None:
            frame_mask = frontend.chunk_mask(padding_mask.to(torch.bool), fbank.shape[1])
            token_mask = frontend.chunk_mask(frame_mask, tokens.shape[1])
        x = self.layer_norm(tokens)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        features = self.encoder(x, token_mask, hidden_states)
        return features, token_mask

    def classify(self, wav_16k: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Fine-tuned files only: AudioSet probabilities (B, 527) = sigmoid(mean token logit)."""
        if self.predictor is None:
            raise CheckpointError("BEATs: this is a pre-trained checkpoint without the AudioSet head.")
        features, token_mask = self.extract_features(wav_16k, padding_mask)
        logits = self.predictor(features)
        return torch.sigmoid(masked_token_mean(logits, token_mask))

    @torch.no_grad()
    def timbre_embedding(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Clip-level timbre vector (B, D): mean of the final features over all tokens.

        waveform: (N,), (B, N) or (B, C, N) at any rate; mixed to mono, resampled to 16 kHz.
        """
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)
        if waveform.dim() == 3:
            waveform = waveform.mean(dim=1)
        wav = resample(waveform.to(torch.float32), int(sample_rate), frontend.SAMPLE_RATE)
        param = self.patch_embedding.weight
        features, token_mask = self.extract_features(wav.to(param.device))
        return masked_token_mean(features, token_mask)


def masked_token_mean(x: torch.Tensor, token_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over tokens (B, L, C) -> (B, C), skipping padded tokens when a mask is given."""
    if token_mask is None or not bool(token_mask.any()):
        return x.mean(dim=1)
    valid = (~token_mask).unsqueeze(-1).to(x.dtype)
    return (x * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)


def _check_wav(wav: torch.Tensor) -> torch.Tensor:
    if wav.dim() != 2:
        raise MediaError(f"BEATs expects a (batch, samples) 16-kHz waveform, got shape {tuple(wav.shape)}.")
    if wav.shape[1] < MIN_SAMPLES_16K:
        raise MediaError(f"BEATs needs at least {MIN_SAMPLES_16K} samples at 16 kHz "
                         f"({MIN_SAMPLES_16K / 16000:.3f} s), got {wav.shape[1]}.")
    return wav


def _read_checkpoint(path: Path) -> Mapping:
    """An official {cfg, model[, label_dict]} .pt (weights-only) or a flat weights file."""
    if path.suffix.lower() == ".pt" and path.is_file():
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:  # a non-plain object inside the pickle
            raise CheckpointError(f"BEATs: could not load {path.name} with weights_only=True "
                                  f"({type(error).__name__}: {str(error)[:200]}).") from error
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            return data
    return read_state_dict(path, slot="BEATs")
