"""Read model files the way users have them: official `.pth`/`.pt` pickles and `.safetensors`.

Pickles are always loaded with `weights_only=True` (no arbitrary code runs). Nothing here touches
the network: files come from local folders only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError

PICKLE_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt"}
SAFETENSORS_SUFFIXES = {".safetensors", ".sft"}
# Containers some official files use around the state dict (BigVGAN: {"generator": ...}).
WRAPPER_KEYS = ("generator", "state_dict", "model", "module", "net")


def read_state_dict(path: str | Path, slot: str = "model") -> dict[str, torch.Tensor]:
    """A flat {name: tensor} dict from a checkpoint file, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{slot}: file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix in SAFETENSORS_SUFFIXES:
            from safetensors.torch import load_file

            data = load_file(str(path), device="cpu")
        elif suffix in PICKLE_SUFFIXES:
            data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        else:
            raise CheckpointError(
                f"{slot}: {path.name} has an unsupported extension {suffix!r}; expected one of "
                f"{sorted(SAFETENSORS_SUFFIXES | PICKLE_SUFFIXES)}.")
    except CheckpointError:
        raise
    except Exception as error:  # corrupt file, truncated download, non-weights pickle
        raise CheckpointError(
            f"{slot}: could not read {path.name} as a weights file ({type(error).__name__}: "
            f"{str(error)[:300]}). Re-download it; only plain state dicts load (weights_only).") from error
    return unwrap_state_dict(data, slot, path.name)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a .safetensors file ({} for other formats)."""
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def unwrap_state_dict(data, slot: str = "model", name: str = "checkpoint") -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(data, dict) and not _is_tensor_dict(data):
            inner = next((data[k] for k in WRAPPER_KEYS if isinstance(data.get(k), dict)), None)
            if inner is None:
                break
            data = inner
    if not isinstance(data, dict) or not _is_tensor_dict(data):
        raise CheckpointError(f"{slot}: {name} does not contain a state dict of tensors.")
    return data


def _is_tensor_dict(data: dict) -> bool:
    return bool(data) and all(isinstance(v, torch.Tensor) for v in data.values())


def describe_key_mismatch(missing, unexpected, limit: int = 8) -> str:
    """'missing 3 keys (a, b, c); unexpected 2 keys (x, y)' with at most `limit` names each."""
    parts = []
    for label, keys in (("missing", sorted(missing)), ("unexpected", sorted(unexpected))):
        if keys:
            shown = ", ".join(keys[:limit]) + (", …" if len(keys) > limit else "")
            parts.append(f"{label} {len(keys)} keys ({shown})")
    return "; ".join(parts)


# Keys that identify each kind of model file (first match wins), for messages like
# "this is a VAE file, but it was picked in the flow-network slot".
_KIND_MARKERS = (
    ("flow network", ("audio_input_proj.0.weight",)),
    ("VAE", ("decoder.conv_in.weight", "vae.decoder.conv_in.weight")),
    ("vocoder", ("conv_pre.weight", "conv_pre.weight_v", "conv_pre.parametrizations.weight.original1")),
    ("Synchformer", ("vfeat_extractor.patch_embed_3d.proj.weight", "patch_embed_3d.proj.weight")),
    ("CLIP", ("visual.conv1.weight", "token_embedding.weight")),
)


def guess_checkpoint_kind(state_dict) -> str:
    """'flow network', 'VAE', 'vocoder', 'Synchformer', 'CLIP' or 'unknown model'."""
    keys = set(state_dict)
    for kind, markers in _KIND_MARKERS:
        if any(marker in keys for marker in markers):
            return kind
    if any(key.startswith("vfeat_extractor.") for key in keys):
        return "Synchformer"
    return "unknown model"


def require_kind(state_dict, expected: str, slot: str, file_name: str) -> None:
    """Raise a clear CheckpointError when a file of another kind was picked for this slot."""
    kind = guess_checkpoint_kind(state_dict)
    if kind != expected:
        raise CheckpointError(
            f"{slot}: {file_name} is not a {expected} checkpoint (it looks like a {kind} file). "
            f"Pick the {expected} file for this slot.")
