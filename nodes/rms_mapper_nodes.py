"""Foley Load RMS-Mapper: the trained video → envelope network (Stable-V2A) for Foley RMS Predict."""

from __future__ import annotations

from ..model_loaders import rms_mapper_files
from . import host


class FoleyLoadRMSMapper:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_RMS_MAPPER",)
    RETURN_NAMES = ("rms_mapper",)
    DESCRIPTION = ("RMS-Mapper (Stable-V2A: per-frame RGB + optical-flow features → conv/upsample → BiLSTM → "
                   "64 μ-law classes) from models/foley_rms_mapper, the embedded one (trained on the synthetic "
                   "Foley scenes), or the motion-energy estimate. Connect it to Foley RMS Predict's `mapper` "
                   "input to predict an envelope from video. Optional RAFT weights (torchvision raft_small / "
                   "raft_large state dicts in models/foley_optical_flow) replace the built-in block-matching "
                   "flow; a mapper trained with other flow than it runs with is reported.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"mapper": (rms_mapper_files.choices(),)},
            "optional": {
                "raft": (rms_mapper_files.flow_choices(), {"default": rms_mapper_files.NO_RAFT,
                                                           "tooltip": "Optical flow for the features."}),
                "decoding": (["argmax", "mean"], {"default": "argmax",
                                                  "tooltip": "argmax: the most likely μ-law class (the paper); "
                                                             "mean: the expected class (smoother)."}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, mapper, raft=None, decoding=None):
        return True  # a name that is not installed falls back (with a note) or errors when loading

    def load(self, mapper, raft=rms_mapper_files.NO_RAFT, decoding="argmax"):
        handle = rms_mapper_files.load_rms_mapper(mapper, raft, decoding)
        text = "\n".join([handle.describe(), *handle.notes])
        print(f"[Foley Imitator] {text}")
        return {"ui": {"text": [text]}, "result": (handle,)}


NODE_CLASS_MAPPINGS = {"FoleyLoadRMSMapper": FoleyLoadRMSMapper}
NODE_DISPLAY_NAME_MAPPINGS = {"FoleyLoadRMSMapper": "Foley Load RMS-Mapper (video → envelope)"}
