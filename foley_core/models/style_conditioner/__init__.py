"""MusicGen-Style style conditioner (tempo encoder of AudioIM) and its MERT feature extractor."""

from .conditioner import (KEY_PREFIX, StyleConditioner, StyleConfig, config_from_state_dict,
                          mert_features, mert_input, strip_prefix)
from .mert import MERT_V1_95M_CONFIG, build_mert, load_mert, to_classic_names, to_parametrized_names
from .quantizer import ResidualVQ
from .resample import resample_frac
from .transformer import sinusoidal_embedding

__all__ = [
    "KEY_PREFIX", "MERT_V1_95M_CONFIG", "ResidualVQ", "StyleConditioner", "StyleConfig",
    "build_mert", "config_from_state_dict", "load_mert", "mert_features", "mert_input",
    "resample_frac", "sinusoidal_embedding", "strip_prefix", "to_classic_names",
    "to_parametrized_names",
]
