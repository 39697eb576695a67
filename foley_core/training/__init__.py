"""Training MMAudio flow networks: feature extraction, dataset, flow-matching loop, export.

CLI: `python -m foley_core.training {extract,train,export}` — see docs/training.md.
Heavy imports (PyAV, the encoders) stay inside the submodules that need them.
"""

from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .ema import EMA
from .export import export_network, exported_state_dict
from .flow_loss import FlowMatchingObjective, StepNoise, draw_step_noise, flow_target, step_generator
from .loop import train
from .shards import ShardDataset, ShardWriter, read_index

__all__ = [
    "CHECKPOINT_NAME", "EMA", "FlowMatchingObjective", "ShardDataset", "ShardWriter", "StepNoise",
    "TrainConfig", "draw_step_noise", "export_network", "exported_state_dict", "flow_target",
    "load_checkpoint", "read_index", "save_checkpoint", "step_generator", "train",
]
