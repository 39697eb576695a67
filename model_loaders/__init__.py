"""The only code that knows ComfyUI's model folders and file formats.

Finds files through `folder_paths`, reads them weights-only, builds `foley_core` modules in the
right variant and dtype, and wraps them in `comfy.model_patcher.ModelPatcher` so the host moves
them between devices and frees them under memory pressure.
"""
