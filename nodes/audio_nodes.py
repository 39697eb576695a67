"""Load Audio: a recording from ComfyUI's input folder as a core AUDIO (also on 2024 hosts)."""

from __future__ import annotations

from ..foley_core.errors import MediaError
from ..foley_core.media.audio import decode_audio_stream, validate_waveform
from . import host


class FoleyLoadAudio:
    """Decodes the first audio stream of an audio or video file at its own sample rate."""

    CATEGORY = host.CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    DESCRIPTION = "Reads a reference recording (or a video's soundtrack) as AUDIO."

    @classmethod
    def INPUT_TYPES(cls):
        files = host.input_files(host.AUDIO_EXTENSIONS + host.VIDEO_EXTENSIONS)
        return {
            "required": {
                "audio": (files, {"audio_upload": True}),
                "start_time": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e6, "step": 0.01}),
                "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e6, "step": 0.01,
                                       "tooltip": "Seconds to read (0 = to the end)."}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, audio):
        return True  # checked at run time, so the error names the file (see FoleyLoadVideo)

    @classmethod
    def IS_CHANGED(cls, audio, **_):
        try:
            return host.file_fingerprint(host.resolve_input_file(audio, "audio"))
        except MediaError:
            return "invalid"

    def load(self, audio, start_time=0.0, duration=0.0):
        path = host.resolve_input_file(audio, "audio")
        decoded = decode_audio_stream(path, start_time, duration or None)
        if decoded is None:
            raise MediaError(f"{path.name} has no audio stream; pick a file with sound.")
        waveform, sample_rate = decoded
        waveform = validate_waveform(waveform, sample_rate, what=path.name)
        return ({"waveform": waveform, "sample_rate": int(sample_rate)},)


NODE_CLASS_MAPPINGS = {"FoleyLoadAudio": FoleyLoadAudio}
NODE_DISPLAY_NAME_MAPPINGS = {"FoleyLoadAudio": "Foley Load Audio"}
