"""Mux: put generated AUDIO into the source video (video stream copied, never re-encoded)."""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import folder_paths

from ..foley_core.errors import MediaError
from ..foley_core.media.encode import encode_frames
from ..foley_core.media.mux import CODECS, MODES, container_extension, mux_audio
from ..foley_core.media.output_paths import safe_output_file
from . import host


class FoleyMux:
    CATEGORY = host.CATEGORY
    FUNCTION = "mux"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "VIDEO") if host.HAS_CORE_VIDEO else ("STRING",)
    RETURN_NAMES = ("path", "video") if host.HAS_CORE_VIDEO else ("path",)
    DESCRIPTION = ("Writes an mp4 to the output folder: the source video's stream copied unchanged "
                   "plus the audio, trimmed or padded to exactly the video's duration.")

    @classmethod
    def INPUT_TYPES(cls):
        optional = {
            "video": ("FOLEY_VIDEO", {"tooltip": "The video from Foley Load Video."}),
        }
        if host.HAS_CORE_VIDEO:
            optional["core_video"] = ("VIDEO", {"tooltip": "A core VIDEO instead of `video`."})
        return {
            "required": {
                "audio": ("AUDIO",),
                "filename_prefix": ("STRING", {"default": "foley/Foley",
                                               "tooltip": "Name (and subfolder) inside the output folder."}),
                "audio_codec": (list(CODECS), {"default": "aac"}),
                "mode": (list(MODES), {"default": "replace",
                                       "tooltip": "replace the soundtrack, or mix with the original"}),
                "offset_ms": ("FLOAT", {"default": 0.0, "min": -60000.0, "max": 60000.0, "step": 1.0,
                                        "tooltip": "Shift the audio later (+) or earlier (−)."}),
                "original_gain": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0, "step": 0.01}),
                "new_gain": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0, "step": 0.01}),
            },
            "optional": optional,
        }

    def mux(self, audio, filename_prefix, audio_codec="aac", mode="replace", offset_ms=0.0,
            original_gain=1.0, new_gain=1.0, video=None, core_video=None):
        if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
            raise MediaError("FoleyMux: `audio` is not an AUDIO value ({waveform, sample_rate}).")
        output_dir = Path(folder_paths.get_output_directory())
        scratch_root = Path(folder_paths.get_temp_directory())
        scratch_root.mkdir(parents=True, exist_ok=True)  # the host creates it lazily
        with tempfile.TemporaryDirectory(dir=scratch_root) as scratch:
            source_path, start_s = self._source(video, core_video, Path(scratch))
            out_path = safe_output_file(output_dir, filename_prefix, container_extension(audio_codec))
            try:
                result = mux_audio(source_path, audio["waveform"], audio["sample_rate"], out_path,
                                   audio_codec=audio_codec, offset_ms=offset_ms, mode=mode,
                                   original_gain=original_gain, new_gain=new_gain,
                                   audio_start_s=start_s)
            except BaseException:
                _remove_placeholder(out_path)
                raise
        for note in result.notes:
            print(f"[Foley Imitator] Mux: {note}")
        relative = result.path.resolve().relative_to(output_dir.resolve())
        entry = {"filename": relative.name, "subfolder": relative.parent.as_posix().strip("."),
                 "type": "output"}
        outputs = (str(result.path),)
        if host.HAS_CORE_VIDEO:
            outputs += (host.core_video_from_file(result.path),)
        return {"ui": {"foley_video": [entry]}, "result": outputs}

    @staticmethod
    def _source(video, core_video, scratch: Path) -> tuple[str, float]:
        """(file whose video stream is copied, where the audio starts in it). Frames without a
        file (an IMAGE batch, a core VIDEO built from images) are encoded once into scratch."""
        if core_video is not None:
            path, video_object = host.core_video_source(core_video)
            if path is not None:
                return path, 0.0
            components = video_object.get_components()
            encoded = encode_frames(components.images, Fraction(components.frame_rate),
                                    scratch / "frames.mp4")
            return str(encoded), 0.0
        if video is None:
            raise MediaError("FoleyMux: connect a video (Foley Load Video's `video` output).")
        if video.source_path is not None:
            return video.source_path, float(video.start_s)
        if video.source_frames is None:
            raise MediaError("FoleyMux: this video has neither a source file nor frames to encode.")
        encoded = encode_frames(video.source_frames, video.frame_rate, scratch / "frames.mp4")
        return str(encoded), float(video.start_s)


def _remove_placeholder(path: Path) -> None:
    # safe_output_file reserved an empty file; leave nothing behind when muxing failed.
    try:
        if path.exists() and path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


NODE_CLASS_MAPPINGS = {"FoleyMux": FoleyMux}
NODE_DISPLAY_NAME_MAPPINGS = {"FoleyMux": "Foley Mux (video + audio → mp4)"}
