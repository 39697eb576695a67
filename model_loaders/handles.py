"""The values that loader nodes pass along the graph (FOLEY_MODEL, FOLEY_ENCODERS, FOLEY_CODEC)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch


@dataclass
class FoleyModel:
    """FOLEY_MODEL: the flow network in a ModelPatcher plus what was detected about it."""

    patcher: Any
    variant: str  # "large_44k_v2", … or "custom"
    mode: Optional[str]  # "16k" / "44k"; None = taken from the codec
    dtype: torch.dtype
    file_name: str
    notes: str = ""  # e.g. that the embedded model stands in for a file that is not installed
    window_s: float = 8.0  # the clip length the network was trained on (its natural window)

    @property
    def network(self):
        return self.patcher.model

    def describe(self) -> str:
        return f"{self.variant} ({self.file_name}, {str(self.dtype).replace('torch.', '')})"


@dataclass
class FoleyEncoders:
    """FOLEY_ENCODERS: CLIP (image + text) and the Synchformer visual encoder."""

    clip: Any  # ModelPatcher around foley_core ClipEncoder
    synchformer: Any  # ModelPatcher around SynchformerVisualEncoder
    dtype: torch.dtype
    files: tuple[str, str]
    notes: str = ""


@dataclass
class FoleyCodec:
    """FOLEY_CODEC: mel VAE + vocoder for one audio mode."""

    vae: Any  # ModelPatcher around MelVAE
    vocoder: Any  # ModelPatcher around BigVGANGenerator
    mode: str  # "16k" / "44k"
    sample_rate: int
    hop: int  # waveform samples per mel frame
    latent_dim: int
    dtype: torch.dtype
    files: tuple[str, str]
    notes: str = ""


@dataclass
class FoleyStyleEncoders:
    """FOLEY_STYLE_ENCODERS: AudioIM's timbre (BEATs) and tempo (style conditioner + MERT)
    encoders; any of them may be absent."""

    timbre: Any = None  # ModelPatcher around BEATsEncoder
    tempo: Any = None  # ModelPatcher around StyleConditioner
    mert: Any = None  # ModelPatcher around MERT (HubertModel)
    files: tuple[str, ...] = ()
