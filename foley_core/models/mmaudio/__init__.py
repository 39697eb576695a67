"""MMAudio flow network: configuration, sequence lengths, RoPE, blocks and weight loading."""

from .config import VARIANTS, NetworkConfig, detect_network_config, swiglu_hidden_width, with_mode
from .network import NON_PERSISTENT_KEYS, FlowConditions, MMAudioNetwork
from .sequence import (AUDIO_MODES, MIN_DURATION_S, SequenceLengths, audio_mode_settings,
                       sequence_lengths, sync_to_latent_index)
from .weights import load_network_weights

__all__ = [
    "AUDIO_MODES", "MIN_DURATION_S", "NON_PERSISTENT_KEYS", "VARIANTS", "FlowConditions",
    "MMAudioNetwork", "NetworkConfig", "SequenceLengths", "audio_mode_settings",
    "detect_network_config", "load_network_weights", "sequence_lengths", "swiglu_hidden_width",
    "sync_to_latent_index", "with_mode",
]
