"""Foley Load Adapter: a trained style adapter (the global style path) for the Flow Sampler;
Foley Load Layout Adapter: a trained TiVA layout adapter (the layout as an extra input)."""

from __future__ import annotations

from ..model_loaders import adapter_files, layout_adapter_files
from . import host


class FoleyLoadAdapter:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_ADAPTER",)
    RETURN_NAMES = ("adapter",)
    DESCRIPTION = ("Style adapter from models/foley_adapters (trained with `python -m foley_core.training "
                   "train-adapter`): turns the reference's timbre/tempo/acoustic embeddings into a shift of "
                   "the flow network's global condition. Connect it and a Foley Style Encode reference to "
                   "the Flow Sampler.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"adapter": (adapter_files.choices(),)},
                "optional": {"strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.05,
                                                    "tooltip": "Scales the adapter's effect (1 = as trained)."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, adapter):
        return True  # a name that is not installed gets a clear error (with the fix) when loading

    def load(self, adapter, strength=1.0):
        handle = adapter_files.load_style_adapter(adapter, strength)
        text = "\n".join(line for line in (handle.describe(), handle.notes) if line)
        print(f"[Foley Imitator] {text}")
        return {"ui": {"text": [text]}, "result": (handle,)}


class FoleyLoadLayoutAdapter:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_LAYOUT_ADAPTER",)
    RETURN_NAMES = ("layout_adapter",)
    DESCRIPTION = ("Layout adapter from models/foley_layout_adapters (TiVA: the audio layout as an extra input of "
                   "the flow network, zero-initialised; `python -m foley_core.training train-layout-adapter`). "
                   "Connect it to the Flow Sampler (or GMDS Search) together with a layout (Foley Layout "
                   "Predict): the layout then drives the adapter instead of layout guidance.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"layout_adapter": (layout_adapter_files.choices(),)},
                "optional": {"strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0, "step": 0.05,
                                                    "tooltip": "Scales the adapter's term (1 = as trained, 0 = off)."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, layout_adapter):
        return True  # a name that is not installed gets a clear error (with the fix) when loading

    def load(self, layout_adapter, strength=1.0):
        handle = layout_adapter_files.load(layout_adapter, strength)
        text = "\n".join(line for line in (handle.describe(), handle.notes) if line)
        print(f"[Foley Imitator] {text}")
        return {"ui": {"text": [text]}, "result": (handle,)}


NODE_CLASS_MAPPINGS = {"FoleyLoadAdapter": FoleyLoadAdapter, "FoleyLoadLayoutAdapter": FoleyLoadLayoutAdapter}
NODE_DISPLAY_NAME_MAPPINGS = {"FoleyLoadAdapter": "Foley Load Adapter (reference style)",
                              "FoleyLoadLayoutAdapter": "Foley Load Layout Adapter (TiVA layout)"}
