"""Envelope ControlNet (Stable-V2A §III-C) on the frozen MMAudio flow network.

Stable-V2A follows the DiT ControlNet of PixArt-δ: a trainable copy of the first 20 % of the
transformer blocks; the control is embedded by a zero-initialised layer and added to the copy's
input; each copied block's output passes a zero-initialised layer and is added to the output of
the matching frozen block. Here:

- The copy = the first `blocks` = max(1, ⌊0.2·depth⌋) blocks of the backbone in order (joint
  blocks first, then fused ones), with the backbone's weights at the start of training. For every
  official variant (and the embedded net) those are all joint (MM-DiT) blocks, so the copy sees
  the same joint structure as the backbone: its latent stream attends over [latent | clip | text]
  with its OWN clip/text streams, which start from the backbone's projected clip/text features and
  are updated by the copied clip/text sub-blocks. Only the latent stream leaves the copy: one
  residual per copied block, added to the backbone's latent stream right after block i. The copy
  is modulated by the same global_c / extended_c (flow time, video, text, sync) as the backbone.
- Control input: the RMS envelope (controls/envelope.py, 125 frames/s) resampled to the latent
  rate as `SUBFRAMES` values per latent token (the envelope inside that token's span, so 4× finer
  than one value per token at 16k), each as the linear value and its μ-law compression (the
  paper's representation), i.e. 2·SUBFRAMES features per token. They go through a small token conv
  embedder and the zero-initialised `input_proj`, and the result is added to the copy's input
  (the backbone's projected latent x). Envelopes are peak-normalised over the window, as the
  training envelopes (Stable-V2A's extraction peak-normalises each clip).
- Zero init (input_proj and every output layer) ⇒ the residuals are exact zeros and sampling is
  bitwise the backbone's. The backbone itself is not edited: residuals enter through
  `MMAudioNetwork.predict_flow(control=...)`, whose default None is the plain code path, so the
  official key layout and parity are untouched.

CFG (`cfg_mode`): the conditional branch always gets the envelope. "conditional" (default): the
unconditional branch runs with the envelope DROPPED (the ControlNet still runs, with its control
embedding masked to zero — what envelope dropout trains), so CFG pushes away from the
envelope-free prediction and amplifies the control like any condition. "both": the unconditional
branch gets the envelope too, so CFG amplifies only video/text and the control acts at strength 1.
`strength` scales all residuals (1 = as trained).

Long videos / latent prompting: `for_window(prompt_latents, start_s)` aims the control at a window
[prompt | target] whose target starts at start_s on the output timeline; prompt tokens that lie on
the timeline (continuation windows) get the envelope there, those before 0 s (a reference prompt)
get no control (masked like dropout).

Files: .safetensors, weights only, string metadata {"kind": "foley_controlnet", "config": JSON
(backbone architecture, copied blocks, subframes, backbone file/variant/mode), "training": JSON}.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, FoleyError
from ..models.mmaudio.blocks import JointBlock, ModulatedBlock
from ..models.mmaudio.config import NetworkConfig
from ..models.mmaudio.layers import ChannelLastConv1d
from ..models.mmaudio.network import FlowConditions
from .envelope import ENVELOPE_CLASSES, Envelope, envelope_values

KIND = "foley_controlnet"
FORMAT_VERSION = "1"
COPY_FRACTION = 0.2  # Stable-V2A's depth factor
SUBFRAMES = 4  # envelope samples per latent token
CFG_MODES = ("conditional", "both")
_MU = ENVELOPE_CLASSES - 1
# NetworkConfig fields that fix the weights (what a ControlNet must match).
_ARCH_FIELDS = ("latent_dim", "hidden_dim", "depth", "fused_depth", "num_heads", "clip_dim", "sync_dim",
                "text_dim", "text_seq_len", "mlp_ratio", "v2")


def copied_block_count(depth: int, fraction: float = COPY_FRACTION) -> int:
    """Blocks the ControlNet copies: the first ⌊fraction·depth⌋, at least one."""
    return max(1, int(math.floor(depth * fraction + 1e-9)))


@dataclass
class ControlNetConfig:
    backbone_arch: dict[str, Any]  # the backbone's weight-defining NetworkConfig fields
    blocks: int  # copied blocks (joint blocks first, then fused)
    subframes: int = SUBFRAMES
    # What it was trained against: {"file", "variant", "mode", "duration_s"}.
    backbone: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        depth = int(self.backbone_arch["depth"])
        if not 1 <= self.blocks <= depth:
            raise ValueError(f"a ControlNet copies 1 ... {depth} blocks of this backbone, not {self.blocks}")
        if self.subframes < 1:
            raise ValueError("subframes must be >= 1")

    @classmethod
    def for_backbone(cls, config: NetworkConfig, backbone: Optional[dict] = None,
                     blocks: Optional[int] = None, subframes: int = SUBFRAMES) -> "ControlNetConfig":
        arch = {k: getattr(config, k) for k in _ARCH_FIELDS}
        return cls(arch, copied_block_count(config.depth) if blocks is None else int(blocks), subframes,
                   dict(backbone or {}))

    def network_config(self) -> NetworkConfig:
        return NetworkConfig(**self.backbone_arch)

    @property
    def n_features(self) -> int:
        return 2 * self.subframes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ControlNetConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# --------------------------------------------------------------------------- control features
def envelope_tokens(envelope, n_tokens: int, latent_rate: float, *, frame_rate: Optional[float] = None,
                    start_s: float = 0.0, prompt_tokens: int = 0, subframes: int = SUBFRAMES
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(features (n_tokens, 2·subframes) float32, mask (n_tokens,) bool) for one window.

    Token j covers [τ_j, τ_j + 1/latent_rate) with τ_j = start_s + (j − prompt_tokens)/latent_rate on
    the output timeline; its `subframes` values sample the envelope (linear interpolation, edge
    values held) at the centres of equal sub-spans. Tokens before 0 s are masked (no control).
    Values are peak-normalised over the unmasked tokens; features = [linear | μ-law].
    """
    values = envelope_values(envelope)
    rate = envelope.frame_rate if isinstance(envelope, Envelope) else frame_rate
    if rate is None:
        raise ValueError("a plain envelope array needs frame_rate")
    if values.size == 0:
        raise FoleyError("The envelope is empty.")
    j = np.arange(n_tokens, dtype=np.float64)
    starts = start_s + (j - prompt_tokens) / latent_rate
    offsets = (np.arange(subframes, dtype=np.float64) + 0.5) / (subframes * latent_rate)
    times = starts[:, None] + offsets[None, :]
    sampled = np.interp(times, np.arange(values.size) / float(rate), values)
    mask = starts > -0.5 / latent_rate  # token on the output timeline (float slack)
    peak = float(sampled[mask].max()) if mask.any() else 0.0
    if peak > 0:
        sampled = sampled / peak
    sampled = np.clip(sampled, 0.0, None)
    compressed = np.log1p(_MU * sampled) / np.log1p(_MU)
    features = np.concatenate([sampled, compressed], axis=1).astype(np.float32)
    features[~mask] = 0.0
    return features, mask


# ---------------------------------------------------------------------------------- network
class EnvelopeControlNet(nn.Module):
    """The trainable copy + zero-initialised input/output layers (see the module doc)."""

    def __init__(self, config: ControlNetConfig):
        super().__init__()
        self.config = config
        net = config.network_config()
        dim, hidden, heads = net.hidden_dim, net.mlp_hidden_dim, net.num_heads
        n_joint = min(config.blocks, net.joint_depth)
        # The copy's clip/text streams are not used after its last joint block when no fused block
        # follows: that block's clip/text sub-blocks only make q, k, v (pre-only), like the backbone's
        # last joint block. Same classes and key names as the backbone's blocks otherwise.
        last = net.joint_depth - 1 if n_joint < config.blocks else n_joint - 1
        self.joint_blocks = nn.ModuleList(JointBlock(dim, heads, hidden, pre_only=(i == last)) for i in range(n_joint))
        self.fused_blocks = nn.ModuleList(ModulatedBlock(dim, heads, hidden, 3) for _ in range(config.blocks - n_joint))
        self.input_embed = nn.Sequential(ChannelLastConv1d(config.n_features, dim, 3), nn.SiLU(),
                                         ChannelLastConv1d(dim, dim, 3), nn.SiLU())
        self.input_proj = nn.Linear(dim, dim)
        self.output_projs = nn.ModuleList(nn.Linear(dim, dim) for _ in range(config.blocks))
        for layer in (self.input_proj, *self.output_projs):  # untrained ControlNet = exact zeros
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @torch.no_grad()
    def copy_backbone_blocks(self, network) -> None:
        """Start the copy from the backbone's first blocks (ControlNet's initialisation)."""
        check_backbone(self, network, "this ControlNet")
        for i, block in enumerate(self.joint_blocks):
            source = network.joint_blocks[i].state_dict()
            target = block.state_dict()
            for key, value in target.items():
                # A pre-only copy keeps the first 2·D rows (shift_msa, scale_msa) of the 6·D modulation.
                value.copy_(source[key][:value.shape[0]] if source[key].shape != value.shape else source[key])
        for i, block in enumerate(self.fused_blocks):
            block.load_state_dict(network.fused_blocks[i].state_dict())

    def forward(self, features: torch.Tensor, mask: Optional[torch.Tensor], x: torch.Tensor, clip: torch.Tensor,
                text: torch.Tensor, global_c: torch.Tensor, extended_c: torch.Tensor, latent_rot: torch.Tensor,
                clip_rot: torch.Tensor, strength: float = 1.0) -> list[torch.Tensor]:
        """Residuals (one (B, N, D) per copied block) for the backbone's latent stream.

        features (B, N, 2·subframes); mask (B, N, 1) of 0/1 or None (all kept): 0 drops the control.
        The remaining arguments are the backbone's block inputs (MMAudioNetwork.predict_flow).
        """
        control = self.input_proj(self.input_embed(features.to(x.dtype)))
        if mask is not None:
            control = control * mask.to(control.dtype)
        h = x + control
        residuals = []
        for block, out in zip(self.joint_blocks, self.output_projs):
            h, clip, text = block(h, clip, text, global_c, extended_c, latent_rot, clip_rot)
            residuals.append(out(h))
        for block, out in zip(self.fused_blocks, self.output_projs[len(self.joint_blocks):]):
            h = block(h, extended_c, latent_rot)
            residuals.append(out(h))
        if strength != 1.0:
            residuals = [r * strength for r in residuals]
        return residuals


def check_backbone(controlnet: EnvelopeControlNet, network, name: str) -> None:
    """CheckpointError when the ControlNet was made for a backbone of another architecture."""
    cfg = getattr(network, "config", None)
    ours = controlnet.config.backbone_arch
    theirs = {k: getattr(cfg, k, None) for k in _ARCH_FIELDS}
    if theirs != {k: ours.get(k) for k in _ARCH_FIELDS}:
        diff = ", ".join(f"{k} {ours.get(k)} vs {theirs[k]}" for k in _ARCH_FIELDS if theirs[k] != ours.get(k))
        trained = controlnet.config.backbone.get("file") or "see its metadata"
        raise CheckpointError(
            f"{name} was trained for another flow network ({diff}; ControlNet vs loaded network). Load "
            f"the network it was trained against ({trained}) or train a ControlNet for this one with "
            "`python -m foley_core.training train-controlnet`.")


# ------------------------------------------------------------------------------- conditions
@dataclass
class ControlledConditions(FlowConditions):
    """FlowConditions plus the per-row control signal (None = no ControlNet for these rows)."""

    control: Optional[torch.Tensor] = None  # (B, N, F)
    control_mask: Optional[torch.Tensor] = None  # (B, N, 1), 0 = control dropped

    def base(self) -> FlowConditions:
        return FlowConditions(**{f.name: getattr(self, f.name) for f in fields(FlowConditions)})

    @classmethod
    def wrap(cls, base: FlowConditions, control, mask) -> "ControlledConditions":
        return cls(**{f.name: getattr(base, f.name) for f in fields(FlowConditions)}, control=control,
                   control_mask=mask)

    def expand(self, batch_size: int) -> "ControlledConditions":
        if self.batch_size == batch_size:
            return self

        def grow(t):
            return None if t is None else t.expand(batch_size, *t.shape[1:])

        return self.wrap(self.base().expand(batch_size), grow(self.control), grow(self.control_mask))

    def with_extra_global(self, extra) -> "ControlledConditions":
        return self.wrap(self.base().with_extra_global(extra), self.control, self.control_mask)

    @staticmethod
    def concat(parts: list) -> FlowConditions:
        bases = [p.base() if isinstance(p, ControlledConditions) else p for p in parts]
        joined = FlowConditions.concat(bases)
        controls = [getattr(p, "control", None) for p in parts]
        if all(c is None for c in controls):
            return joined
        like = next(c for c in controls if c is not None)
        feats, masks = [], []
        for p, c in zip(parts, controls):
            n = p.batch_size
            if c is None:  # rows without a control: dropped (zeros, mask 0)
                feats.append(like.new_zeros(n, *like.shape[1:]))
                masks.append(like.new_zeros(n, like.shape[1], 1))
            else:
                feats.append(c.expand(n, *c.shape[1:]))
                m = p.control_mask
                masks.append(like.new_ones(n, like.shape[1], 1) if m is None else m.expand(n, *m.shape[1:]).to(like))
        return ControlledConditions.wrap(joined, torch.cat(feats), torch.cat(masks))


class ControlledNetwork:
    """The backbone steered by a ControlNet towards an envelope (wraps any flow network object,
    e.g. a StyledNetwork; everything not defined here is delegated)."""

    def __init__(self, network, controlnet: EnvelopeControlNet, envelope, *, strength: float = 1.0,
                 cfg_mode: str = "conditional", prompt_latents: int = 0, start_s: float = 0.0,
                 name: str = "The ControlNet"):
        if cfg_mode not in CFG_MODES:
            raise FoleyError(f"ControlNet CFG mode must be one of {CFG_MODES}, not {cfg_mode!r}.")
        if envelope is None:
            raise FoleyError(f"{name} needs an envelope: connect Foley RMS Predict's envelope to the "
                             "sampler's envelope input (or disconnect the ControlNet).")
        check_backbone(controlnet, network, name)
        self.network, self.controlnet, self.envelope = network, controlnet, envelope
        self.strength, self.cfg_mode = float(strength), cfg_mode
        self.prompt_latents, self.start_s = int(prompt_latents), float(start_s)
        self._cast: dict = {}  # (device, dtype) -> ControlNet copy; shared by the window copies

    def for_window(self, prompt_latents: int, start_s: float) -> "ControlledNetwork":
        window = copy.copy(self)
        window.prompt_latents, window.start_s = int(prompt_latents), float(start_s)
        return window

    def latent_rate(self) -> float:
        from ..models.mmaudio.sequence import audio_mode_settings

        mode = self.controlnet.config.backbone.get("mode") or getattr(self.network.config, "mode", None)
        if mode is None:
            raise FoleyError("The ControlNet cannot tell the latent rate: its metadata and the network lack the mode.")
        sample_rate, hop = audio_mode_settings(mode)
        return sample_rate / hop / 2

    def control_signal(self, batch: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.network.latent_seq_len
        feats, mask = envelope_tokens(self.envelope, n, self.latent_rate(), start_s=self.start_s,
                                      prompt_tokens=self.prompt_latents, subframes=self.controlnet.config.subframes)
        feats = torch.from_numpy(feats).to(device=device, dtype=dtype)[None].expand(batch, -1, -1)
        mask = torch.from_numpy(mask.astype(np.float32)).to(device=device, dtype=dtype)[None, :, None]
        return feats, mask.expand(batch, -1, -1)

    def _module_for(self, like: torch.Tensor) -> EnvelopeControlNet:
        """The ControlNet on the sampler's device and dtype (a private copy: the loaded one stays fp32)."""
        anchor = self.controlnet.input_proj.weight
        if anchor.device == like.device and anchor.dtype == like.dtype:
            return self.controlnet
        key = (like.device, like.dtype)
        if key not in self._cast:
            self._cast[key] = copy.deepcopy(self.controlnet).to(device=like.device, dtype=like.dtype)
        return self._cast[key]

    # --- what the sampler calls -------------------------------------------------------------
    def preprocess_conditions(self, clip_f, sync_f, text_f):
        base = self.network.preprocess_conditions(clip_f, sync_f, text_f)
        feats, mask = self.control_signal(base.batch_size, base.clip_f.device, base.clip_f.dtype)
        return ControlledConditions.wrap(base, feats, mask)

    def empty_conditions(self, batch_size: int, negative_text_f=None):
        base = self.network.empty_conditions(batch_size, negative_text_f)
        feats, mask = self.control_signal(base.batch_size, base.clip_f.device, base.clip_f.dtype)
        if self.cfg_mode == "conditional":
            mask = torch.zeros_like(mask)  # the envelope is dropped in the unconditional branch
        return ControlledConditions.wrap(base, feats, mask)

    def predict_flow(self, latent, t, conditions, control=None):
        if not isinstance(conditions, ControlledConditions) or conditions.control is None:
            return self.network.predict_flow(latent, t, conditions)
        conditions = conditions.expand(latent.shape[0])
        module = self._module_for(conditions.clip_f)
        feats, mask = conditions.control, conditions.control_mask

        def residuals(x, clip, text, global_c, extended_c, latent_rot, clip_rot):
            return module(feats, mask, x, clip, text, global_c, extended_c, latent_rot, clip_rot, self.strength)

        return self.network.predict_flow(latent, t, conditions.base(), control=residuals)

    def __getattr__(self, name):  # only called for attributes not set on the wrapper
        if name == "network" or name.startswith("__"):  # copy/pickle probe before __init__ ran
            raise AttributeError(name)
        return getattr(self.network, name)


def apply_controlnet(network, controlnet: Optional[EnvelopeControlNet], envelope, *, strength: float = 1.0,
                     cfg_mode: str = "conditional", name: str = "The ControlNet"):
    """`network` itself without a ControlNet, else a ControlledNetwork aimed at `envelope`."""
    if controlnet is None:
        return network
    return ControlledNetwork(network, controlnet, envelope, strength=strength, cfg_mode=cfg_mode, name=name)


# ------------------------------------------------------------------------------------ files
def save_controlnet(controlnet: EnvelopeControlNet, path: str | Path, training: Optional[dict] = None, *,
                    fp16: bool = False) -> Path:
    """Weights-only .safetensors with the config (and training summary) as metadata."""
    from ..models.add_on_files import save_add_on

    return save_add_on(controlnet, path, kind=KIND, format_version=FORMAT_VERSION, label="a ControlNet",
                       training=training, dtype=torch.float16 if fp16 else torch.float32)


def load_controlnet(path: str | Path) -> tuple[EnvelopeControlNet, dict[str, Any]]:
    """(ControlNet in eval mode on the CPU, fp32, metadata) from a file written by `save_controlnet`."""
    from ..models.add_on_files import add_on_summary, load_matching_weights, parse_config, read_add_on_metadata

    path, metadata = read_add_on_metadata(
        path, kind=KIND, label="ControlNet", noun="envelope ControlNet", folder="foley_controlnet",
        made_by="ControlNets are exported by `python -m foley_core.training export-controlnet`",
        wrong_kind_hint="it may be a flow network or an adapter — put it into the matching loader, and export "
                        "ControlNets with `python -m foley_core.training export-controlnet`")
    config = parse_config(metadata, ControlNetConfig.from_dict, "ControlNet", path)
    controlnet = EnvelopeControlNet(config)
    load_matching_weights(controlnet, path, "ControlNet")
    return controlnet, add_on_summary(config, metadata)


def describe(controlnet: EnvelopeControlNet) -> str:
    cfg = controlnet.config
    arch = cfg.backbone_arch
    trained = cfg.backbone.get("file") or f"width {arch['hidden_dim']}, depth {arch['depth']}"
    return (f"envelope ControlNet: copy of the first {cfg.blocks} of {arch['depth']} blocks, "
            f"{cfg.subframes} envelope values per latent, trained against {trained}")
