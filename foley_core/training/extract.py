"""Feature extraction for training: a folder of videos -> sharded conditioning features + latents.

Per video (sorted by name): the first `duration_s` seconds are resampled to the CLIP (8 fps)
and Synchformer (25 fps) frame stacks, the caption is CLIP-encoded, and the audio track is
decoded, mixed to mono, resampled to the mode's rate, padded/trimmed to exactly the latent
length's sample count, turned into a log-mel and encoded by the VAE encoder. The posterior mean
and std are both stored so each epoch can draw a fresh latent. Models are loaded through the
same core loaders the plugin uses. Memory is bounded by `batch_size` clips of frames plus one
shard of features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..errors import FoleyError
from ..media.audio import decode_audio_stream, fit_to_length, resample, to_mono
from ..media.video import probe_video, sample_video
from ..models.checkpoint_io import read_state_dict, require_kind
from ..models.clip_encoder import ClipEncoder
from ..models.mel import MelConverter
from ..models.mmaudio import sequence_lengths
from ..models.synchformer import SynchformerVisualEncoder
from ..models.vae import load_vae
from .shards import ShardWriter

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")


@dataclass
class Encoders:
    clip: ClipEncoder
    synchformer: SynchformerVisualEncoder
    vae: torch.nn.Module
    mel: MelConverter
    files: dict[str, str]


@dataclass
class PreparedClip:
    """One decoded training clip, ready for the encoders."""

    name: str
    source: str
    caption: str
    clip_frames: torch.Tensor  # uint8 (Nc, 3, 384, 384)
    sync_frames: torch.Tensor  # uint8 (25·d, 3, 224, 224)
    waveform: torch.Tensor  # float32 (samples,) at the mode's rate


def load_encoders(clip_file: str | Path, synchformer_file: str | Path, vae_file: str | Path,
                  mode: str, device: str | torch.device = "cpu") -> Encoders:
    """CLIP, Synchformer and VAE in fp32 via the plugin's loaders; checks the VAE fits `mode`."""
    loaded = {}
    for slot, path, kind in (("CLIP", clip_file, "CLIP"), ("Synchformer", synchformer_file, "Synchformer"),
                             ("VAE", vae_file, "VAE")):
        state_dict = read_state_dict(path, slot)
        require_kind(state_dict, kind, slot, Path(path).name)
        loaded[slot] = state_dict
    clip = ClipEncoder.from_state_dict(loaded["CLIP"], device=device)
    sync = SynchformerVisualEncoder.from_state_dict(loaded["Synchformer"], device=device)
    vae = load_vae(loaded["VAE"], dtype=torch.float32, device=device)
    if vae.cfg.mode != mode:
        raise FoleyError(f"The VAE {Path(vae_file).name} is a {vae.cfg.mode} VAE but --mode is {mode}.")
    files = {"clip": Path(clip_file).name, "synchformer": Path(synchformer_file).name,
             "vae": Path(vae_file).name}
    return Encoders(clip, sync, vae, MelConverter(mode).to(device), files)


def find_videos(video_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(video_dir).iterdir()
                  if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def caption_for(video: Path, captions: dict[str, str]) -> str:
    """captions.json entry, else a same-name .txt, else a same-name .json's "caption", else ""."""
    if video.name in captions:
        return str(captions[video.name])
    text_file = video.with_suffix(".txt")
    if text_file.is_file():
        return text_file.read_text(encoding="utf-8").strip()
    json_file = video.with_suffix(".json")
    if json_file.is_file():
        data = json.loads(json_file.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return str(data.get("caption", ""))
    return ""


def prepare_clip(video: Path, caption: str, duration_s: float, mode: str) -> PreparedClip:
    """Decode frames and audio of the first `duration_s` seconds; FoleyError if unusable."""
    seq = sequence_lengths(duration_s, mode)
    info = probe_video(video)
    if not info.has_audio:
        raise FoleyError("no audio stream")
    if float(info.duration) < duration_s:
        raise FoleyError(f"shorter than {duration_s:g} s ({float(info.duration):.3f} s)")
    sampled = sample_video(str(video), 0.0, duration_s)
    clip_frames, sync_frames = sampled.clip_frames, sampled.sync_frames
    if clip_frames.shape[0] != seq.clip_frames or sync_frames.shape[0] != seq.sync_frames:
        raise FoleyError(f"got {clip_frames.shape[0]}/{sync_frames.shape[0]} frames, expected "
                         f"{seq.clip_frames}/{seq.sync_frames}")
    decoded = decode_audio_stream(video, 0.0, duration_s)
    if decoded is None:
        raise FoleyError("no audio stream")
    waveform, rate = decoded
    mono = resample(to_mono(waveform), rate, seq.sample_rate)[0]
    # Exactly the latent length's worth of samples: N latents = 2N mel frames = 2N·hop samples.
    mono = fit_to_length(mono, seq.samples)
    return PreparedClip(video.name, str(video), caption, clip_frames, sync_frames, mono)


@torch.inference_mode()
def encode_batch(encoders: Encoders, clips: list[PreparedClip]) -> list[dict[str, torch.Tensor]]:
    """Run the three encoders on a batch of clips; returns one feature dict per clip (CPU, fp32)."""
    device = encoders.clip.device
    clip_f = encoders.clip.encode_video_frames(torch.stack([c.clip_frames for c in clips]).to(device))
    sync_f = encoders.synchformer(torch.stack([c.sync_frames for c in clips]).to(device))
    text_f = encoders.clip.encode_text([c.caption for c in clips])
    wav = torch.stack([c.waveform for c in clips]).to(device)
    posterior = encoders.vae.encode(encoders.mel(wav))
    # Posterior (B, C, N) -> channel-last (B, N, C), the layout the network consumes.
    mean, std = posterior.mean.transpose(1, 2), posterior.std.transpose(1, 2)
    return [{"clip_f": clip_f[i].float().cpu(), "sync_f": sync_f[i].float().cpu(),
             "text_f": text_f[i].float().cpu(), "latent_mean": mean[i].float().cpu(),
             "latent_std": std[i].float().cpu()} for i in range(len(clips))]


def _batches(videos: list[Path], captions: dict[str, str], duration_s: float, mode: str,
             batch_size: int, writer: ShardWriter, report: Callable[[str], None]
             ) -> Iterator[list[PreparedClip]]:
    batch: list[PreparedClip] = []
    for video in videos:
        try:
            batch.append(prepare_clip(video, caption_for(video, captions), duration_s, mode))
        except FoleyError as error:  # MediaError included: unreadable, too short, no audio
            writer.skip(str(video), str(error))
            report(f"skipped {video.name}: {error}")
            continue
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def extract_features(video_dir: str | Path, out_dir: str | Path, encoders: Encoders, *, mode: str,
                     duration_s: float = 8.0, captions: dict[str, str] | None = None,
                     shard_size: int = 64, batch_size: int = 4,
                     report: Callable[[str], None] = print) -> dict:
    """Extract every usable video in `video_dir` into `out_dir`; returns the written index."""
    seq = sequence_lengths(duration_s, mode)
    videos = find_videos(video_dir)
    if not videos:
        raise FoleyError(f"no {'/'.join(VIDEO_SUFFIXES)} files in {video_dir}")
    header = {"mode": mode, "duration_s": float(duration_s), "sample_rate": seq.sample_rate,
              "seq": {"latent": seq.latent, "clip": seq.clip, "sync": seq.sync, "text": seq.text},
              "encoders": encoders.files}
    writer = ShardWriter(out_dir, shard_size, header)
    with torch.inference_mode():
        # The network's empty_string_feat is CLIP(""): store it once to initialise new networks.
        writer.write_empty_text(encoders.clip.encode_text([""])[0])
    done = 0
    for batch in _batches(videos, captions or {}, duration_s, mode, batch_size, writer, report):
        for clip, features in zip(batch, encode_batch(encoders, batch)):
            if features["sync_f"].shape[0] != seq.sync or features["latent_mean"].shape[0] != seq.latent:
                raise FoleyError(f"{clip.name}: unexpected feature lengths")
            writer.add(clip.name, clip.caption, clip.source, features)
        done += len(batch)
        report(f"encoded {done} clip(s)")
    index = writer.close()
    report(f"wrote {len(index['clips'])} clip(s) in {len(index['shards'])} shard(s) to {out_dir}; "
           f"skipped {len(index['skipped'])}")
    return index
