"""Foley Load Layout Predictor: TiVA's video → audio-layout network for Foley Layout Predict."""

from __future__ import annotations

from ..model_loaders import layout_predictor_files
from . import host


class FoleyLoadLayoutPredictor:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_LAYOUT_PREDICTOR",)
    RETURN_NAMES = ("layout_predictor",)
    DESCRIPTION = ("TiVA audio-layout predictor (CLIP CLS + patch features of three layers → global + windowed "
                   "self-attention encoder → cross-attention decoder with learned queries → [frames, bands]) "
                   "from models/foley_layout_predictor or the embedded one (trained on the synthetic Foley "
                   "scenes). Connect it to Foley Layout Predict's `predictor` to predict a layout from video. "
                   "`clip`: the CLIP it reads features from — by default the one it was trained on; another "
                   "CLIP is refused.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"predictor": (layout_predictor_files.choices(),)},
            "optional": {
                "clip": (layout_predictor_files.clip_choices(),
                         {"default": layout_predictor_files.TRAINED_CLIP,
                          "tooltip": "CLIP weights for the features (ignored when Foley Layout Predict gets "
                                     "`encoders`)."}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, predictor, clip=None):
        return True  # a name that is not installed falls back (with a note) or errors when loading

    def load(self, predictor, clip=layout_predictor_files.TRAINED_CLIP):
        handle = layout_predictor_files.load_layout_predictor(predictor, clip)
        text = "\n".join([handle.describe(), *handle.notes])
        print(f"[Foley Imitator] {text}")
        return {"ui": {"text": [text]}, "result": (handle,)}


NODE_CLASS_MAPPINGS = {"FoleyLoadLayoutPredictor": FoleyLoadLayoutPredictor}
NODE_DISPLAY_NAME_MAPPINGS = {"FoleyLoadLayoutPredictor": "Foley Load Layout Predictor (video → layout)"}
