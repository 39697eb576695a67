"""Load Video: a video file, a core VIDEO, or an IMAGE batch → exactly timed frame stacks."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

from ..foley_core.errors import MediaError
from ..foley_core.media.video import MAX_DURATION_S, sample_video
from . import host


class FoleyLoadVideo:
    """Decodes a video once (streaming) into the 8 fps CLIP and 25 fps Synchformer stacks."""

    CATEGORY = host.CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("FOLEY_VIDEO", "IMAGE", "FLOAT")
    RETURN_NAMES = ("video", "preview", "duration")
    DESCRIPTION = ("Reads a video from ComfyUI's input folder (or a core VIDEO, or an IMAGE batch "
                   "with its fps) and resamples it by timestamp to the encoders' frame rates.")

    @classmethod
    def INPUT_TYPES(cls):
        optional = {
            "images": ("IMAGE", {"tooltip": "Use these frames instead of the file (set fps)."}),
            "fps": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.001,
                              "tooltip": "Frame rate of `images` (required when images are connected)."}),
        }
        if host.HAS_CORE_VIDEO:
            optional["core_video"] = ("VIDEO", {"tooltip": "A core VIDEO; used instead of the file."})
        return {
            "required": {
                "video": (host.input_files(host.VIDEO_EXTENSIONS), {"video_upload": True}),
                "start_time": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e6, "step": 0.01,
                                         "tooltip": "Seconds into the video where the segment starts."}),
                "max_duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": MAX_DURATION_S, "step": 0.01,
                                           "tooltip": "Longest segment to use, seconds (0 = to the end)."}),
            },
            "optional": optional,
        }

    @classmethod
    def VALIDATE_INPUTS(cls, video):
        # File names are checked when the node runs, so a bad name gets a clear error in the
        # prompt's history (and a connected IMAGE/VIDEO input can replace the file).
        return True

    @classmethod
    def IS_CHANGED(cls, video, **_):
        try:
            return host.file_fingerprint(host.resolve_input_file(video, "video"))
        except MediaError:
            return "invalid"

    def load(self, video, start_time=0.0, max_duration=0.0, images=None, fps=0.0, core_video=None):
        report = host.progress_reporter(100)
        progress = lambda done, total: report(done, total)  # noqa: E731
        if core_video is not None:
            path, video_object = host.core_video_source(core_video)
            if path is not None:
                source, rate = path, None
            else:
                components = video_object.get_components()
                source, rate = components.images, Fraction(components.frame_rate)
        elif images is not None:
            if not fps or fps <= 0:
                raise MediaError("FoleyLoadVideo: `images` is connected but `fps` is 0; set the "
                                 "frame rate of the image batch.")
            source, rate = images, Fraction(fps).limit_denominator(1001 * 1000)
        else:
            source, rate = str(host.resolve_input_file(video, "video")), None
        sampled = sample_video(source, start_time, max_duration or None, frame_rate=rate,
                               progress=progress)
        return (sampled, sampled.preview, sampled.duration_s)


class FoleyInspectVideo:
    """Shows what the encoders will see: one resampled stream as IMAGE frames plus its timing."""

    CATEGORY = host.CATEGORY
    FUNCTION = "inspect"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("frames", "info")
    STREAMS = ("clip_8fps", "sync_25fps", "preview")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("FOLEY_VIDEO",), "stream": (list(cls.STREAMS),)}}

    def inspect(self, video, stream):
        if stream == "preview":
            frames = video.preview
        else:
            stacked = video.clip_frames if stream == "clip_8fps" else video.sync_frames
            frames = stacked.permute(0, 2, 3, 1).float() / 255.0
        info = video_summary(video)
        return {"ui": {"text": [json.dumps(info)]}, "result": (frames, json.dumps(info))}


def video_summary(video) -> dict:
    """Timing facts of a FOLEY_VIDEO as plain JSON (exact values as fraction strings)."""
    return {
        "source": Path(video.source_path).name if video.source_path else None,
        "frame_rate": str(video.frame_rate),
        "start_s": video.start_s,
        "duration": str(video.duration),
        "duration_s": video.duration_s,
        "width": video.width,
        "height": video.height,
        "rotation": video.rotation,
        "streams": {name: {"rate": str(video.stream_rates[name]), "frames": int(t.shape[0]),
                           "size": [int(t.shape[-1]), int(t.shape[-2])]}
                    for name, t in video.streams.items()},
    }


NODE_CLASS_MAPPINGS = {"FoleyLoadVideo": FoleyLoadVideo, "FoleyInspectVideo": FoleyInspectVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"FoleyLoadVideo": "Foley Load Video",
                              "FoleyInspectVideo": "Foley Inspect Video (encoder frames)"}
