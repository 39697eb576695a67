"""The global style path (AudioIM §2.2 + AC-Foley's acoustic vector): a small adapter that turns a
reference's embeddings into a vector added to MMAudio's global condition.

    F_style = out(MLP(P_timbre(F_timbre) + P_tempo(F_tempo) + P_acoustic(a)))
    global_c = t_embed(t) + global_cond_mlp(clip_c + text_c) + F_style

F_timbre: BEATs clip embedding; F_tempo: the style conditioner's pooled tokens; a: the AC-Foley
acoustic vector (mean-pooled VAE latents of the reference). Each part is optional; the adapter's
config records which ones it was trained with, and all of those must be present at use.
`out` is zero-initialised, so an untrained adapter adds exact zeros: sampling is bitwise the
backbone's. The backbone is never edited: the vector rides in FlowConditions.extra_global
(through `StyledNetwork`), so the official key layout and the parity tests stay as they are.
CFG: only the conditional branch gets F_style; the unconditional branch has no style, so the
guidance pushes away from the style-free prediction (the reference acts like a condition).

Files: .safetensors with weights only + string metadata {"kind": "foley_style_adapter",
"config": JSON (dims, parts, backbone it was trained against), "training": JSON}.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..errors import CheckpointError, FoleyError

KIND = "foley_style_adapter"
FORMAT_VERSION = "1"
PARTS = ("timbre", "tempo", "acoustic")
PART_LABELS = {"timbre": "timbre (BEATs)", "tempo": "tempo (style conditioner)",
               "acoustic": "acoustic vector (VAE latents)"}


@dataclass
class StyleAdapterConfig:
    width: int  # the backbone's hidden dim D (size of global_c)
    hidden_dim: int = 256
    timbre_dim: Optional[int] = None  # None = not an input of this adapter
    tempo_dim: Optional[int] = None
    acoustic_dim: Optional[int] = None  # the VAE's latent channels
    # What it was trained against: {"hidden_dim", "latent_dim", "mode", "variant", "file"}.
    backbone: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("a style adapter needs at least one input (timbre, tempo or acoustic)")
        if min(self.width, self.hidden_dim) < 1:
            raise ValueError("width and hidden_dim must be >= 1")

    def dim(self, part: str) -> Optional[int]:
        return getattr(self, f"{part}_dim")

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in PARTS if self.dim(p))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StyleAdapterConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class StyleAdapter(nn.Module):
    """F_style from the reference's embeddings. Inputs are standardised with statistics stored
    in the adapter (set from the training references), so it needs nothing else at use."""

    def __init__(self, config: StyleAdapterConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden_dim
        self.inputs = nn.ModuleDict({p: nn.Linear(config.dim(p), hidden) for p in config.parts})
        for part in config.parts:
            self.register_buffer(f"{part}_mean", torch.zeros(config.dim(part)))
            self.register_buffer(f"{part}_std", torch.ones(config.dim(part)))
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.out = nn.Linear(hidden, config.width)
        nn.init.zeros_(self.out.weight)  # untrained adapter = exact zeros = the plain backbone
        nn.init.zeros_(self.out.bias)

    @torch.no_grad()
    def set_input_statistics(self, part: str, values: torch.Tensor) -> None:
        """Standardise `part` with the mean/std of `values` (N, dim)."""
        values = values.float()
        getattr(self, f"{part}_mean").copy_(values.mean(0))
        getattr(self, f"{part}_std").copy_(values.std(0).clamp_min(1e-4) if len(values) > 1
                                           else torch.ones_like(values[0]))

    def forward(self, keep: Optional[torch.Tensor] = None, **parts: Optional[torch.Tensor]) -> torch.Tensor:
        """(B, width) from the parts the adapter was trained with ((B, dim) each).

        keep: optional (B,) bool; False rows give exact zeros (condition dropout / no reference).
        """
        h = None
        for part in self.config.parts:
            value = parts.get(part)
            if value is None:
                raise FoleyError(f"This style adapter was trained with the {PART_LABELS[part]} input, "
                                 "but the reference has none; enable that encoder in Foley Style Encode.")
            mean, std = getattr(self, f"{part}_mean"), getattr(self, f"{part}_std")
            x = (value.to(mean) - mean) / std
            term = self.inputs[part](x)
            h = term if h is None else h + term
        style = self.out(self.mlp(h))
        if keep is not None:
            style = style * keep.to(style).view(-1, 1)
        return style


def style_parts(style) -> dict[str, Optional[torch.Tensor]]:
    """{part: (1, dim) tensor or None} from a ReferenceStyle."""
    return {"timbre": style.timbre_embedding, "tempo": style.tempo_embedding,
            "acoustic": style.acoustic_vector}


def check_style(adapter: StyleAdapter, style, name: str = "the style adapter") -> None:
    """FoleyError when the reference lacks an input the adapter needs, or has another size."""
    values = style_parts(style)
    for part in adapter.config.parts:
        value = values[part]
        if value is None:
            raise FoleyError(
                f"{name} was trained with the {PART_LABELS[part]} input, but this reference has none: "
                "load that encoder in Foley Load Style Encoders and connect it to Foley Style Encode "
                "(or use an adapter trained without it).")
        if value.shape[-1] != adapter.config.dim(part):
            raise FoleyError(f"{name} expects a {adapter.config.dim(part)}-d {PART_LABELS[part]} but the "
                             f"reference's has {value.shape[-1]}; use the encoder the adapter was trained with.")


@torch.no_grad()
def style_vector(adapter: StyleAdapter, style, name: str = "the style adapter") -> torch.Tensor:
    """F_style (1, width) of a ReferenceStyle, in float32 on the adapter's device."""
    check_style(adapter, style, name)
    anchor = adapter.out.weight
    parts = {p: v.to(device=anchor.device, dtype=torch.float32).reshape(1, -1)
             for p, v in style_parts(style).items() if v is not None and p in adapter.config.parts}
    return adapter(**parts).float()


def check_backbone(adapter: StyleAdapter, network, file_name: str) -> None:
    """CheckpointError when the adapter was trained for a backbone of another width / latent size."""
    cfg = network.config
    if adapter.config.width != cfg.hidden_dim:
        raise CheckpointError(
            f"Style adapter {file_name} was trained for a flow network of width {adapter.config.width}, "
            f"but the loaded network ({getattr(cfg, 'variant', None) or 'this model'}) has width "
            f"{cfg.hidden_dim}; load the network it was trained against "
            f"({adapter.config.backbone.get('file', 'see its metadata')}) or train an adapter for this one.")
    if adapter.config.acoustic_dim and adapter.config.acoustic_dim != cfg.latent_dim:
        raise CheckpointError(
            f"Style adapter {file_name} reads {adapter.config.acoustic_dim}-channel VAE latents but the "
            f"network uses {cfg.latent_dim}; use the backbone and codec it was trained with.")


class StyledNetwork:
    """The backbone with F_style added to the conditional branch's global condition.

    Delegates everything to the wrapped network; only `preprocess_conditions` (what the sampler
    calls for the conditional branch) attaches the vector. `empty_conditions` (the unconditional
    branch) goes straight to the network, so it carries no style.
    """

    def __init__(self, network, extra_global: torch.Tensor):
        self.network = network
        self.extra_global = extra_global

    def preprocess_conditions(self, clip_f, sync_f, text_f):
        conditions = self.network.preprocess_conditions(clip_f, sync_f, text_f)
        return conditions.with_extra_global(self.extra_global)

    def __getattr__(self, name):  # only called for attributes not set on the wrapper
        return getattr(self.network, name)


def apply_style(network, adapter: Optional[StyleAdapter], style, name: str = "the style adapter",
                strength: float = 1.0):
    """`network` itself without an adapter, else a StyledNetwork carrying strength · F_style.

    strength scales the adapter's output (1 = as trained; like a LoRA weight); a zero-initialised
    adapter stays exact zeros at any strength."""
    if adapter is None:
        return network
    if style is None:
        raise FoleyError(f"{name} needs a reference: connect Foley Style Encode's style to the sampler "
                         "(or disconnect the adapter).")
    if not (strength >= 0 and strength < float("inf")):
        raise FoleyError(f"{name}: strength must be a finite number >= 0, got {strength}.")
    check_backbone(adapter, network, name)
    return StyledNetwork(network, style_vector(adapter, style, name) * float(strength))


# ------------------------------------------------------------------------------------ files
def save_adapter(adapter: StyleAdapter, path: str | Path, training: Optional[dict] = None) -> Path:
    """Weights-only .safetensors with the config (and training summary) as metadata."""
    from .add_on_files import save_add_on

    return save_add_on(adapter, path, kind=KIND, format_version=FORMAT_VERSION, label="a style adapter",
                       training=training)


def load_adapter(path: str | Path) -> tuple[StyleAdapter, dict[str, Any]]:
    """(adapter in eval mode on the CPU, metadata) from a file written by `save_adapter`.

    Only .safetensors with kind "foley_style_adapter" are accepted; anything else, or weights that
    do not fit the recorded config, is a CheckpointError naming the file and the fix.
    """
    from .add_on_files import add_on_summary, load_matching_weights, parse_config, read_add_on_metadata

    path, metadata = read_add_on_metadata(
        path, kind=KIND, label="Style adapter", noun="style adapter", folder="foley_adapters",
        made_by="adapters are exported by `python -m foley_core.training export-adapter`",
        wrong_kind_hint="it may be a flow network or encoder — put it into the matching loader, and export "
                        "adapters with `python -m foley_core.training export-adapter`")
    config = parse_config(metadata, StyleAdapterConfig.from_dict, "Style adapter", path)
    adapter = StyleAdapter(config)
    load_matching_weights(adapter, path, "Style adapter", slot="style adapter")
    return adapter, add_on_summary(config, metadata)


def describe(adapter: StyleAdapter) -> str:
    cfg = adapter.config
    backbone = cfg.backbone.get("file") or f"width {cfg.width}"
    return (f"style adapter: inputs {', '.join(cfg.parts)}, width {cfg.width}, trained against {backbone}")
