"""RMS Predict and Layout Predict: temporal controls (an envelope, an audio layout) for the sampler."""

from __future__ import annotations

import uuid
from pathlib import Path

import folder_paths
import torch

from ..foley_core.controls.envelope import ENVELOPE_SAMPLE_RATE, mono_resampled, rms_envelope
from ..foley_core.controls.envelope_edit import (apply_envelope_edit, edited_envelope_from_scratch,
                                                 parse_envelope_edit)
from ..foley_core.controls.layout import (LAYOUT_BANDS, LAYOUT_FRAME_RATE, Layout, audio_layout, layout_frames,
                                          layout_span)
from ..foley_core.controls.motion_energy import motion_energy_envelope
from ..foley_core.controls.plots import envelope_plot, layout_heatmap, widget_payload
from ..foley_core.errors import FoleyError
from ..foley_core.models.mel import MelConverter
from ..foley_core.previews import to_comfy_image
from . import host


def _check_audio(audio, node: str) -> tuple:
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise FoleyError(f"{node}: `audio` is not an AUDIO value (a dict with waveform and sample_rate).")
    waveform = audio["waveform"]
    if waveform.ndim == 3 and waveform.shape[0] > 1:
        print(f"[Foley Imitator] {node}: the AUDIO holds {waveform.shape[0]} clips; using the first.")
    return (waveform[:1] if waveform.ndim == 3 else waveform), int(audio["sample_rate"])


def _save_preview(image) -> dict:
    """Write a PIL picture to the host's temp folder; the UI entry that shows it on the node."""
    folder = Path(folder_paths.get_temp_directory())
    folder.mkdir(parents=True, exist_ok=True)
    name = f"foley_control_{uuid.uuid4().hex[:12]}.png"
    image.save(folder / name, compress_level=1)
    return {"filename": name, "subfolder": "", "type": "temp"}


class FoleyRMSPredict:
    CATEGORY = host.CATEGORY
    FUNCTION = "predict"
    OUTPUT_NODE = True  # shows the plot and feeds the envelope editor even when nothing is wired
    RETURN_TYPES = ("FOLEY_ENVELOPE", "IMAGE")
    RETURN_NAMES = ("envelope", "plot")
    DESCRIPTION = (
        "RMS envelope (Stable-V2A: 16 kHz, frame 512, hop 128 → 125 frames/s, smoothing 15, peak-"
        "normalised) for the sampler's envelope guidance. From AUDIO: the exact extraction. From a "
        "video alone: the RMS-Mapper connected to `mapper` (Foley Load RMS-Mapper; the embedded one is "
        "trained on the synthetic Foley scenes), else a motion-energy ESTIMATE (onset-emphasised frame "
        "differences); the output says which ran. `edited_envelope` (JSON from the editor or "
        "an API client) replaces or scales the result.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {},
            "optional": {
                "audio": ("AUDIO", {"tooltip": "Extract the envelope of this recording (wins over the video)."}),
                "video": ("FOLEY_VIDEO", {"tooltip": "Thumbnails for the plot; the envelope source "
                                                     "when no audio is connected (motion energy)."}),
                "edited_envelope": ("STRING", {"default": "", "multiline": False,
                                               "tooltip": '{"version": 1, "mode": "replace"|"scale", '
                                                          '"points": [[time_s, value], ...]}; empty = no edit.'}),
                "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 600.0, "step": 0.01,
                                       "tooltip": "Only for an envelope drawn from scratch (no audio, no "
                                                  "video): its length in seconds."}),
                "mapper": ("FOLEY_RMS_MAPPER", {"tooltip": "RMS-Mapper for the video (Foley Load RMS-Mapper); "
                                                           "without it the motion-energy estimate is used."}),
            },
        }

    def predict(self, audio=None, video=None, edited_envelope="", duration=0.0, mapper=None):
        edit = parse_envelope_edit(edited_envelope)  # fail fast on malformed JSON
        mel = None
        if audio is not None:
            waveform, rate = _check_audio(audio, "Foley RMS Predict")
            predicted = rms_envelope(waveform, rate)
            source = "audio"
            mel = MelConverter("16k")(torch.from_numpy(mono_resampled(waveform, rate, ENVELOPE_SAMPLE_RATE)))
        elif video is not None:
            # The 25 fps Synchformer stack: the densest stream FoleyLoadVideo keeps.
            if mapper is not None:
                predicted, source, notes = mapper.predict(video.sync_frames, float(video.stream_rates["sync"]),
                                                          video.duration_s)
                source = "; ".join([source, *notes])
            else:
                predicted = motion_energy_envelope(video.sync_frames, float(video.stream_rates["sync"]),
                                                   video.duration_s)
                source = "motion energy estimate"
        elif edit is not None and edit.mode == "replace" and duration > 0:
            predicted = edited_envelope_from_scratch(edit, duration, 125.0)
            source = "drawn"
        else:
            raise FoleyError("Foley RMS Predict needs an `audio` or a `video` input (or a replace-mode "
                             "edited_envelope with `duration` > 0 to draw one from scratch).")
        envelope = apply_envelope_edit(predicted, edit)
        edited = edit is not None
        frames = video.preview if video is not None else None
        picture = envelope_plot(envelope, frames=frames, mel=mel, original=predicted if edited else None)
        print(f"[Foley Imitator] RMS Predict: {source}, {envelope.n_frames} frames at "
              f"{envelope.frame_rate:g}/s ({envelope.duration:.2f} s){', edited' if edited else ''}")
        ui = {"foley_envelope": [{**widget_payload(envelope, edited=edited), "source": source}],
              "images": [_save_preview(picture)], "text": [f"envelope from: {source}"]}
        return {"ui": ui, "result": (envelope, to_comfy_image(picture))}


class FoleyLayoutPredict:
    CATEGORY = host.CATEGORY
    FUNCTION = "predict"
    OUTPUT_NODE = True
    RETURN_TYPES = ("FOLEY_LAYOUT", "IMAGE")
    RETURN_NAMES = ("layout", "heatmap")
    DESCRIPTION = (
        "TiVA audio layout: the normalised 16 kHz mel (AudioLDM2 settings) area-resized to [frames, "
        "bands] (default 5 bands, 10.2 frames/s = [102, 5] for 10 s). From AUDIO: the exact extraction "
        "(wins when connected). From a video alone: TiVA's layout predictor connected to `predictor` "
        "(Foley Load Layout Predictor; the embedded one is trained on the synthetic Foley scenes) on the "
        "video's CLIP frames — with the CLIP of `encoders` when connected, else the loader's. The output "
        "and the heatmap say which source ran. The sampler steers towards the layout by guidance.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "bands": ("INT", {"default": LAYOUT_BANDS, "min": 1, "max": 64,
                                  "tooltip": "C: frequency bands of the layout (TiVA: 5)."}),
                "frame_rate": ("FLOAT", {"default": LAYOUT_FRAME_RATE, "min": 0.5, "max": 100.0, "step": 0.1,
                                         "tooltip": "Layout frames per second (TiVA: 102 per 10 s)."}),
            },
            "optional": {
                "audio": ("AUDIO", {"tooltip": "Extract the layout of this recording (wins over the video)."}),
                "video": ("FOLEY_VIDEO", {"tooltip": "Predict the layout from this video (needs `predictor`)."}),
                "predictor": ("FOLEY_LAYOUT_PREDICTOR", {"tooltip": "Foley Load Layout Predictor."}),
                "encoders": ("FOLEY_ENCODERS", {"tooltip": "Optional: take the predictor's CLIP from these "
                                                           "encoders (must be the CLIP it was trained on)."}),
            },
        }

    def predict(self, bands=LAYOUT_BANDS, frame_rate=LAYOUT_FRAME_RATE, audio=None, video=None, predictor=None,
                encoders=None):
        notes = []
        if audio is not None:
            waveform, rate = _check_audio(audio, "Foley Layout Predict")
            layout = audio_layout(waveform, rate, bands=bands, frame_rate=frame_rate)
            source = "audio"
        elif video is not None and predictor is not None:
            predicted, source, notes = predictor.predict(video, encoders)
            layout = _at_settings(predicted, bands, frame_rate, source)
        elif video is not None:
            raise FoleyError("Foley Layout Predict: a video alone needs a layout predictor — connect Foley Load "
                             "Layout Predictor to `predictor` (or connect `audio` to extract the layout).")
        else:
            raise FoleyError("Foley Layout Predict needs `audio`, or a `video` with a `predictor` (Foley Load "
                             "Layout Predictor).")
        picture = _captioned(layout_heatmap(layout), f"layout from: {source}")
        info = {"frames": layout.n_frames, "bands": layout.n_bands, "frame_rate": layout.frame_rate,
                "duration_s": layout.duration, "source": source}
        print(f"[Foley Imitator] Layout Predict: {source}, [{layout.n_frames}, {layout.n_bands}] at "
              f"{layout.frame_rate:g}/s" + "".join(f"\n  {n}" for n in notes))
        ui = {"foley_layout": [info], "images": [_save_preview(picture)],
              "text": ["\n".join([f"layout from: {source}", *notes])]}
        return {"ui": ui, "result": (layout, to_comfy_image(picture))}


def _at_settings(layout: Layout, bands: int, frame_rate: float, source: str) -> Layout:
    """A predicted layout at the node's frame rate (resampled in time); its bands must match."""
    if layout.n_bands != bands:
        raise FoleyError(f"Foley Layout Predict: the {source} predicts {layout.n_bands} bands but `bands` is "
                         f"{bands}; set `bands` to {layout.n_bands} or use a predictor trained with {bands}.")
    if abs(layout.frame_rate - frame_rate) < 1e-9:
        return layout
    frames = layout_frames(layout.duration, frame_rate)
    return Layout(values=layout_span(layout, 0.0, frames / frame_rate, frames), frame_rate=float(frame_rate))


def _captioned(picture, text: str):
    """The heatmap with a caption strip above it (which source made the layout)."""
    from PIL import Image, ImageDraw

    out = Image.new("RGB", (picture.width, picture.height + 16), (24, 24, 24))
    out.paste(picture.convert("RGB"), (0, 16))
    ImageDraw.Draw(out).text((4, 2), text[: max(8, picture.width // 6)], fill=(230, 230, 230))
    return out


NODE_CLASS_MAPPINGS = {"FoleyRMSPredict": FoleyRMSPredict, "FoleyLayoutPredict": FoleyLayoutPredict}
NODE_DISPLAY_NAME_MAPPINGS = {"FoleyRMSPredict": "Foley RMS Predict (envelope)",
                              "FoleyLayoutPredict": "Foley Layout Predict (TiVA audio layout)"}
