"""Small real media files for the host tests (written with PyAV / the core's synthetic helpers)."""

from fractions import Fraction

import av
import numpy as np

FLASH_FPS = Fraction(30000, 1001)
FLASH_FRAMES = (5, 15, 17, 40, 41, 60, 77, 87, 95)
N_FLASH_FRAMES = 96  # 3.2032 s at 29.97 fps


def write_float_wav(path, samples: np.ndarray, sample_rate: int = 16000) -> str:
    """A mono 32-bit float WAV holding exactly these samples (NaN and Inf included)."""
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_f32le", rate=sample_rate, layout="mono")
        if samples.size:
            frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None, :], format="flt",
                                               layout="mono")
            frame.sample_rate = sample_rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return str(path)


def packets_of(path, kind: str = "video") -> list[tuple[bytes, int, int]]:
    """(payload, pts, dts) of every packet of the first stream of this kind."""
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [(bytes(p), p.pts, p.dts) for p in container.demux(stream) if p.size]


def decoded_audio(path) -> tuple[np.ndarray, int, int]:
    """(samples [C, T], sample_rate, number of audio streams) of a media file."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == "audio"]
        rate = streams[0].rate
        chunks = [f.to_ndarray() for f in container.decode(streams[0])]
    data = np.concatenate([c if c.ndim == 2 else c[None] for c in chunks], axis=1)
    return data, rate, len(streams)
