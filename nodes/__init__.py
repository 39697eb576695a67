"""Thin V1 node classes: declare inputs, check and convert ComfyUI values, call foley_core."""

from ..model_loaders import folders
from . import audio_nodes, generation_nodes, loader_nodes, mux_nodes, video_nodes
from . import adapter_nodes
from . import control_nodes
from . import search_nodes
from . import rms_mapper_nodes
from . import controlnet_nodes
from . import prompt_channel_nodes
from . import layout_predictor_nodes

folders.register()

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in (video_nodes, audio_nodes, loader_nodes, generation_nodes, mux_nodes, search_nodes):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
for _module in (control_nodes,):  # temporal controls (issue #6)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
for _module in (adapter_nodes,):  # style adapters (issue #5)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
for _module in (rms_mapper_nodes,):  # RMS-Mapper loader (issue #6)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
for _module in (controlnet_nodes,):  # envelope ControlNet loader (issue #6)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
for _module in (prompt_channel_nodes,):  # AudioIM prompt channel loader (issue #5)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
for _module in (layout_predictor_nodes,):  # TiVA layout predictor loader (issue #6)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
