"""Visual Encode → Flow Sampler → VAE Decode: plain video-to-audio with the MMAudio backbone."""

from __future__ import annotations

import itertools

from ..foley_core.controls.guidance import ControlGuidance
from ..foley_core.controls.controlnet import apply_controlnet
from ..foley_core.controls.layout_adapter import apply_layout_adapter
from ..foley_core.decoding import finish_waveform, latents_to_mel, mel_to_waveform
from ..foley_core.errors import FoleyError
from ..foley_core.features import encode_visual
from ..foley_core.generation import GenerationSettings, generate
from ..foley_core.long_generation import decode_long, generate_long, plan_long_generation
from ..foley_core.style import add_style_embeddings, encode_reference
from ..foley_core.models.style_adapter import apply_style
from ..foley_core.models.prompt_channel import apply_prompt_channel
from ..foley_core.models.mmaudio.sequence import audio_mode_settings
from ..foley_core.previews import latent_image, spectrogram_image, to_comfy_image
from ..model_loaders import devices
from . import host

LATENT_KEY = "foley"  # our metadata inside the core LATENT dict


# Shared by the Flow Sampler and GMDS Search (nodes/search_nodes.py) so the two cannot drift apart.
def wrap_network(network, codec, mode, steps, *, style=None, adapter=None, envelope=None, layout=None,
                 control_strength=1.0, control_start=0.0, control_end=1.0, controlnet=None, prompt_channel=None,
                 layout_adapter=None):
    """The flow network wrapped for the style adapter, ControlNet, layout adapter and prompt channel,
    plus the envelope/layout guidance hook (or None). Returns (network, guidance, guided_envelope)."""
    # The global style path: F_style rides on the conditional branch only (models/style_adapter.py).
    network = apply_style(network, adapter.adapter if adapter is not None else None, style,
                          f"Style adapter {adapter.file_name}" if adapter is not None else "",
                          strength=adapter.strength if adapter is not None else 1.0)
    # An envelope ControlNet takes the envelope (controls/controlnet.py); guidance then only follows a layout.
    guided_envelope = envelope if controlnet is None else None
    if controlnet is not None:
        network = apply_controlnet(network, controlnet.controlnet, envelope, strength=controlnet.strength,
                                   cfg_mode=controlnet.cfg_mode, name=f"ControlNet {controlnet.file_name}")
    # A layout adapter takes the layout (controls/layout_adapter.py); guidance then only follows an envelope.
    guided_layout = layout if layout_adapter is None else None
    if layout_adapter is not None:
        network = apply_layout_adapter(network, layout_adapter.adapter, layout, strength=layout_adapter.strength,
                                       mode=mode, name=f"Layout adapter {layout_adapter.file_name}")
    # AudioIM's prompt channel: outermost wrapper, fed each window's prompt (models/prompt_channel.py).
    if prompt_channel is not None:
        network = apply_prompt_channel(network, prompt_channel.channel, style, mode=prompt_channel.mode,
                                       name=f"Prompt channel {prompt_channel.file_name}")
    guidance = control_guidance(codec, network, guided_envelope, guided_layout, control_strength, control_start,
                                control_end, steps)
    return network, guidance, guided_envelope


def control_guidance(codec, network, envelope, layout, strength, start, end, steps):
    """Envelope/layout guidance (foley_core/controls/guidance.py), or None when not asked for."""
    if envelope is None and layout is None:
        return None
    if codec is None:
        raise FoleyError("Envelope/layout control decodes the sampler's estimates to a spectrogram: "
                         "connect the codec input of the sampler (the VAE that matches the model).")
    if not start < end:
        raise FoleyError(f"control_start ({start}) must be below control_end ({end}); set control_strength "
                         "to 0 to switch the control off.")
    if strength == 0:
        return None
    return ControlGuidance(codec.vae.model, network, envelope=envelope, layout=layout, strength=strength,
                           start=start, end=end, steps=steps)


def control_info(guidance, guided_envelope, envelope, layout, strength, start, end, *, adapter=None,
                 controlnet=None, prompt_channel=None, layout_adapter=None):
    """The latent-info entries that say which of the wrappers/guidance were active."""
    return {
        "adapter": f"active: {adapter.describe()}" if adapter is not None else "none (no style adapter)",
        "prompt_channel": (f"active: {prompt_channel.describe()}" if prompt_channel is not None
                           else "none (no prompt channel)"),
        "controlnet": (f"active: {controlnet.describe()}, following the envelope ({envelope.duration:.2f} s)"
                       if controlnet is not None else "none (no ControlNet)"),
        "layout_adapter": (f"active: {layout_adapter.describe()}, following the layout ({layout.duration:.2f} s)"
                           if layout_adapter is not None else "none (no layout adapter)"),
        "control": None if guidance is None else {
            "envelope": guided_envelope is not None, "layout": layout is not None and layout_adapter is None,
            "strength": strength,
            "steps": f"{start:g}-{end:g}", "gradient": guidance.gradient},
    }


def active_controls(controls):
    """'; controls: …' for the summary line, or '' when none was active."""
    active = [f"{key} {value}" for key, value in controls.items()
              if key != "control" and isinstance(value, str) and value.startswith("active")]
    if controls.get("control"):
        guided = [k for k in ("envelope", "layout") if controls["control"][k]]
        active.append(f"{'+'.join(guided)} guidance active (strength {controls['control']['strength']:g}, "
                      f"steps {controls['control']['steps']})")
    return "; controls: " + "; ".join(active) if active else ""


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
                "style": ("FOLEY_STYLE", {"tooltip": "A reference from Foley Style Encode: the sound "
                                                     "continues it (latent prompting)."}),
                "adapter": ("FOLEY_ADAPTER", {"tooltip": "A trained style adapter (Foley Load Adapter): the "
                                                         "reference's embeddings also steer the global "
                                                         "condition. Needs the style input."}),
                "window_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 30.0, "step": 0.5,
                                             "tooltip": "Backbone window; 0 = the length the network was "
                                                        "trained on (8 s for MMAudio). Longer videos are "
                                                        "generated in windows that continue each other."}),
                "overlap_seconds": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 4.0, "step": 0.1,
                                              "tooltip": "How much of the previous window prompts the next."}),
                "envelope": ("FOLEY_ENVELOPE", {"tooltip": "Steer loudness over time towards this envelope "
                                                           "(training-free guidance; needs the codec)."}),
                "layout": ("FOLEY_LAYOUT", {"tooltip": "Steer towards this audio layout (guidance; needs the codec)."}),
                "control_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 20.0, "step": 0.1,
                                               "tooltip": "Guidance strength for envelope/layout; 0 = off."}),
                "control_start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                            "tooltip": "First guided step, as a fraction of the steps."}),
                "control_end": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                          "tooltip": "Guidance stops at this fraction of the steps."}),
                "prompt_channel": ("FOLEY_PROMPT_CHANNEL", {"tooltip": "A trained prompt channel (Foley Load "
                                                                       "Prompt Channel): the reference's prompt "
                                                                       "latent as an extra input. Needs the style input."}),
                "controlnet": ("FOLEY_CONTROLNET", {"tooltip": "A trained envelope ControlNet (Foley Load "
                                                               "ControlNet): the envelope input drives it "
                                                               "instead of envelope guidance."}),
                "layout_adapter": ("FOLEY_LAYOUT_ADAPTER", {"tooltip": "A trained layout adapter (Foley Load "
                                                                       "Layout Adapter): the layout input drives it "
                                                                       "instead of layout guidance."}),
            },
        }

    def sample(self, model, features, seed, steps, cfg, duration, batch_size, codec=None, style=None,
               window_seconds=0.0, overlap_seconds=1.0, envelope=None, layout=None, control_strength=1.0,
               control_start=0.0, control_end=1.0, adapter=None, controlnet=None, prompt_channel=None,
               layout_adapter=None):
        window_seconds = window_seconds if window_seconds and window_seconds > 0 else model.window_s
        mode = model.mode or (codec.mode if codec is not None else None)
        if mode is None:
            raise FoleyError("This flow network's audio rate cannot be told from its weights; "
                             "connect the codec input of the sampler.")
        if codec is not None and codec.latent_dim != model.network.config.latent_dim:
            raise FoleyError(
                f"The codec's VAE ({codec.files[0]}) has {codec.latent_dim} latent channels but the "
                f"flow network has {model.network.config.latent_dim}; use matching files.")
        if style is not None and style.mode != mode:
            raise FoleyError(f"The reference was encoded for {style.mode} audio but the model makes "
                             f"{mode}; encode it with this model's codec.")
        device = devices.load_to_device(model.patcher, codec.vae if codec is not None else None)
        network, guidance, guided_envelope = wrap_network(
            model.network, codec, mode, steps, style=style, adapter=adapter, envelope=envelope, layout=layout,
            control_strength=control_strength, control_start=control_start, control_end=control_end,
            controlnet=controlnet, prompt_channel=prompt_channel, layout_adapter=layout_adapter)
        settings = GenerationSettings(seed, steps, cfg, duration, batch_size)
        total_s = duration if duration and duration > 0 else features.duration_s
        # One window, no reference: plain MMAudio sampling. Otherwise windows that prompt each other.
        windowed = style is not None or total_s > window_seconds + 1e-9
        n_windows = 1
        if windowed:
            n_windows = len(plan_long_generation(
                total_s, mode, window_s=window_seconds, overlap_s=overlap_seconds,
                reference_len=0 if style is None else style.prompt_length).windows)
        report = host.progress_reporter(steps * n_windows)
        steps_done = itertools.count(1)

        def on_step(k, total, x, x1_estimate):
            report(next(steps_done), steps * n_windows, self._preview(network, codec, x1_estimate))

        plan = None
        if windowed:
            latents, plan = generate_long(network, features, mode, settings, window_s=window_seconds,
                                          overlap_s=overlap_seconds, reference=style, device=device,
                                          callback=on_step, velocity_hook=guidance)
        else:
            latents, lengths = generate(network, features, mode, settings, device=device, callback=on_step,
                                        velocity_hook=guidance)
            total_s = lengths.duration_s
        sample_rate, hop = audio_mode_settings(mode)
        info = {
            "duration_s": float(total_s), "sample_rate": sample_rate, "mode": mode,
            "samples": int(round(total_s * sample_rate)), "hop": hop, "seed": int(seed),
            "variant": model.variant, "windows": n_windows,
            "reference": None if style is None else style.describe(),
            "plan": plan,  # decode_long needs the window layout to crossfade the seams
            **control_info(guidance, guided_envelope, envelope, layout, control_strength, control_start,
                           control_end, adapter=adapter, controlnet=controlnet, prompt_channel=prompt_channel,
                           layout_adapter=layout_adapter),
        }
        latent = {"samples": latents.transpose(1, 2).to(devices.output_device()),  # [B, C, N]
                  "type": "audio", LATENT_KEY: info}
        summary = active_controls(info)
        if summary:  # say in the log which add-ons/guidance ran (the latent's info carries the details)
            print(f"[Foley Imitator] Flow Sampler{summary}")
        return (latent,)

    @staticmethod
    def _preview(network, codec, x1_estimate):
        first = network.unnormalize(x1_estimate[:1]).float()
        if codec is not None:
            image = spectrogram_image(latents_to_mel(codec.vae.model, first)[0])
        else:
            image = latent_image(first[0])
        return ("JPEG", image, 512)


class FoleyStyleEncode:
    CATEGORY = host.CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("FOLEY_STYLE", "STRING")
    RETURN_NAMES = ("style", "info")
    DESCRIPTION = ("Timbre/Tempo Encode: a reference recording → its prompt latent (the sampler "
                   "continues it) and acoustic vector. Any sample rate, channel count and length.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "codec": ("FOLEY_CODEC",),
                "audio": ("AUDIO",),
                "offset_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 3600.0, "step": 0.01,
                                             "tooltip": "Where the reference segment starts."}),
                "prompt_seconds": ("FLOAT", {"default": 3.0, "min": 0.25, "max": 6.0, "step": 0.05,
                                             "tooltip": "Length of the reference segment (AudioIM: 3 s)."}),
            },
            "optional": {
                "style_encoders": ("FOLEY_STYLE_ENCODERS", {"tooltip": "BEATs timbre / tempo encoders."}),
            },
        }

    def encode(self, codec, audio, offset_seconds=0.0, prompt_seconds=3.0, style_encoders=None):
        if not isinstance(audio, dict) or "waveform" not in audio:
            raise FoleyError("Foley Style Encode: `audio` is not an AUDIO value.")
        devices.load_to_device(codec.vae)
        style = encode_reference(codec.vae.model, audio["waveform"], int(audio["sample_rate"]), codec.mode,
                                 offset_s=offset_seconds, prompt_s=prompt_seconds)
        if style_encoders is not None:
            loaded = [p for p in (style_encoders.timbre, style_encoders.tempo, style_encoders.mert) if p]
            if loaded:
                devices.load_to_device(*loaded)
            style = add_style_embeddings(
                style, audio["waveform"], int(audio["sample_rate"]),
                timbre_encoder=style_encoders.timbre.model if style_encoders.timbre else None,
                tempo_conditioner=style_encoders.tempo.model if style_encoders.tempo else None,
                mert=style_encoders.mert.model if style_encoders.mert else None)
        info = style.describe()
        print(f"[Foley Imitator] style: {info}")
        return {"ui": {"text": [info]}, "result": (style, info)}


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
        mel = latents_to_mel(codec.vae.model, latents[:1])
        if info.get("plan") is not None:
            wave = decode_long(codec.vae.model, codec.vocoder.model, latents, info["plan"])
        else:
            wave = finish_waveform(mel_to_waveform(codec.vocoder.model, latents_to_mel(codec.vae.model, latents)),
                                   info["samples"])
        audio = {"waveform": wave.to(devices.output_device()), "sample_rate": int(codec.sample_rate)}
        return (audio, to_comfy_image(spectrogram_image(mel[0], height=160, max_width=768)))


NODE_CLASS_MAPPINGS = {
    "FoleyVisualEncode": FoleyVisualEncode,
    "FoleyFlowSampler": FoleyFlowSampler,
    "FoleyStyleEncode": FoleyStyleEncode,
    "FoleyVAEDecode": FoleyVAEDecode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FoleyVisualEncode": "Foley Visual Encode (CLIP + Synchformer + prompt)",
    "FoleyFlowSampler": "Foley Flow Sampler",
    "FoleyStyleEncode": "Foley Style Encode (reference timbre/tempo)",
    "FoleyVAEDecode": "Foley VAE Decode (→ AUDIO)",
}
