"""BigVGAN vocoders (16k Make-An-Audio 2 v1, 44k NVIDIA v2) with load-time weight-norm folding."""

from .activations import Activation1d, kaiser_sinc_filter
from .checkpoint import (
    KNOWN_CONFIGS,
    fold_weight_norm,
    fold_weight_norm_tensor,
    infer_known_config,
    load_bigvgan,
    prepare_generator_state_dict,
    read_config,
    unwrap_generator,
)
from .generator import BIGVGAN_16K, BIGVGAN_44K, AMPBlock1, BigVGANConfig, BigVGANGenerator

__all__ = [
    "AMPBlock1",
    "Activation1d",
    "BIGVGAN_16K",
    "BIGVGAN_44K",
    "BigVGANConfig",
    "BigVGANGenerator",
    "KNOWN_CONFIGS",
    "fold_weight_norm",
    "fold_weight_norm_tensor",
    "infer_known_config",
    "kaiser_sinc_filter",
    "load_bigvgan",
    "prepare_generator_state_dict",
    "read_config",
    "unwrap_generator",
]
