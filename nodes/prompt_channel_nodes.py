"""Foley Load Prompt Channel: AudioIM's trained latent-prompt path for the Flow Sampler."""

from __future__ import annotations

from ..foley_core.models.prompt_channel import MODES
from ..model_loaders import prompt_channel_files
from . import host


class FoleyLoadPromptChannel:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_PROMPT_CHANNEL",)
    RETURN_NAMES = ("prompt_channel",)
    DESCRIPTION = ("Prompt channel from models/foley_prompt_channels (trained with `python -m "
                   "foley_core.training train-prompt-channel`): gives the flow network the reference's "
                   "clean prompt latent and its mask as an extra input (AudioIM's masked training). Connect "
                   "it and a Foley Style Encode reference to the Flow Sampler. mode: keep the training-free "
                   "prompt replacement as well (default), or use the channel only.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"prompt_channel": (prompt_channel_files.choices(),)},
                "optional": {"mode": (list(MODES), {"default": MODES[0],
                                                    "tooltip": "channel+replacement: the prompt span is also "
                                                               "overwritten at every step (its output equals the "
                                                               "reference); channel only: it is not."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, prompt_channel):
        return True  # a name that is not installed gets a clear error (with the fix) when loading

    def load(self, prompt_channel, mode=MODES[0]):
        handle = prompt_channel_files.load_prompt_channel(prompt_channel, mode)
        text = handle.describe()
        print(f"[Foley Imitator] {text}")
        return {"ui": {"text": [text]}, "result": (handle,)}


NODE_CLASS_MAPPINGS = {"FoleyLoadPromptChannel": FoleyLoadPromptChannel}
NODE_DISPLAY_NAME_MAPPINGS = {"FoleyLoadPromptChannel": "Foley Load Prompt Channel (AudioIM)"}
