"""Verifiers F for the noise search: score a batch of decoded audio, higher is better.

A verifier has a `name`, a `weight` and `score(audio, sample_rate, context) -> float64 [B]`, where
`audio` is a batch [B, T] or [B, C, T] (numpy or torch). Verifiers combine by a weighted SUM
(`combine`): F = Σ w_k · F_k; `score_parts` also returns each F_k so the search trace shows
which term moved. Scores live on comparable scales: envelope, timbre and onset agreement are in
[0, 1], CLAP and Wav2CLIP are cosine similarities in [−1, 1].

Implemented:
- `envelope`: 1 − E-L1 between the audio's RMS envelope and a target `Envelope` (Stable-V2A's
  envelope and metric, metrics/envelope_distance.py).
- `timbre`: 1 / (1 + d / 10), d = distance between MFCC timbre descriptors (metrics/timbre.py) of
  the audio and of a reference (a waveform, e.g. a FOLEY_STYLE's prompt latent decoded, or a
  descriptor). d ≈ 10 is the typical gap between different materials on the synthetic set.
- `motion_onsets`: F1 at 0.1 s between onsets detected in the audio (metrics/onsets.py) and
  motion onsets of the video: peaks of the drop in frame-difference energy (an object stopping —
  an impact or a footfall), 25 fps frames. A heuristic: on 16 synthetic clips its motion onsets
  match the true sound onsets with F1 ≈ 0.49 at 0.1 s.
- `clap`: cosine similarity of CLAP audio and text embeddings, `transformers` ClapModel +
  ClapProcessor loaded from a LOCAL folder only (local_files_only; never the network).
- `synchformer_desync`: 1 − DeSync/2 in [0, 1], DeSync as av-benchmark computes it with the full
  Synchformer (metrics/desync.py; parity-tested against the official code).
- `wav2clip`: cosine similarity in [−1, 1] between each candidate's Wav2CLIP audio embedding and
  the mean CLIP ViT-B/32 image embedding of the video's frames (models/wav2clip.py; local files).
Not implemented (a clear error rather than a silent no-op): ImageBind — no usable, permissively
licensed package exists on PyPI (`imagebind` is an empty placeholder; the repackagings carry
Meta's CC BY-NC-SA 4.0 code).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..controls.envelope import Envelope, as_numpy, mono_resampled, rms_envelope
from ..errors import FoleyError
from ..metrics.envelope_distance import e_l1
from ..metrics.onsets import Onsets, detect_onsets, match_onsets
from ..metrics.timbre import timbre_descriptor

TIMBRE_SCALE = 10.0
ONSET_TOLERANCE_S = 0.1
MOTION_PEAK_RATIO = 0.3  # a motion onset must reach 30 % of the clip's strongest one
MOTION_MIN_SEPARATION_S = 0.05  # as the audio detector's non-maximum suppression

NOT_IMPLEMENTED = {
    "imagebind": "ImageBind audio–video scoring is not implemented in this plugin.",
}


@dataclass
class VerifierContext:
    """What a search run knows about the clip being generated."""

    duration_s: Optional[float] = None
    prompt: str = ""


def audio_items(audio) -> list[np.ndarray]:
    """A batch [B, T] / [B, C, T] as a list of mono float32 clips."""
    a = as_numpy(audio).astype(np.float32, copy=False)
    if a.ndim == 1:
        a = a[None]
    if a.ndim == 3:
        a = a.mean(axis=1)
    if a.ndim != 2:
        raise FoleyError(f"Verifiers score an audio batch [B, T] or [B, C, T], got shape {a.shape}.")
    return [np.ascontiguousarray(x) for x in a]


class Verifier:
    """Base class: subclasses set `name` and implement `_score_one` or `score`."""

    name = "verifier"

    def __init__(self, weight: float = 1.0):
        if not np.isfinite(weight):
            raise FoleyError(f"Verifier weight must be a finite number, got {weight}.")
        self.weight = float(weight)

    def score(self, audio, sample_rate: int, context: Optional[VerifierContext] = None) -> np.ndarray:
        context = context or VerifierContext()
        return np.array([self._score_one(x, int(sample_rate), context) for x in audio_items(audio)],
                        dtype=np.float64)

    def _score_one(self, wave: np.ndarray, sample_rate: int, context: VerifierContext) -> float:
        raise NotImplementedError

    @property
    def members(self) -> tuple["Verifier", ...]:
        return (self,)

    def describe(self) -> str:
        return f"{self.name} ×{self.weight:g}"


class CombinedVerifier(Verifier):
    """Σ w_k · F_k over its members (each member keeps its own weight)."""

    name = "combined"

    def __init__(self, members: Sequence[Verifier]):
        super().__init__(1.0)
        flat = [m for v in members for m in v.members]
        if not flat:
            raise FoleyError("No verifier to combine: load at least one with Foley Load Verifier.")
        self._members = tuple(flat)

    @property
    def members(self) -> tuple[Verifier, ...]:
        return self._members

    def score_parts(self, audio, sample_rate: int, context: Optional[VerifierContext] = None) -> dict:
        """{"total": Σ w_k F_k, "<name>": F_k (unweighted), ...}; repeated names get #2, #3."""
        parts, total = {}, None
        for member in self._members:
            values = np.asarray(member.score(audio, sample_rate, context), dtype=np.float64)
            key, k = member.name, 2
            while key in parts:
                key, k = f"{member.name}#{k}", k + 1
            parts[key] = values
            total = member.weight * values if total is None else total + member.weight * values
        return {"total": total, **parts}

    def score(self, audio, sample_rate: int, context: Optional[VerifierContext] = None) -> np.ndarray:
        return self.score_parts(audio, sample_rate, context)["total"]

    def describe(self) -> str:
        return " + ".join(m.describe() for m in self._members)


def combine(*verifiers: Optional[Verifier]) -> CombinedVerifier:
    """One verifier from several (None entries are skipped; combined ones are flattened)."""
    return CombinedVerifier([v for v in verifiers if v is not None])


class EnvelopeVerifier(Verifier):
    name = "envelope"

    def __init__(self, target, weight: float = 1.0):
        super().__init__(weight)
        values = getattr(target, "values", None)
        rate = getattr(target, "frame_rate", None)
        if values is None or rate is None:
            raise FoleyError("The envelope verifier needs a target envelope (FOLEY_ENVELOPE) or a target AUDIO.")
        self.target = Envelope(np.asarray(as_numpy(values), dtype=np.float32).reshape(-1), float(rate))
        if self.target.n_frames == 0 or not np.all(np.isfinite(self.target.values)):
            raise FoleyError("The target envelope is empty or contains NaN/Inf values.")

    @classmethod
    def from_audio(cls, waveform, sample_rate: int, weight: float = 1.0) -> "EnvelopeVerifier":
        return cls(rms_envelope(waveform, sample_rate), weight)

    def _score_one(self, wave, sample_rate, context):
        return 1.0 - e_l1(rms_envelope(wave, sample_rate), self.target)


class TimbreVerifier(Verifier):
    name = "timbre"

    def __init__(self, descriptor, weight: float = 1.0, scale: float = TIMBRE_SCALE):
        super().__init__(weight)
        self.descriptor = np.asarray(as_numpy(descriptor), dtype=np.float64).reshape(-1)
        self.scale = float(scale)

    @classmethod
    def from_audio(cls, waveform, sample_rate: int, weight: float = 1.0) -> "TimbreVerifier":
        wave = mono_resampled(waveform, sample_rate, sample_rate)
        if not np.any(np.abs(wave) > 1e-6):
            raise FoleyError("The timbre reference is silent; pick a reference with sound in it.")
        return cls(timbre_descriptor(wave, sample_rate), weight)

    def _score_one(self, wave, sample_rate, context):
        distance = float(np.linalg.norm(timbre_descriptor(wave, sample_rate) - self.descriptor))
        return 1.0 / (1.0 + distance / self.scale)


def reference_waveform(style, vae, vocoder) -> np.ndarray:
    """The FOLEY_STYLE reference as audio: its prompt latent decoded (VAE → vocoder), mono."""
    from ..decoding import decode_latents

    return decode_latents(vae, vocoder, style.prompt_latent)[0, 0].cpu().numpy()


def motion_onsets(frames, fps: float) -> np.ndarray:
    """Times (s) where on-screen motion suddenly drops: peaks of max(0, −Δ m_k), where m_k is the
    mean absolute grey-level difference between frames k and k+1. frames: uint8/float [T, 3, H, W]
    or [T, H, W, 3]."""
    from scipy.signal import find_peaks

    f = as_numpy(frames).astype(np.float32)
    if f.ndim != 4 or f.shape[0] < 3:
        raise FoleyError(f"Motion onsets need at least 3 video frames [T, 3, H, W], got shape {f.shape}.")
    grey = f.mean(axis=1) if f.shape[1] == 3 else f.mean(axis=-1)
    energy = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))
    drop = np.r_[0.0, np.maximum(0.0, -np.diff(energy)), 0.0]  # index = frame where it happens
    if drop.max() <= 0:
        return np.zeros(0)
    peaks, _ = find_peaks(drop, height=MOTION_PEAK_RATIO * drop.max(),
                          distance=max(1, int(round(MOTION_MIN_SEPARATION_S * fps))))
    return peaks.astype(np.float64) / float(fps)


def onset_f1(pred_times, ref_times, tolerance: float = ONSET_TOLERANCE_S) -> float:
    """F1 of one-to-one matches within `tolerance`; both empty → 1, one empty → 0."""
    pred, ref = np.asarray(pred_times, dtype=np.float64), np.asarray(ref_times, dtype=np.float64)
    if pred.size == 0 and ref.size == 0:
        return 1.0
    if pred.size == 0 or ref.size == 0:
        return 0.0
    hits = int(match_onsets(Onsets(pred, np.ones_like(pred)), ref, tolerance).sum())
    return 2.0 * hits / (pred.size + ref.size)


class MotionOnsetVerifier(Verifier):
    name = "motion_onsets"

    def __init__(self, onset_times, weight: float = 1.0, tolerance: float = ONSET_TOLERANCE_S):
        super().__init__(weight)
        self.onsets = np.sort(np.asarray(onset_times, dtype=np.float64).reshape(-1))
        self.tolerance = float(tolerance)

    @classmethod
    def from_frames(cls, frames, fps: float, weight: float = 1.0) -> "MotionOnsetVerifier":
        return cls(motion_onsets(frames, fps), weight)

    def _score_one(self, wave, sample_rate, context):
        times = detect_onsets(wave, sample_rate).times
        if context.duration_s:
            times = times[times < context.duration_s]
        return onset_f1(times, self.onsets, self.tolerance)


# Synchformer DeSync -------------------------------------------------------------------------------

class SynchformerDesyncVerifier(Verifier):
    """1 − DeSync/2: DeSync (s) of each candidate against the video, exactly as av-benchmark scores
    a generated soundtrack (argmax offset class of the first and last 4.8-s window, |offset|
    averaged), mapped to [0, 1] so it adds up with the other verifiers: 1 = both windows in sync,
    0 = both at the ±2 s extreme. The rescaled published metric (not, e.g., the softmax probability
    of offset 0) so that the search optimises the number that is reported; it moves in steps of
    0.05 (0.2 s in one window), so ties are common between close candidates.

    The visual branch runs once, here, on the whole video; each `score` batches the audio branch
    over all candidates and their segments. Needs ≥ 4.8 s of audio and video (14 segments).
    """

    name = "synchformer_desync"

    def __init__(self, model, sync_frames, weight: float = 1.0):
        super().__init__(weight)
        import torch

        frames = torch.as_tensor(as_numpy(sync_frames)) if not isinstance(sync_frames, torch.Tensor) else sync_frames
        if frames.ndim != 4:
            raise FoleyError(f"The DeSync verifier needs the 25-fps frames [T, 3, 224, 224], got {tuple(frames.shape)}.")
        self.model = model
        self.n_frames = int(frames.shape[0])
        self.visual = model.encode_segments(frames[None])  # (1, S, 8, D), cached for every score call

    def window_scores(self, audio, sample_rate: int, context: Optional[VerifierContext] = None) -> np.ndarray:
        """(2, B) |offset| (s) of the first and last window for each candidate."""
        import torch

        from ..metrics.desync import pair_window_scores
        from ..models.synchformer import num_segments
        from ..models.synchformer_sync.frontend import SAMPLE_RATE, SEGMENT_SAMPLES, SEGMENT_STRIDE, to_16k
        from ..models.synchformer_sync.model import WINDOW_SEGMENTS

        context = context or VerifierContext()
        wave = to_16k(torch.from_numpy(np.stack(audio_items(audio))), sample_rate)
        n_frames = self.n_frames
        if context.duration_s:  # av-benchmark cuts both streams to the clip length first
            wave = wave[:, : int(SAMPLE_RATE * context.duration_s)]
            n_frames = min(n_frames, int(25 * context.duration_s))
        s_audio = max(0, (wave.shape[1] - SEGMENT_SAMPLES) // SEGMENT_STRIDE + 1)
        s = min(num_segments(n_frames), s_audio, self.visual.shape[1])
        if s < WINDOW_SEGMENTS:
            raise FoleyError(f"The DeSync verifier needs at least 4.8 s of audio and video ({WINDOW_SEGMENTS} "
                             f"Synchformer segments); this clip gives {s}. Generate a longer clip or drop "
                             "this verifier.")
        wave = wave[:, : SEGMENT_SAMPLES + SEGMENT_STRIDE * (s - 1)]  # only the segments used
        visual = self.visual[:, :s].expand(wave.shape[0], -1, -1, -1)
        return pair_window_scores(self.model, visual, self.model.encode_audio(wave)).cpu().double().numpy()

    def score(self, audio, sample_rate: int, context: Optional[VerifierContext] = None) -> np.ndarray:
        return 1.0 - self.window_scores(audio, sample_rate, context).mean(axis=0) / 2.0


# CLAP -------------------------------------------------------------------------------------------

CLAP_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CLAP_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")  # either (older/newer transformers)
CLAP_TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))


def check_clap_folder(folder: Path) -> None:
    """Raise a FoleyError naming every file the folder lacks (a `save_pretrained` of ClapModel
    and ClapProcessor, e.g. laion/clap-htsat-unfused)."""
    folder = Path(folder)
    hint = (f"Put a local copy of a CLAP model (ClapModel.save_pretrained + ClapProcessor.save_pretrained, "
            f"e.g. laion/clap-htsat-unfused) into {folder}.")
    if not folder.is_dir():
        raise FoleyError(f"CLAP verifier: the folder {folder} does not exist. {hint}")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in CLAP_WEIGHT_FILES):
        missing.append(" or ".join(CLAP_WEIGHT_FILES))
    if not any((folder / name).is_file() for name in CLAP_PROCESSOR_FILES):
        missing.append(" or ".join(CLAP_PROCESSOR_FILES))
    if not any(all((folder / n).is_file() for n in group) for group in CLAP_TOKENIZER_FILES):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if missing:
        raise FoleyError(f"CLAP verifier: {folder} lacks {', '.join(missing)}. {hint}")


class ClapVerifier(Verifier):
    """Cosine similarity between CLAP's audio embedding and the text's (the prompt by default)."""

    name = "clap"

    def __init__(self, folder: Path, text: str = "", weight: float = 1.0, device: str = "cpu"):
        super().__init__(weight)
        check_clap_folder(folder)
        from transformers import ClapModel, ClapProcessor

        try:
            self.model = ClapModel.from_pretrained(str(folder), local_files_only=True).eval().to(device)
            self.processor = ClapProcessor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as error:
            raise FoleyError(f"CLAP verifier: could not load {folder}: {error}") from None
        self.folder, self.text, self.device = Path(folder), text, device
        self._text_cache: dict[str, "object"] = {}

    def _text_embedding(self, text: str):
        import torch

        if text not in self._text_cache:
            inputs = self.processor(text=[text], return_tensors="pt", padding=True)
            with torch.no_grad():
                emb = self.model.get_text_features(**{k: v.to(self.device) for k, v in inputs.items()})
            emb = getattr(emb, "pooler_output", emb)
            self._text_cache[text] = torch.nn.functional.normalize(emb.float(), dim=-1)
        return self._text_cache[text]

    def score(self, audio, sample_rate: int, context: Optional[VerifierContext] = None) -> np.ndarray:
        import torch

        context = context or VerifierContext()
        text = self.text or context.prompt
        if not text.strip():
            raise FoleyError("The CLAP verifier needs a text: set its text input or the prompt of "
                             "Foley Visual Encode.")
        rate = int(self.processor.feature_extractor.sampling_rate)
        clips = [mono_resampled(x, sample_rate, rate) for x in audio_items(audio)]
        inputs = self.processor(audio=clips, sampling_rate=rate, return_tensors="pt")
        with torch.no_grad():
            emb = self.model.get_audio_features(**{k: v.to(self.device) for k, v in inputs.items()})
        emb = torch.nn.functional.normalize(getattr(emb, "pooler_output", emb).float(), dim=-1)
        return (emb @ self._text_embedding(text).T)[:, 0].cpu().double().numpy()


# Wav2CLIP ---------------------------------------------------------------------------------------

class Wav2ClipVerifier(Verifier):
    """Cosine similarity between each candidate's Wav2CLIP audio embedding and the video's: the mean
    of the L2-normalised CLIP ViT-B/32 image embeddings of its frames (Wav2CLIP was trained to put
    a clip's audio on the mean CLIP embedding of its frames), renormalised.

    Left as a cosine in [−1, 1], like `clap`: both are similarities in a joint embedding space, so
    a weight means the same for either; a (1 + c)/2 map would only halve the weight's effect.
    Frames are embedded once, here (the CLIP is not kept); each `score` uses the frames before the
    clip's duration and embeds all candidates in one batch, each normalised on its own so a
    candidate's score does not depend on the others (`wav2clip.embed_audio`).
    """

    name = "wav2clip"
    batch = 16  # candidates per forward pass (bounds memory, not results)

    def __init__(self, audio_model, frame_embeddings, frame_times, weight: float = 1.0, notes=()):
        super().__init__(weight)
        import torch

        self.model = audio_model
        self.frames = torch.as_tensor(frame_embeddings, dtype=torch.float32).cpu()
        self.times = np.asarray(frame_times, dtype=np.float64).reshape(-1)
        if self.frames.ndim != 2 or self.frames.shape[0] == 0 or self.frames.shape[0] != self.times.size:
            raise FoleyError(f"The wav2clip verifier needs one embedding per frame time, got "
                             f"{tuple(self.frames.shape)} for {self.times.size} times.")
        self.notes = list(notes)

    @classmethod
    def from_files(cls, wav2clip_file, clip_file, frames, fps: float, weight: float = 1.0,
                   device="cpu") -> "Wav2ClipVerifier":
        """Wav2CLIP from `wav2clip_file`, the video's frame embeddings from the CLIP in `clip_file`
        (uint8 frames [T, 3, 224, 224] at `fps`)."""
        from ..models.wav2clip import frame_embeddings, load_clip_b32, load_wav2clip

        model = load_wav2clip(wav2clip_file, device)
        clip, notes = load_clip_b32(clip_file, device)
        embeddings, times = frame_embeddings(clip, frames, fps)
        return cls(model, embeddings, times, weight, notes)

    def video_embedding(self, duration_s: Optional[float] = None):
        """(512,) unit vector: the mean frame embedding over [0, duration_s) (all frames if None)."""
        import torch

        keep = self.times < duration_s if duration_s else np.ones(self.times.size, bool)
        keep[0] = True  # at least the first frame
        mean = self.frames[torch.from_numpy(keep)].mean(dim=0)
        return torch.nn.functional.normalize(mean, dim=0)

    def score(self, audio, sample_rate: int, context: Optional[VerifierContext] = None) -> np.ndarray:
        import torch

        from ..models.wav2clip import MIN_AUDIO_SAMPLES, SAMPLE_RATE, embed_audio, to_16k

        context = context or VerifierContext()
        waves = [to_16k(x, sample_rate) for x in audio_items(audio)]
        if not waves:
            return np.zeros(0)
        if context.duration_s:
            waves = [w[: int(round(SAMPLE_RATE * context.duration_s))] for w in waves]
        if min(w.size for w in waves) < MIN_AUDIO_SAMPLES:
            raise FoleyError(f"The wav2clip verifier needs at least {MIN_AUDIO_SAMPLES / SAMPLE_RATE:g} s of audio.")
        batch = torch.from_numpy(np.stack(waves))
        emb = torch.cat([embed_audio(self.model, chunk).cpu() for chunk in batch.split(self.batch)])
        return (emb @ self.video_embedding(context.duration_s)).double().numpy()


def not_implemented(kind: str) -> FoleyError:
    return FoleyError(f"Verifier '{kind}' is not implemented: {NOT_IMPLEMENTED[kind]} Use envelope, timbre, "
                      "motion_onsets, clap, synchformer_desync or wav2clip instead.")
