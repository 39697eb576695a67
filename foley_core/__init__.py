"""Foley Imitator core: host-independent media, models, sampling and controls.

Nothing in this package imports ComfyUI (`comfy`, `folder_paths`); the plugin's `nodes/` and
`model_loaders/` wrap it for the host, and the unit tests use it directly.
"""
