"""Foley Load ControlNet: a trained envelope ControlNet for the Flow Sampler's controlnet input."""

from __future__ import annotations

from ..foley_core.controls.controlnet import CFG_MODES
from ..model_loaders import controlnet_files
from . import host


class FoleyLoadControlNet:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_CONTROLNET",)
    RETURN_NAMES = ("controlnet",)
    DESCRIPTION = ("Envelope ControlNet from models/foley_controlnet (Stable-V2A: a trained copy of the first 20 % "
                   "of the flow network's blocks, fed with the RMS envelope; `python -m foley_core.training "
                   "train-controlnet`). Connect it to the Flow Sampler together with an envelope (Foley RMS "
                   "Predict): the envelope then drives the ControlNet instead of guidance.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "controlnet": (controlnet_files.choices(),),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0, "step": 0.05,
                                   "tooltip": "Scales the ControlNet's residuals; 1 = as trained, 0 = off."}),
            "cfg_mode": (list(CFG_MODES), {"default": "conditional",
                                           "tooltip": "conditional: CFG's unconditional branch has no envelope, so "
                                                      "CFG strengthens the control too (measured better); both: "
                                                      "both branches get it."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, controlnet, strength=1.0, cfg_mode="conditional"):
        return True  # a name that is not installed gets a clear error (with the fix) when loading

    def load(self, controlnet, strength=1.0, cfg_mode="conditional"):
        handle = controlnet_files.load_envelope_controlnet(controlnet, strength, cfg_mode)
        text = "\n".join(line for line in (handle.describe(), handle.notes) if line)
        print(f"[Foley Imitator] {text}")
        return {"ui": {"text": [text]}, "result": (handle,)}


NODE_CLASS_MAPPINGS = {"FoleyLoadControlNet": FoleyLoadControlNet}
NODE_DISPLAY_NAME_MAPPINGS = {"FoleyLoadControlNet": "Foley Load ControlNet (envelope)"}
