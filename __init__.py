"""Foley Imitator — ComfyUI nodes for video-to-audio Foley synthesis.

ComfyUI imports this package from `custom_nodes/`. Everything here is V1 node classes, so the
plugin loads on 2024 hosts as well as current ones.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
