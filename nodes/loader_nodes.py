"""Loader nodes: the flow network, the encoders (CLIP + Synchformer), the codec (VAE + vocoder)."""

from __future__ import annotations

from ..model_loaders import devices, folders, mmaudio_files
from . import host


def _files():
    return (folders.model_files(),)


class FoleyLoadModel:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_MODEL",)
    RETURN_NAMES = ("model",)
    DESCRIPTION = ("MMAudio flow network from models/mmaudio (official .pth or fp16 .safetensors); "
                   "the variant is detected from the weights.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": _files(), "dtype": (devices.DTYPE_CHOICES, {"default": "auto"})}}

    def load(self, model, dtype="auto"):
        handle = mmaudio_files.load_flow_model(model, dtype)
        print(f"[Foley Imitator] flow network: {handle.describe()}, audio mode {handle.mode or 'from codec'}")
        return (handle,)


class FoleyLoadEncoders:
    CATEGORY = host.CATEGORY + "/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_ENCODERS",)
    RETURN_NAMES = ("encoders",)
    DESCRIPTION = "CLIP (DFN5B ViT-H-14-384) and the Synchformer visual encoder from models/mmaudio."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": _files(), "synchformer": _files(),
                             "dtype": (devices.DTYPE_CHOICES, {"default": "auto"})}}

    def load(self, clip, synchformer, dtype="auto"):
        return (mmaudio_files.load_encoders(clip, synchformer, dtype),)


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
        return {"required": {"vae": _files(), "vocoder": (vocoders,),
                             "dtype": (devices.DTYPE_CHOICES, {"default": "auto"})}}

    def load(self, vae, vocoder, dtype="auto"):
        return (mmaudio_files.load_codec(vae, vocoder, dtype),)


NODE_CLASS_MAPPINGS = {
    "FoleyLoadModel": FoleyLoadModel,
    "FoleyLoadEncoders": FoleyLoadEncoders,
    "FoleyLoadCodec": FoleyLoadCodec,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FoleyLoadModel": "Foley Load Model (flow network)",
    "FoleyLoadEncoders": "Foley Load Encoders (CLIP + Synchformer)",
    "FoleyLoadCodec": "Foley Load Codec (VAE + vocoder)",
}
