"""BigVGAN generator (spec §8), one class for the 16k v1 and the 44k v2 vocoders.

Convs are plain (weight norm is folded at load, see `checkpoint.py`). Parameter names match the
checkpoints: conv_pre, ups.<i>.0, resblocks.<i*3+j>.{convs1,convs2,activations},
activation_post, conv_post.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .activations import Activation1d


@dataclass(frozen=True)
class BigVGANConfig:
    num_mels: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"
    snake_logscale: bool = True
    use_tanh_at_final: bool = True  # v1 behaviour; NVIDIA v2 44k sets both to false
    use_bias_at_final: bool = True
    sampling_rate: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "BigVGANConfig":
        """Build from NVIDIA's config.json format (unknown training keys are ignored)."""
        if str(d.get("resblock", "1")) != "1":
            raise ValueError("only BigVGAN resblock type '1' (AMPBlock1) is supported")
        return cls(
            num_mels=int(d["num_mels"]),
            upsample_rates=tuple(int(u) for u in d["upsample_rates"]),
            upsample_kernel_sizes=tuple(int(k) for k in d["upsample_kernel_sizes"]),
            upsample_initial_channel=int(d["upsample_initial_channel"]),
            resblock_kernel_sizes=tuple(int(k) for k in d.get("resblock_kernel_sizes", (3, 7, 11))),
            resblock_dilation_sizes=tuple(
                tuple(int(x) for x in ds)
                for ds in d.get("resblock_dilation_sizes", ((1, 3, 5),) * 3)
            ),
            activation=str(d.get("activation", "snakebeta")),
            snake_logscale=bool(d.get("snake_logscale", True)),
            use_tanh_at_final=bool(d.get("use_tanh_at_final", True)),
            use_bias_at_final=bool(d.get("use_bias_at_final", True)),
            sampling_rate=d.get("sampling_rate"),
        )

    @property
    def hop_length(self) -> int:
        hop = 1
        for u in self.upsample_rates:
            hop *= u
        return hop


# Make-An-Audio 2 vocoder shipped by MMAudio as ext_weights/best_netG.pt (no config.json).
BIGVGAN_16K = BigVGANConfig(
    num_mels=80,
    upsample_rates=(4, 4, 2, 2, 2, 2),
    upsample_kernel_sizes=(8, 8, 4, 4, 4, 4),
    upsample_initial_channel=1536,
    sampling_rate=16_000,
)
# nvidia/bigvgan_v2_44khz_128band_512x.
BIGVGAN_44K = BigVGANConfig(
    num_mels=128,
    upsample_rates=(8, 4, 2, 2, 2, 2),
    upsample_kernel_sizes=(16, 8, 4, 4, 4, 4),
    upsample_initial_channel=1536,
    use_tanh_at_final=False,
    use_bias_at_final=False,
    sampling_rate=44_100,
)


def _same_padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class AMPBlock1(nn.Module):
    """Per dilation d: x += conv2(act(conv1_d(act(x)))); activations alternate (pre, mid)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...], cfg: BigVGANConfig):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=_same_padding(kernel, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=_same_padding(kernel))
            for _ in dilations
        )
        self.activations = nn.ModuleList(
            Activation1d(channels, cfg.activation, cfg.snake_logscale)
            for _ in range(2 * len(dilations))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            h = c1(self.activations[2 * i](x))
            x = x + c2(self.activations[2 * i + 1](h))
        return x


class BigVGANGenerator(nn.Module):
    """mel (B, num_mels, T) in the vocoder's log domain -> wav (B, 1, T * hop) in [-1, 1]."""

    def __init__(self, cfg: BigVGANConfig):
        super().__init__()
        self.cfg = cfg
        c0 = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, c0, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = c0
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            ch = c0 // 2 ** (i + 1)
            # Nested list: checkpoint keys are ups.<i>.0.*
            self.ups.append(nn.ModuleList([
                nn.ConvTranspose1d(2 * ch, ch, k, stride=u, padding=(k - u) // 2)
            ]))
            for k_res, dils in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(AMPBlock1(ch, k_res, dils, cfg))
        self.activation_post = Activation1d(ch, cfg.activation, cfg.snake_logscale)
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3, bias=cfg.use_bias_at_final)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        n_kernels = len(self.cfg.resblock_kernel_sizes)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up[0](x)
            blocks = self.resblocks[i * n_kernels:(i + 1) * n_kernels]
            x = sum(block(x) for block in blocks) / n_kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.cfg.use_tanh_at_final else x.clamp(-1.0, 1.0)
