"""Video input for the Foley pipeline: probe a file, resample it to the encoders' frame rates.

The public names live here; the work is split between `video_probe` (stream facts, exact
duration, rotation) and `frame_sampling` (streaming timestamp-exact resampling to 8 fps CLIP
and 25 fps Synchformer stacks plus an IMAGE preview). See those modules for the rules.
"""

from .frame_sampling import (
    CLIP_STREAM,
    MAX_DURATION_S,
    PREVIEW_MAX_FPS,
    PREVIEW_MAX_FRAMES,
    PREVIEW_MAX_SIDE,
    STANDARD_STREAMS,
    SYNC_STREAM,
    FrameStream,
    SampledVideo,
    sample_video,
)
from .video_probe import MAX_FRAME_SIDE, VideoInfo, probe_video

__all__ = [
    "CLIP_STREAM",
    "MAX_DURATION_S",
    "MAX_FRAME_SIDE",
    "PREVIEW_MAX_FPS",
    "PREVIEW_MAX_FRAMES",
    "PREVIEW_MAX_SIDE",
    "STANDARD_STREAMS",
    "SYNC_STREAM",
    "FrameStream",
    "SampledVideo",
    "VideoInfo",
    "probe_video",
    "sample_video",
]
