"""Loader nodes: the flow network, the encoders (CLIP + Synchformer), the codec (VAE + vocoder).

Each lists the files of models/mmaudio plus the embedded set; a name that is not installed
(say, the official file a shared workflow names) falls back to the embedded model, and the node
shows which model actually ran.
"""

from __future__ import annotations

from ..model_loaders import devices, embedded, folders, mmaudio_files
from . import host


def _choices(slot_key: str) -> list[str]:
    return embedded.choices(slot_key) + folders.model_files()


def _report(lines: list[str], summary: str) -> dict:
    text = "\n".join([summary] + [line for line in lines if line])
    print(f"[Foley Imitator] {text}")
    return {"text": [text]}


class FoleyLoadModel:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_MODEL",)
    RETURN_NAMES = ("model",)
    DESCRIPTION = ("MMAudio flow network from models/mmaudio (official .pth or fp16 .safetensors); "
                   "the variant is detected from the weights. Falls back to the embedded model.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": (_choices("network"),),
                             "dtype": (devices.DTYPE_CHOICES, {"default": "auto"})}}

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        return True  # names that are not installed fall back to the embedded model at run time

    def load(self, model, dtype="auto"):
        handle = mmaudio_files.load_flow_model(model, dtype)
        summary = (f"flow network: {handle.describe()}, audio {handle.mode or 'rate from the codec'}, "
                   f"trained on {handle.window_s:g} s clips")
        return {"ui": _report([handle.notes], summary), "result": (handle,)}


class FoleyLoadEncoders:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_ENCODERS",)
    RETURN_NAMES = ("encoders",)
    DESCRIPTION = "CLIP (DFN5B ViT-H-14-384) and the Synchformer visual encoder from models/mmaudio."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": (_choices("clip"),), "synchformer": (_choices("synchformer"),),
                             "dtype": (devices.DTYPE_CHOICES, {"default": "auto"})}}

    @classmethod
    def VALIDATE_INPUTS(cls, clip, synchformer):
        return True

    def load(self, clip, synchformer, dtype="auto"):
        handle = mmaudio_files.load_encoders(clip, synchformer, dtype)
        summary = f"encoders: {handle.files[0]} + {handle.files[1]}"
        return {"ui": _report([handle.notes], summary), "result": (handle,)}


class FoleyLoadCodec:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_CODEC",)
    RETURN_NAMES = ("codec",)
    DESCRIPTION = ("Mel VAE (v1-44 / v1-16) and its vocoder (BigVGAN v2 44 kHz with config.json, or "
                   "best_netG.pt for 16 kHz) from models/mmaudio, or the built-in Griffin-Lim "
                   "vocoder (no weights; phasier sound) when no vocoder file is installed.")

    @classmethod
    def INPUT_TYPES(cls):
        vocoders = [mmaudio_files.GRIFFIN_LIM] + folders.model_files()
        return {"required": {"vae": (_choices("vae"),), "vocoder": (vocoders,),
                             "dtype": (devices.DTYPE_CHOICES, {"default": "auto"})}}

    @classmethod
    def VALIDATE_INPUTS(cls, vae, vocoder):
        return True

    def load(self, vae, vocoder, dtype="auto"):
        handle = mmaudio_files.load_codec(vae, vocoder, dtype)
        summary = f"codec: {handle.files[0]} + {handle.files[1]} ({handle.mode}, {handle.sample_rate} Hz)"
        return {"ui": _report([handle.notes], summary), "result": (handle,)}


class FoleyLoadStyleEncoders:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_STYLE_ENCODERS",)
    RETURN_NAMES = ("style_encoders",)
    DESCRIPTION = ("AudioIM's reference encoders from models/foley_style: timbre = BEATs "
                   "(BEATs_iter3+ .pt), tempo = MusicGen-Style's style conditioner + MERT-v1-95M. "
                   "Any may be 'none'; Foley Style Encode reports which are active.")

    @classmethod
    def INPUT_TYPES(cls):
        files = [mmaudio_files.NONE] + folders.model_files(folders.STYLE_FOLDER)
        return {"required": {"timbre_beats": (files,), "tempo_conditioner": (files,), "mert": (files,)}}

    def load(self, timbre_beats, tempo_conditioner, mert):
        return (mmaudio_files.load_style_encoders(timbre_beats, tempo_conditioner, mert),)


NODE_CLASS_MAPPINGS = {
    "FoleyLoadModel": FoleyLoadModel,
    "FoleyLoadEncoders": FoleyLoadEncoders,
    "FoleyLoadCodec": FoleyLoadCodec,
    "FoleyLoadStyleEncoders": FoleyLoadStyleEncoders,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FoleyLoadModel": "Foley Load Model (flow network)",
    "FoleyLoadEncoders": "Foley Load Encoders (CLIP + Synchformer)",
    "FoleyLoadCodec": "Foley Load Codec (VAE + vocoder)",
    "FoleyLoadStyleEncoders": "Foley Load Style Encoders (BEATs, style conditioner, MERT)",
}
