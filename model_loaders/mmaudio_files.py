"""Find MMAudio model files in models/mmaudio (or the embedded set), build them with the core's
builders, and wrap them in ModelPatchers for the host."""

from __future__ import annotations

from ..foley_core.errors import CheckpointError
from ..foley_core.models import builders
from . import devices, embedded, folders
from .handles import FoleyCodec, FoleyEncoders, FoleyModel, FoleyStyleEncoders

# The vocoder choice that needs no file (see foley_core/models/griffin_lim.py).
GRIFFIN_LIM = "(built-in) Griffin-Lim, no weights"


def load_flow_model(name: str, dtype_choice: str = "auto") -> FoleyModel:
    path, note = embedded.locate(name, "network", "Flow network")
    dtype = devices.compute_dtype(dtype_choice)
    built = builders.build_network(path, dtype)
    return FoleyModel(devices.wrap(built.network), built.variant, built.mode, dtype, path.name, note,
                      built.trained_window_s)


def load_encoders(clip_name: str, synchformer_name: str, dtype_choice: str = "auto") -> FoleyEncoders:
    dtype = devices.compute_dtype(dtype_choice)
    clip_path, clip_note = embedded.locate(clip_name, "clip", "CLIP")
    sync_path, sync_note = embedded.locate(synchformer_name, "synchformer", "Synchformer")
    clip = builders.build_clip(clip_path, dtype)
    synchformer = builders.build_synchformer(sync_path, dtype)
    notes = " ".join(n for n in (clip_note, sync_note) if n)
    return FoleyEncoders(devices.wrap(clip), devices.wrap(synchformer), dtype,
                         (clip_path.name, sync_path.name), notes)


def load_codec(vae_name: str, vocoder_name: str, dtype_choice: str = "auto") -> FoleyCodec:
    dtype = devices.compute_dtype(dtype_choice)
    vae_path, vae_note = embedded.locate(vae_name, "vae", "VAE")
    vae = builders.build_vae(vae_path, dtype)
    mode = vae.cfg.mode
    if vocoder_name == GRIFFIN_LIM:
        vocoder_path, vocoder_note = None, ""
    else:
        vocoder_path, vocoder_note = embedded.locate(vocoder_name, "vocoder", "Vocoder")
    vocoder = builders.build_vocoder(vocoder_path, mode, dtype, vae_name=vae_path.name)
    sample_rate, hop = builders.codec_rates(mode)
    notes = " ".join(n for n in (vae_note, vocoder_note) if n)
    return FoleyCodec(devices.wrap(vae), devices.wrap(vocoder), mode, sample_rate, hop,
                      vae.cfg.embed_dim, dtype,
                      (vae_path.name, vocoder_path.name if vocoder_path else GRIFFIN_LIM), notes)


NONE = "none"


def load_style_encoders(timbre_name: str, tempo_name: str, mert_name: str) -> FoleyStyleEncoders:
    """Each slot may be "none"; the rest are read from models/foley_style (fp32: small models)."""

    def build(name, slot, builder):
        if name == NONE:
            return None
        return devices.wrap(builder(folders.resolve(name, slot, folders.STYLE_FOLDER)))

    timbre = build(timbre_name, "Timbre encoder (BEATs)", builders.build_beats)
    tempo = build(tempo_name, "Tempo encoder (style conditioner)", builders.build_style_conditioner)
    mert = build(mert_name, "MERT", builders.build_mert)
    if tempo is not None and mert is None:
        raise CheckpointError("The tempo encoder needs MERT-v1-95M's weights too (its frozen audio "
                              "features): put them into models/foley_style and pick them.")
    return FoleyStyleEncoders(timbre, tempo, mert, (timbre_name, tempo_name, mert_name))
