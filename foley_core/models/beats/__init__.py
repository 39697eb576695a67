"""BEATs audio encoder (timbre encoder of AudioIM). Spec: shared/spec/beats.md."""

from .attention import relative_position_bucket
from .config import ITER3_CONFIG, ITER3_FINETUNED_CONFIG, BEATsConfig, config_from_cfg_dict, config_from_state_dict
from .frontend import chunk_mask, log_mel_fbank, normalise_fbank, preprocess
from .model import BEATsEncoder, masked_token_mean

__all__ = [
    "BEATsConfig", "BEATsEncoder", "ITER3_CONFIG", "ITER3_FINETUNED_CONFIG", "chunk_mask",
    "config_from_cfg_dict", "config_from_state_dict", "log_mel_fbank", "masked_token_mean",
    "normalise_fbank", "preprocess", "relative_position_bucket",
]
