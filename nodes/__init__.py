"""Thin V1 node classes: declare inputs, check and convert ComfyUI values, call foley_core."""

from . import audio_nodes, mux_nodes, video_nodes

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in (video_nodes, audio_nodes, mux_nodes):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
