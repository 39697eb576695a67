"""Visual Encode → Flow Sampler → VAE Decode: plain video-to-audio with the MMAudio backbone."""

from __future__ import annotations

from ..foley_core.decoding import finish_waveform, latents_to_mel, mel_to_waveform
from ..foley_core.errors import FoleyError
from ..foley_core.features import encode_visual
from ..foley_core.generation import GenerationSettings, generate
from ..foley_core.models.mmaudio.sequence import audio_mode_settings
from ..foley_core.previews import latent_image, spectrogram_image, to_comfy_image
from ..model_loaders import devices
from . import host

LATENT_KEY = "foley"  # our metadata inside the core LATENT dict


class FoleyVisualEncode:
    CATEGORY = host.CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("FOLEY_FEATURES",)
    RETURN_NAMES = ("features",)
    DESCRIPTION = ("CLIP (8 fps) and Synchformer (25 fps) features of the video plus the CLIP text "
                   "features of the prompt and negative prompt. Cached: a new seed does not re-encode.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "encoders": ("FOLEY_ENCODERS",),
                "video": ("FOLEY_VIDEO",),
                "prompt": ("STRING", {"default": "", "multiline": True}),
                "negative_prompt": ("STRING", {"default": "", "multiline": False}),
            },
            "optional": {
                "mask_video": ("BOOLEAN", {"default": False,
                                           "tooltip": "Ignore the picture: text-only generation."}),
            },
        }

    def encode(self, encoders, video, prompt, negative_prompt, mask_video=False):
        report = host.progress_reporter(3)
        device = devices.load_to_device(encoders.clip, encoders.synchformer)
        features = encode_visual(
            encoders.clip.model, encoders.synchformer.model, video.clip_frames, video.sync_frames,
            video.duration_s, prompt, negative_prompt, mask_video=mask_video,
            output_device=devices.output_device(), progress=lambda done, total: report(done, total))
        return (features,)


class FoleyFlowSampler:
    CATEGORY = host.CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    DESCRIPTION = ("Euler flow-matching sampler with classifier-free guidance (MMAudio defaults: "
                   "25 steps, strength 4.5). Connect the codec for spectrogram previews.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("FOLEY_MODEL",),
                "features": ("FOLEY_FEATURES",),
                "seed": ("INT", {"default": 42, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
                "steps": ("INT", {"default": 25, "min": 1, "max": 500}),
                "cfg": ("FLOAT", {"default": 4.5, "min": 0.0, "max": 30.0, "step": 0.1,
                                  "tooltip": "Guidance strength; below 1 guidance is off."}),
                "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 600.0, "step": 0.01,
                                       "tooltip": "Seconds to generate; 0 = the video's duration."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 64}),
            },
            "optional": {
                "codec": ("FOLEY_CODEC", {"tooltip": "For spectrogram previews (and custom nets' audio rate)."}),
            },
        }

    def sample(self, model, features, seed, steps, cfg, duration, batch_size, codec=None):
        mode = model.mode or (codec.mode if codec is not None else None)
        if mode is None:
            raise FoleyError("This flow network's audio rate cannot be told from its weights; "
                             "connect the codec input of the sampler.")
        if codec is not None and codec.latent_dim != model.network.config.latent_dim:
            raise FoleyError(
                f"The codec's VAE ({codec.files[0]}) has {codec.latent_dim} latent channels but the "
                f"flow network has {model.network.config.latent_dim}; use matching files.")
        device = devices.load_to_device(model.patcher, codec.vae if codec is not None else None)
        report = host.progress_reporter(steps)
        network = model.network

        def on_step(k, total, x, x1_estimate):
            report(k + 1, total, self._preview(network, codec, x1_estimate))

        settings = GenerationSettings(seed, steps, cfg, duration, batch_size)
        latents, lengths = generate(network, features, mode, settings, device=device, callback=on_step)
        sample_rate, hop = audio_mode_settings(mode)
        latent = {
            "samples": latents.transpose(1, 2).to(devices.output_device()),  # [B, C, N]
            "type": "audio",
            LATENT_KEY: {
                "duration_s": lengths.duration_s, "sample_rate": sample_rate, "mode": mode,
                "samples": int(round(lengths.duration_s * sample_rate)), "hop": hop,
                "seed": int(seed), "variant": model.variant,
            },
        }
        return (latent,)

    @staticmethod
    def _preview(network, codec, x1_estimate):
        first = network.unnormalize(x1_estimate[:1]).float()
        if codec is not None:
            image = spectrogram_image(latents_to_mel(codec.vae.model, first)[0])
        else:
            image = latent_image(first[0])
        return ("JPEG", image, 512)


class FoleyVAEDecode:
    CATEGORY = host.CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("AUDIO", "IMAGE")
    RETURN_NAMES = ("audio", "spectrogram")
    DESCRIPTION = "Latents → mel (VAE) → waveform (vocoder) at the model's true sample rate, exact duration."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"codec": ("FOLEY_CODEC",), "latent": ("LATENT",)}}

    def decode(self, codec, latent):
        info = latent.get(LATENT_KEY) if isinstance(latent, dict) else None
        if info is None or latent.get("type") != "audio":
            raise FoleyError("This LATENT was not made by the Foley Flow Sampler (no audio metadata).")
        if info["mode"] != codec.mode:
            raise FoleyError(f"These latents are {info['mode']} audio but the codec is {codec.mode}; "
                             "load the matching VAE and vocoder.")
        devices.load_to_device(codec.vae, codec.vocoder)
        latents = latent["samples"].transpose(1, 2)  # back to channel-last [B, N, C]
        mel = latents_to_mel(codec.vae.model, latents)
        wave = finish_waveform(mel_to_waveform(codec.vocoder.model, mel), info["samples"])
        audio = {"waveform": wave.to(devices.output_device()), "sample_rate": int(codec.sample_rate)}
        return (audio, to_comfy_image(spectrogram_image(mel[0], height=160, max_width=768)))


NODE_CLASS_MAPPINGS = {
    "FoleyVisualEncode": FoleyVisualEncode,
    "FoleyFlowSampler": FoleyFlowSampler,
    "FoleyVAEDecode": FoleyVAEDecode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FoleyVisualEncode": "Foley Visual Encode (CLIP + Synchformer + prompt)",
    "FoleyFlowSampler": "Foley Flow Sampler",
    "FoleyVAEDecode": "Foley VAE Decode (→ AUDIO)",
}
