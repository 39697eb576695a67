"""GMDS Search (AvSyncDiff's test-time noise search) and the verifiers it optimises."""

from __future__ import annotations

import json

from ..foley_core.errors import FoleyError
from ..foley_core.media.frame_sampling import SYNC_STREAM
from ..foley_core.models.mmaudio.sequence import audio_mode_settings
from ..foley_core.previews import to_comfy_image
from ..foley_core.search import gmds
from ..foley_core.search.plot import plot_trace
from ..foley_core.search.sampling import make_sampler, make_scorer
from ..foley_core.search.verifiers import (ClapVerifier, EnvelopeVerifier, MotionOnsetVerifier,
                                           SynchformerDesyncVerifier, TimbreVerifier, VerifierContext, combine,
                                           reference_waveform)
from ..model_loaders import devices, verifier_files
from . import host
from .generation_nodes import LATENT_KEY, FoleyFlowSampler, active_controls, control_info, wrap_network

KINDS = ["envelope", "timbre", "motion_onsets", "clap", "synchformer_desync", "wav2clip"]


class FoleyLoadVerifier:
    CATEGORY = host.CATEGORY + "/search"
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_VERIFIER",)
    RETURN_NAMES = ("verifier",)
    DESCRIPTION = ("A score for GMDS Search (higher is better). envelope: 1 − E-L1 to a target envelope "
                   "(or a target AUDIO's); timbre: similarity to a reference (FOLEY_STYLE + codec, or "
                   "AUDIO); motion_onsets: audio onsets vs the video's motion onsets (F1 at 0.1 s); clap: "
                   "CLAP audio–text similarity from a local folder in models/clap; synchformer_desync: 1 − "
                   "DeSync/2 against the video (av-benchmark's DeSync; needs the FULL "
                   "synchformer_state_dict.pth in models/mmaudio and ≥ 4.8 s); wav2clip: cosine similarity "
                   "(−1..1) of the Wav2CLIP audio embedding and the video's mean CLIP ViT-B/32 frame embedding "
                   "(Wav2CLIP.pt and the OpenAI ViT-B/32 open_clip file in models/wav2clip). Chain with "
                   "`previous` to sum several, each times its weight. Not implemented: ImageBind.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "kind": (KINDS,),
                "weight": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.05}),
            },
            "optional": {
                "previous": ("FOLEY_VERIFIER", {"tooltip": "Add this verifier to an earlier one."}),
                "envelope": ("FOLEY_ENVELOPE", {"tooltip": "envelope: the target envelope."}),
                "target_audio": ("AUDIO", {"tooltip": "envelope: take the target envelope from this audio; "
                                                      "timbre: use it as the reference."}),
                "style": ("FOLEY_STYLE", {"tooltip": "timbre: the reference (needs the codec to decode it)."}),
                "codec": ("FOLEY_CODEC",),
                "video": ("FOLEY_VIDEO", {"tooltip": "motion_onsets / synchformer_desync: the video the audio "
                                                     "must follow."}),
                "clap_model": (verifier_files.clap_choices(), {"tooltip": "clap: a folder in models/clap."}),
                "text": ("STRING", {"default": "", "tooltip": "clap: the text; empty = the prompt."}),
                "sync_model": (verifier_files.sync_choices(), {
                    "tooltip": "synchformer_desync: the full Synchformer file in models/mmaudio (not the "
                               "visual-only one)."}),
                # Appended after the older widgets so saved workflows' widget values keep their places.
                "wav2clip_model": (verifier_files.wav2clip_choices(), {
                    "tooltip": "wav2clip: the Wav2CLIP weights (official Wav2CLIP.pt) in models/wav2clip."}),
                "wav2clip_clip": (verifier_files.wav2clip_clip_choices(), {
                    "tooltip": "wav2clip: OpenAI's CLIP ViT-B/32 as an open_clip state dict (.safetensors / "
                               ".bin, not OpenAI's TorchScript ViT-B-32.pt) in models/wav2clip."}),
            },
        }

    def load(self, kind, weight, previous=None, envelope=None, target_audio=None, style=None, codec=None,
             video=None, clap_model=verifier_files.NONE, text="", sync_model=None, wav2clip_model=None,
             wav2clip_clip=None):
        verifier = self._build(kind, float(weight), envelope, target_audio, style, codec, video, clap_model, text,
                               sync_model, wav2clip_model, wav2clip_clip)
        combined = combine(previous, verifier)
        info = f"verifier: {combined.describe()}"
        for note in getattr(verifier, "notes", ()):
            info += f"\nnote: {note}"
        print(f"[Foley Imitator] {info}")
        return {"ui": {"text": [info]}, "result": (combined,)}

    @staticmethod
    def _audio(audio, what):
        if not isinstance(audio, dict) or "waveform" not in audio:
            raise FoleyError(f"Foley Load Verifier: `{what}` is not an AUDIO value.")
        return audio["waveform"][0], int(audio["sample_rate"])

    def _build(self, kind, weight, envelope, target_audio, style, codec, video, clap_model, text, sync_model=None,
               wav2clip_model=None, wav2clip_clip=None):
        if kind == "envelope":
            if envelope is not None:
                return EnvelopeVerifier(envelope, weight)
            if target_audio is not None:
                return EnvelopeVerifier.from_audio(*self._audio(target_audio, "target_audio"), weight=weight)
            raise FoleyError("The envelope verifier needs a target: connect `envelope` (FOLEY_ENVELOPE) "
                             "or `target_audio`.")
        if kind == "timbre":
            if target_audio is not None:
                return TimbreVerifier.from_audio(*self._audio(target_audio, "target_audio"), weight=weight)
            if style is not None:
                if codec is None:
                    raise FoleyError("The timbre verifier decodes the FOLEY_STYLE reference: connect the codec too.")
                if style.mode != codec.mode:
                    raise FoleyError(f"The reference was encoded for {style.mode} audio but the codec is "
                                     f"{codec.mode}; use the codec it was encoded with.")
                devices.load_to_device(codec.vae, codec.vocoder)
                wave = reference_waveform(style, codec.vae.model, codec.vocoder.model)
                return TimbreVerifier.from_audio(wave, codec.sample_rate, weight=weight)
            raise FoleyError("The timbre verifier needs a reference: connect `style` + `codec`, or `target_audio`.")
        if kind == "motion_onsets":
            if video is None:
                raise FoleyError("The motion_onsets verifier needs the video: connect `video` (Foley Load Video).")
            return MotionOnsetVerifier.from_frames(video.sync_frames, float(SYNC_STREAM.fps), weight)
        if kind == "clap":
            return ClapVerifier(verifier_files.resolve_clap(clap_model), text or "", weight)
        if kind == "synchformer_desync":
            if video is None:
                raise FoleyError("The synchformer_desync verifier needs the video: connect `video` (Foley Load Video).")
            model = verifier_files.load_desync_model(sync_model or verifier_files.sync_choices()[0])
            return SynchformerDesyncVerifier(model, video.sync_frames, weight)
        if kind == "wav2clip":
            if video is None:
                raise FoleyError("The wav2clip verifier needs the video: connect `video` (Foley Load Video).")
            return verifier_files.load_wav2clip_verifier(
                wav2clip_model or verifier_files.wav2clip_choices()[0],
                wav2clip_clip or verifier_files.wav2clip_clip_choices()[0],
                video.sync_frames, float(SYNC_STREAM.fps), weight)
        raise FoleyError(f"Unknown verifier kind {kind!r}; pick one of {', '.join(KINDS)}.")


# The Flow Sampler's optional control inputs, taken from its INPUT_TYPES so the two nodes cannot drift.
CONTROL_INPUTS = ("adapter", "envelope", "layout", "control_strength", "control_start", "control_end",
                  "prompt_channel", "controlnet", "layout_adapter")
_SAMPLER_OPTIONAL = FoleyFlowSampler.INPUT_TYPES()["optional"]


class FoleyGMDSSearch:
    CATEGORY = host.CATEGORY + "/search"
    FUNCTION = "search"
    RETURN_TYPES = ("LATENT", "STRING", "IMAGE")
    RETURN_NAMES = ("latent", "trace", "plot")
    DESCRIPTION = ("Gaussian Mixture Diffusion Search (AvSyncDiff Algorithm 1): samples a population of "
                   "noises, keeps the better of a β_small and a β_large perturbation of each for several "
                   "rounds, and returns the best latent under the verifier. Costs population × (1 + 2 × "
                   "rounds) sampler runs, each round in one batch. One backbone window (no long videos).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("FOLEY_MODEL",),
                "features": ("FOLEY_FEATURES",),
                "codec": ("FOLEY_CODEC", {"tooltip": "Decodes every candidate for the verifier."}),
                "verifier": ("FOLEY_VERIFIER",),
                "seed": ("INT", {"default": 42, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
                "steps": ("INT", {"default": 25, "min": 1, "max": 500}),
                "cfg": ("FLOAT", {"default": 4.5, "min": 0.0, "max": 30.0, "step": 0.1}),
                "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 600.0, "step": 0.01,
                                       "tooltip": "Seconds to generate; 0 = the video's duration."}),
                "population": ("INT", {"default": gmds.DEFAULT_POPULATION, "min": 1, "max": 32}),
                "rounds": ("INT", {"default": gmds.DEFAULT_ROUNDS, "min": 0, "max": 50}),
                "beta_small": ("FLOAT", {"default": gmds.DEFAULT_BETA_SMALL, "min": 0.0, "max": 0.999, "step": 0.01,
                                         "tooltip": "β of the broad move (keeps a β share of the member)."}),
                "beta_large": ("FLOAT", {"default": gmds.DEFAULT_BETA_LARGE, "min": 0.0, "max": 0.999, "step": 0.01,
                                         "tooltip": "β of the local move; must be larger than beta_small."}),
            },
            "optional": {
                "style": ("FOLEY_STYLE", {"tooltip": "A reference from Foley Style Encode (latent prompting)."}),
                "window_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 30.0, "step": 0.5,
                                             "tooltip": "Backbone window; 0 = the network's own."}),
                # The Flow Sampler's controls, with its names, types, defaults and tooltips (issue #7).
                **{name: _SAMPLER_OPTIONAL[name] for name in CONTROL_INPUTS},
                # Last, so saved workflows' widget values keep their places.
                "keep_parent": ("BOOLEAN", {"default": False, "tooltip": (
                    "Elitist variant (not the paper's Algorithm 1): a member stays when both of its candidates "
                    "score lower, so the population never gets worse. Off = Algorithm 1 exactly. Measured: "
                    "on with population 2, rounds 25, β 0.7 / 0.9 beats best-of-N at equal evaluations; "
                    "Algorithm 1 ties with it (docs/benchmarks.md, GMDS fourth round).")}),
            },
        }

    def search(self, model, features, codec, verifier, seed, steps, cfg, duration, population, rounds,
               beta_small, beta_large, style=None, window_seconds=0.0, adapter=None, envelope=None, layout=None,
               control_strength=1.0, control_start=0.0, control_end=1.0, prompt_channel=None, controlnet=None,
               layout_adapter=None, keep_parent=False):
        gmds.check_settings(population, rounds, beta_small, beta_large)
        mode = model.mode or codec.mode
        if codec.latent_dim != model.network.config.latent_dim or codec.mode != mode:
            raise FoleyError(f"The codec ({codec.files[0]}, {codec.mode}, {codec.latent_dim} channels) does not "
                             f"match the flow network ({mode}, {model.network.config.latent_dim}); use matching files.")
        if style is not None and style.mode != mode:
            raise FoleyError(f"The reference was encoded for {style.mode} audio but the model makes {mode}.")
        window_s = window_seconds if window_seconds and window_seconds > 0 else model.window_s
        total_s = duration if duration and duration > 0 else features.duration_s
        sample_rate, hop = audio_mode_settings(mode)
        prompt_s = 0.0 if style is None else style.prompt_length * 2 * hop / sample_rate
        if total_s + prompt_s > window_s + 1e-6:
            raise FoleyError(f"GMDS Search searches the noise of one {window_s:g} s backbone window, but "
                             f"{total_s:.2f} s" + (f" after a {prompt_s:.2f} s reference prompt" if prompt_s else "")
                             + " does not fit in it; lower the duration or use the Flow Sampler.")
        device = devices.load_to_device(model.patcher, codec.vae, codec.vocoder)
        total = gmds.gmds_evaluations(population, rounds)
        report = host.progress_reporter(total)
        done = {"n": 0}

        def on_step(k, n_steps, x, x1_estimate):  # lets Cancel stop mid-batch
            report(done["n"], total)

        def on_progress(evaluations, total_now):
            done["n"] = evaluations
            report(evaluations, total_now)

        # Same wrappers and guidance hook as the Flow Sampler, so every candidate is sampled the same way.
        network, guidance, guided_envelope = wrap_network(
            model.network, codec, mode, steps, style=style, adapter=adapter, envelope=envelope, layout=layout,
            control_strength=control_strength, control_start=control_start, control_end=control_end,
            controlnet=controlnet, prompt_channel=prompt_channel, layout_adapter=layout_adapter)
        if style is not None:
            # One window [reference prompt | target from 0 s]: aim the ControlNet / layout adapter / guidance
            # at the target, past the reference prompt (as long generation does for its first window).
            if hasattr(type(network), "for_window"):
                network = network.for_window(style.prompt_length, 0.0)
            if guidance is not None:
                guidance = guidance.for_window(style.prompt_length, 0.0)
        controls = control_info(guidance, guided_envelope, envelope, layout, control_strength, control_start,
                                control_end, adapter=adapter, controlnet=controlnet, prompt_channel=prompt_channel,
                                layout_adapter=layout_adapter)
        sampler = make_sampler(network, features, mode, steps=steps, cfg_strength=cfg, duration_s=duration,
                               reference=style, device=device, callback=on_step,
                               velocity_hook=guidance)
        total_s = sampler.lengths.duration_s
        n_samples = int(round(total_s * sample_rate))
        scorer = make_scorer(codec.vae.model, codec.vocoder.model, verifier, codec.sample_rate, n_samples,
                             VerifierContext(duration_s=total_s, prompt=features.prompt))
        result = gmds.gmds_search(sampler, scorer, sampler.noise_shape, population=population, rounds=rounds,
                                  beta_small=beta_small, beta_large=beta_large, seed=seed,
                                  keep_parent=bool(keep_parent), progress=on_progress,
                                  interrupt=lambda: report(done["n"], total))
        trace = {**result.to_json(), "verifier": verifier.describe(), "seed": int(seed), "population": population,
                 "rounds": rounds, "beta_small": beta_small, "beta_large": beta_large,
                 "keep_parent": bool(keep_parent), "steps": steps, **controls}
        info = {"duration_s": float(total_s), "sample_rate": sample_rate, "mode": mode, "samples": n_samples,
                "hop": hop, "seed": int(seed), "variant": model.variant, "windows": 1,
                "reference": None if style is None else style.describe(), "plan": None, **controls,
                "search": {"method": "gmds", "best_score": result.best_score, "evaluations": result.evaluations}}
        latent = {"samples": result.best_latent.transpose(1, 2).to(devices.output_device()),  # [1, C, N]
                  "type": "audio", LATENT_KEY: info}
        summary = (f"GMDS{' (keep_parent, elitist)' if keep_parent else ''}: best score {result.best_score:.4f} after {result.evaluations} evaluations "
                   f"({verifier.describe()})" + active_controls(controls))
        print(f"[Foley Imitator] {summary}")
        return {"ui": {"text": [summary]},
                "result": (latent, json.dumps(trace), to_comfy_image(plot_trace(result.trace)))}


NODE_CLASS_MAPPINGS = {
    "FoleyLoadVerifier": FoleyLoadVerifier,
    "FoleyGMDSSearch": FoleyGMDSSearch,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FoleyLoadVerifier": "Foley Load Verifier (GMDS score)",
    "FoleyGMDSSearch": "Foley GMDS Search (test-time noise search)",
}
