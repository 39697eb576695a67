"""MMAudio mel VAE (spec §6): 1-D conv encoder/decoder with official state-dict key names.

Module weights hold *already MP-normalised* conv weights; load real checkpoints through
`checkpoint.load_vae`, which normalises the raw weights once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .mp_modules import (
    ACTIVATION_CLAMP,
    AttnBlock,
    Downsample,
    ResBlock,
    Upsample,
    mp_conv,
    mp_silu,
)

LOGVAR_RANGE = (-30.0, 20.0)


@dataclass(frozen=True)
class VAEConfig:
    n_mels: int  # data_dim
    embed_dim: int  # latent channels
    hidden_dim: int
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    down_layers: tuple[int, ...] = (0,)

    @property
    def mode(self) -> str:
        """Mel domain the VAE was trained on: '16k' (80 mels, log10) or '44k' (128 mels, ln)."""
        return "16k" if self.n_mels == 80 else "44k"

    @property
    def channels(self) -> list[int]:
        return [self.hidden_dim * m for m in self.ch_mult]

    @classmethod
    def from_dict(cls, d: dict) -> "VAEConfig":
        """Accepts the official/parity names (data_dim, embed_dim, hidden_dim, ...)."""
        return cls(
            n_mels=int(d.get("n_mels", d.get("data_dim"))),
            embed_dim=int(d["embed_dim"]),
            hidden_dim=int(d["hidden_dim"]),
            ch_mult=tuple(d.get("ch_mult", (1, 2, 4))),
            num_res_blocks=int(d.get("num_res_blocks", 2)),
            down_layers=tuple(d.get("down_layers", (0,))),
        )


VAE_16K = VAEConfig(n_mels=80, embed_dim=20, hidden_dim=384)
VAE_44K = VAEConfig(n_mels=128, embed_dim=40, hidden_dim=512)


class _Level(nn.Module):
    """One resolution level: `block` list plus an optional `downsample`/`upsample`."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.block = nn.ModuleList(blocks)


class _Mid(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = ResBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block_2(self.attn_1(self.block_1(x)))
        return x.clamp(-ACTIVATION_CLAMP, ACTIVATION_CLAMP)


def _clamped(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return block(x).clamp(-ACTIVATION_CLAMP, ACTIVATION_CLAMP)


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch = cfg.channels
        self.learnable_gain = nn.Parameter(torch.zeros([]))
        self.conv_in = mp_conv(cfg.n_mels, ch[0], 3)
        self.down = nn.ModuleList()
        c_prev = ch[0]
        for i, c in enumerate(ch):
            level = _Level([ResBlock(c_prev if j == 0 else c, c) for j in range(cfg.num_res_blocks)])
            if i in cfg.down_layers:
                level.downsample = Downsample(c)
            self.down.append(level)
            c_prev = c
        self.mid = _Mid(ch[-1])
        self.conv_out = mp_conv(ch[-1], 2 * cfg.embed_dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                x = _clamped(block, x)
            if hasattr(level, "downsample"):
                x = level.downsample(x)
        x = self.mid(x)
        return self.conv_out(mp_silu(x)) * (1 + self.learnable_gain)


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch = cfg.channels
        self.learnable_gain = nn.Parameter(torch.zeros([]))
        self.conv_in = mp_conv(cfg.embed_dim, ch[-1], 3)
        self.mid = _Mid(ch[-1])
        levels: list[_Level] = []
        c_prev = ch[-1]
        for i in reversed(range(len(ch))):
            c = ch[i]
            level = _Level([ResBlock(c_prev if j == 0 else c, c) for j in range(cfg.num_res_blocks + 1)])
            # Mirror of the encoder: undo the downsample that followed encoder level i-1.
            if i - 1 in cfg.down_layers:
                level.upsample = Upsample(c)
            levels.insert(0, level)  # official indexing: up.0 is the highest resolution
            c_prev = c
        self.up = nn.ModuleList(levels)
        self.conv_out = mp_conv(ch[0], cfg.n_mels, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for block in level.block:
                x = _clamped(block, x)
            if hasattr(level, "upsample"):
                x = level.upsample(x)
        return self.conv_out(mp_silu(x)) * (1 + self.learnable_gain)


@dataclass
class Posterior:
    """Diagonal Gaussian over latents, shapes (B, embed_dim, N)."""

    mean: torch.Tensor
    logvar: torch.Tensor  # already clamped
    std: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.std = torch.exp(0.5 * self.logvar)

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, eps: torch.Tensor | None = None, generator: torch.Generator | None = None):
        if eps is None:
            eps = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype,
                              device=self.mean.device)
        return self.mean + self.std * eps.to(self.mean)


class MelVAE(nn.Module):
    """Official layout: `encoder.*`, `decoder.*`, persistent `data_mean`/`data_std` (1, n_mels, 1).

    Inputs/outputs of `encode`/`decode` are fp32 mels/latents; the network runs in the
    module's parameter dtype.
    """

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("data_mean", torch.zeros(1, cfg.n_mels, 1))
        self.register_buffer("data_std", torch.ones(1, cfg.n_mels, 1))
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.decoder.conv_in.weight.dtype

    def normalize_mel(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel.float() - self.data_mean.float()) / self.data_std.float()

    def unnormalize_mel(self, mel: torch.Tensor) -> torch.Tensor:
        return mel.float() * self.data_std.float() + self.data_mean.float()

    def encode(self, mel: torch.Tensor) -> Posterior:
        """mel (B, n_mels, T) in the VAE's log domain -> posterior over (B, embed, T//2)."""
        moments = self.encoder(self.normalize_mel(mel).to(self.compute_dtype)).float()
        mean, logvar = moments.chunk(2, dim=1)
        return Posterior(mean, logvar.clamp(*LOGVAR_RANGE))

    def decode_normalized(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output before un-normalisation (fp32)."""
        return self.decoder(z.to(self.compute_dtype)).float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, embed, N) -> mel (B, n_mels, 2N), fp32, in the VAE's log domain."""
        return self.unnormalize_mel(self.decode_normalized(z))
