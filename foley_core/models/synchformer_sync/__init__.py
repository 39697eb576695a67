"""The full Synchformer (audio–visual offset classifier) used for the DeSync metric
(spec synchformer_sync.md). The visual branch is models/synchformer.py; this package adds the
audio front end, the AST audio encoder, the sync transformer and the loader of the full file."""

from .frontend import SAMPLE_RATE, audio_segments, log_mel_segments, mel_power, to_16k
from .model import (OFFSET_GRID, WINDOW_SEGMENTS, SynchformerSync, build_synchformer_sync,
                    missing_branches)

__all__ = ["SAMPLE_RATE", "audio_segments", "log_mel_segments", "mel_power", "to_16k", "OFFSET_GRID",
           "WINDOW_SEGMENTS", "SynchformerSync", "build_synchformer_sync", "missing_branches"]
