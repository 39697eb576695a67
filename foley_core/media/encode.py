"""Encode an in-memory frame batch (ComfyUI IMAGE) as an H.264 mp4, for muxing.

Only used when the video has no source file (frames came from another node); a file source is
always stream-copied instead.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..errors import MediaError


def encode_frames(frames: torch.Tensor, frame_rate: Fraction, out_path: str | Path, *,
                  crf: int = 18) -> Path:
    """frames: [T, H, W, 3] float 0..1 or uint8 → H.264 yuv420p mp4 at exactly frame_rate."""
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise MediaError(f"Expected an IMAGE batch [T, H, W, 3], got shape {tuple(frames.shape)}.")
    rate = Fraction(frame_rate)
    height, width = int(frames.shape[1]), int(frames.shape[2])
    # yuv420p needs even sizes: pad one edge row/column by repeating it.
    pad_h, pad_w = height % 2, width % 2
    out_path = Path(out_path)
    with av.open(str(out_path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width + pad_w, height + pad_h, "yuv420p"
        stream.time_base = 1 / rate
        stream.options = {"crf": str(crf)}
        for index in range(frames.shape[0]):
            frame = frames[index]
            if frame.dtype != torch.uint8:
                frame = (frame.float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
            array = np.ascontiguousarray(frame.cpu().numpy())
            if pad_h or pad_w:
                array = np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            video_frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            video_frame.pts = index
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out_path
