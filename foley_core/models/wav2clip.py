"""Wav2CLIP (Wu et al. 2022, MIT licence) audio embeddings and the CLIP ViT-B/32 image embeddings
they live beside, both from local files only.

Wav2CLIP distils CLIP into an audio encoder: a ResNet-18 over a log spectrogram of 16-kHz mono
audio, then an MLP (`audio_transform`) trained so that the audio of a VGGSound clip lands on the
mean CLIP ViT-B/32 (OpenAI) image embedding of its frames. Cosine similarity between the two
measures how well a sound fits a picture. The network is the `wav2clip` package's own
`ResNetExtractor`; its `get_model()` downloads the weights, so it is never called — the state dict
is read weights-only from a local file and handed to `ResNetExtractor(checkpoint=...)`.

Files:
  * Wav2CLIP: the official release `Wav2CLIP.pt`, a flat state dict of the pre-training module
    (`audio_encoder.*`, `audio_transform.*`, and entries the extractor ignores such as
    `image_transform.*`). A copy nested under `state_dict` / `model` (a Lightning checkpoint) or
    with every key under one extra prefix (`model.audio_encoder.…`) is accepted too.
  * CLIP: OpenAI's ViT-B/32 as a plain state dict in open_clip key names — open_clip's
    `open_clip_model.safetensors` / `open_clip_pytorch_model.bin` of
    `timm/vit_base_patch32_clip_224.openai`, or a `torch.save(model.state_dict())` of OpenAI's
    model (its `input_resolution` / `context_length` / `vocab_size` entries are dropped). OpenAI's
    own `ViT-B-32.pt` is a TorchScript archive: loading it runs code, so it is refused with a
    message naming the weights-only files.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, MediaError
from .checkpoint_io import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, guess_checkpoint_kind, unwrap_state_dict
from .clip_encoder import ClipEncoder, clip_config_from_state_dict, prepare_clip_state_dict

SAMPLE_RATE = 16000  # Wav2CLIP was trained on librosa.load(..., sr=16000) float waveforms
EMBED_DIM = 512  # CLIP ViT-B/32's joint space
CLIP_IMAGE_SIZE = 224
WAV2CLIP_FILE = "Wav2CLIP.pt"
CLIP_FILE = "ViT-B-32-openai.safetensors"
MIN_AUDIO_SAMPLES = 800  # 0.05 s: the 512-point spectrogram's reflect padding needs > 256 samples
# OpenAI's state dicts carry these three non-weights; open_clip's build drops them too.
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
# ViT-B/32 shapes: a CLIP of another architecture still loads, with a note that the scores are off.
VIT_B32 = {"width": 768, "layers": 12, "patch_size": 32}

WAV2CLIP_HINT = (f"Use the official {WAV2CLIP_FILE} (the Wav2CLIP v0.1.0-alpha release of "
                 "descriptinc/lyrebird-wav2clip).")
CLIP_HINT = ("Use OpenAI's CLIP ViT-B/32 as a weights-only open_clip file, e.g. open_clip_model.safetensors of "
             f"timm/vit_base_patch32_clip_224.openai, renamed to {CLIP_FILE}.")


def _read(path: Path, slot: str, hint: str) -> dict[str, torch.Tensor]:
    """A {name: tensor} dict, weights-only. Not checkpoint_io.read_state_dict: that one memory-maps
    pickles, which fails on files in torch's legacy (pre-1.6) format; these files are small."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{slot}: {path.name} does not exist in {path.parent}. {hint}")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist()):
                raise CheckpointError(f"{slot}: {path.name} (in {path.parent}) is a TorchScript archive, which "
                                      f"cannot be loaded without running its code. {hint}")
    try:
        if suffix in SAFETENSORS_SUFFIXES:
            from safetensors.torch import load_file

            data = load_file(str(path), device="cpu")
        elif suffix in PICKLE_SUFFIXES:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise CheckpointError(f"{slot}: {path.name} has an unsupported extension {suffix!r}; expected one "
                                  f"of {sorted(SAFETENSORS_SUFFIXES | PICKLE_SUFFIXES)}. {hint}")
    except CheckpointError:
        raise
    except Exception as error:  # corrupt or truncated file, or a pickle of more than tensors
        raise CheckpointError(f"{slot}: could not read {path.name} (in {path.parent}) as a weights file "
                              f"({type(error).__name__}: {str(error)[:300]}); only plain state dicts load "
                              f"(weights_only). {hint}") from None
    try:
        return unwrap_state_dict(data, slot, path.name)
    except CheckpointError as error:
        raise CheckpointError(f"{error} {hint}") from None


# Wav2CLIP audio encoder ----------------------------------------------------------------------------

def _wav2clip_prefix(state_dict) -> Optional[str]:
    """'' for official keys, 'model.' etc. when every name sits one level deeper; None if absent."""
    marker = "audio_encoder.conv1.weight"
    for key in state_dict:
        head = key[: -len(marker)]
        if key.endswith(marker) and (not head or head.endswith(".")):
            return head
    return None


def load_wav2clip(path: Path, device: torch.device | str = "cpu"):
    """The package's `ResNetExtractor` (frozen, with the CLIP-space `audio_transform`) from a local
    Wav2CLIP file, read weights-only. Raises CheckpointError naming the file and its folder."""
    from wav2clip.model.encoder import ResNetExtractor

    path = Path(path)
    slot = "Wav2CLIP"
    state_dict = _read(path, slot, WAV2CLIP_HINT)
    prefix = _wav2clip_prefix(state_dict)
    if prefix is None:
        raise CheckpointError(f"{slot}: {path.name} (in {path.parent}) is not a Wav2CLIP file: it has no "
                              f"audio_encoder.* weights (it looks like a {guess_checkpoint_kind(state_dict)} "
                              f"file). {WAV2CLIP_HINT}")
    sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not any(k.startswith("audio_transform.") for k in sd):
        raise CheckpointError(f"{slot}: {path.name} (in {path.parent}) has no audio_transform.* weights, the "
                              "projection into CLIP's image space that the score needs (the release file was "
                              f"trained with it). {WAV2CLIP_HINT}")
    window = "audio_encoder.spectrogram.window"  # a fixed Hann window, absent from some re-exports
    if window not in sd:
        sd[window] = torch.hann_window(512)
    # The extractor only reads audio_encoder.* / audio_transform.* (strictly); ignore the rest.
    sd = {k: v.float() for k, v in sd.items() if k.startswith(("audio_encoder.", "audio_transform."))}
    try:
        model = ResNetExtractor(checkpoint=sd, scenario="frozen", transform=True)
    except RuntimeError as error:  # missing / unexpected keys or wrong shapes
        raise CheckpointError(f"{slot}: {path.name} (in {path.parent}) does not fit Wav2CLIP's ResNet-18 + MLP: "
                              f"{str(error)[:400]} {WAV2CLIP_HINT}") from None
    return model.eval().requires_grad_(False).to(device)


@torch.inference_mode()
def embed_audio(model, waves: torch.Tensor) -> torch.Tensor:
    """(B, T) 16-kHz mono float waveforms → (B, 512) L2-normalised Wav2CLIP embeddings.

    The same layers as the package's `ResNet.forward` (power spectrogram n_fft 512 / hop 353,
    log(x + 1e-7), standardisation, ResNet-18, average pool, then the MLP), except that the
    standardisation uses each clip's own mean and std: the package takes them over the whole
    batch, which would make a candidate's score depend on the others scored with it. For one
    clip the two are identical.
    """
    if waves.ndim != 2:
        raise ValueError(f"embed_audio expects (B, T) waveforms, got {tuple(waves.shape)}")
    enc = model.encoder
    device = next(enc.parameters()).device
    x = enc.spectrogram(waves.to(device, torch.float32).unsqueeze(1))  # (B, 1, 257, frames)
    x = torch.log(x + 1e-7)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    x = (x - mean) / (std + 1e-9)
    x = enc.maxpool(enc.relu(enc.bn1(enc.conv1(x))))
    x = enc.layer4(enc.layer3(enc.layer2(enc.layer1(x))))
    x = enc.avgpool(x).flatten(1)
    if model.transform is not None:
        x = model.transform(x)
    return F.normalize(x.float(), dim=-1)


def to_16k(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """A mono float waveform resampled to Wav2CLIP's 16 kHz (librosa's soxr_hq, as its training data)."""
    wave = np.asarray(wave, dtype=np.float32)
    if int(sample_rate) == SAMPLE_RATE:
        return wave
    import librosa

    return librosa.resample(wave, orig_sr=int(sample_rate), target_sr=SAMPLE_RATE).astype(np.float32)


# CLIP ViT-B/32 image tower ----------------------------------------------------------------------------

def load_clip_b32(path: Path, device: torch.device | str = "cpu") -> tuple[ClipEncoder, list[str]]:
    """(ClipEncoder, notes) from a local open_clip-format CLIP file whose image embedding is 512-d at
    224 px. The config comes from the tensor shapes; QuickGELU, as OpenAI's CLIPs."""
    path = Path(path)
    slot = "Wav2CLIP's CLIP"
    state_dict = _read(path, slot, CLIP_HINT)
    sd = prepare_clip_state_dict({k: v for k, v in state_dict.items() if k not in OPENAI_EXTRA_KEYS})
    if guess_checkpoint_kind(sd) != "CLIP":
        raise CheckpointError(f"{slot}: {path.name} (in {path.parent}) is not a CLIP file (it looks like a "
                              f"{guess_checkpoint_kind(sd)} file). {CLIP_HINT}")
    try:
        config = clip_config_from_state_dict(sd)
    except CheckpointError as error:
        raise CheckpointError(f"{slot}: {path.name} (in {path.parent}): {error} {CLIP_HINT}") from None
    vision = config["vision_cfg"]
    if config["embed_dim"] != EMBED_DIM or vision["image_size"] != CLIP_IMAGE_SIZE:
        raise CheckpointError(f"{slot}: {path.name} (in {path.parent}) embeds {vision['image_size']}-px images into "
                              f"{config['embed_dim']} dimensions; Wav2CLIP lives in CLIP ViT-B/32's {EMBED_DIM}-d "
                              f"space of {CLIP_IMAGE_SIZE}-px images. {CLIP_HINT}")
    try:
        clip = ClipEncoder.from_state_dict(sd, config=config, device=device)
    except CheckpointError as error:
        raise CheckpointError(f"{slot}: {path.name} (in {path.parent}): {str(error)[:500]} {CLIP_HINT}") from None
    notes = []
    if any(vision[k] != v for k, v in VIT_B32.items()):
        notes.append(f"{path.name} is not ViT-B/32-shaped (width {vision['width']}, {vision['layers']} layers, "
                     f"patch {vision['patch_size']}): Wav2CLIP was trained against OpenAI's ViT-B/32, so its "
                     "scores against this CLIP mean little.")
    return clip, notes


def frame_embeddings(clip: ClipEncoder, frames: torch.Tensor, fps: float,
                     max_fps: float = 8.0) -> tuple[torch.Tensor, np.ndarray]:
    """((T', 512) L2-normalised CLIP image embeddings, (T',) frame times in s) of uint8 frames
    [T, 3, 224, 224] (the 25-fps sync stream: short side to 224 + centre crop, which is CLIP's own
    preprocessing), thinned to at most `max_fps` — a mean over frames needs no more."""
    if not isinstance(frames, torch.Tensor):
        frames = torch.as_tensor(np.asarray(frames))
    if frames.ndim != 4 or frames.shape[1] != 3 or tuple(frames.shape[2:]) != (CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE):
        raise MediaError(f"Wav2CLIP: the video frames must be [T, 3, {CLIP_IMAGE_SIZE}, {CLIP_IMAGE_SIZE}], "
                              f"got {tuple(frames.shape)}.")
    if frames.shape[0] == 0:
        raise MediaError("Wav2CLIP: the video has no frames.")
    step = max(1, int(round(float(fps) / max_fps)))
    index = torch.arange(0, frames.shape[0], step)
    emb = clip.encode_video_frames(frames[index].to(torch.uint8)[None])[0]
    return emb.float().cpu(), index.numpy().astype(np.float64) / float(fps)
