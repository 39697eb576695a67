"""The file format shared by the trained add-ons (style adapter, prompt channel, envelope ControlNet,
RMS-Mapper): weights-only .safetensors with `kind`, `format_version`, `config` and `training` JSON
in the metadata. Each add-on module says in its own words *which* file it accepts and how to make
one; this module does the checks and steps that are the same for all of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import torch

from ..errors import CheckpointError
from .checkpoint_io import describe_key_mismatch, read_state_dict

ConfigT = TypeVar("ConfigT")


def _floating(state: dict) -> dict:
    # integer buffers (BatchNorm's batch counter) carry nothing a loaded model needs
    return {k: v for k, v in state.items() if v.dtype.is_floating_point}


def save_add_on(module: torch.nn.Module, path: str | Path, *, kind: str, format_version: int, label: str,
                training: Optional[dict] = None, dtype: torch.dtype = torch.float32,
                floating_only: bool = False) -> Path:
    """Write `module` (with `module.config.to_dict()`) atomically; `label` names it in the error."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ValueError(f"{path}: {label} is saved as .safetensors")
    state = module.state_dict()
    if floating_only:
        state = _floating(state)
    state = {k: v.detach().to(dtype).cpu().contiguous() for k, v in state.items()}
    metadata = {"kind": kind, "format_version": format_version,
                "config": json.dumps(module.config.to_dict(), sort_keys=True),
                "training": json.dumps(training or {}, sort_keys=True)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def read_add_on_metadata(path: str | Path, *, kind: str, label: str, noun: str, folder: str, made_by: str,
                         wrong_kind_hint: str, wrong_kind_detail: Optional[Callable[[Optional[str]], str]] = None
                         ) -> tuple[Path, dict]:
    """(path, metadata) of an existing .safetensors file whose metadata kind is `kind`, else a
    CheckpointError: `label` starts the messages ("Layout adapter"), `noun` names the expected kind
    (in "… is not a Foley layout adapter"), `folder` is its models folder, `made_by` says how such files are made
    and `wrong_kind_hint` where the file might belong instead (`wrong_kind_detail(kind)` may add a
    guess after the kinds)."""
    from .checkpoint_io import read_metadata

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{label} {path.name}: file {path} does not exist; put it into "
                              f"ComfyUI/models/{folder}/ and refresh.")
    if path.suffix.lower() not in (".safetensors", ".sft"):
        raise CheckpointError(f"{label} {path.name} is not a .safetensors file; {made_by}.")
    metadata = read_metadata(path)
    found = metadata.get("kind")
    if found != kind:
        detail = wrong_kind_detail(found) if wrong_kind_detail else ""
        raise CheckpointError(f"{path.name} is not a Foley {noun} (metadata kind {found!r}, expected "
                              f"{kind!r}{detail}); {wrong_kind_hint}.")
    return path, metadata


def parse_config(metadata: dict, from_dict: Callable[[dict], ConfigT], label: str, path: Path) -> ConfigT:
    try:
        return from_dict(json.loads(metadata["config"]))
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{label} {path.name} has no usable config in its metadata ({error}); "
                              "re-export it.") from error


def load_matching_weights(module: torch.nn.Module, path: Path, label: str, *, slot: Optional[str] = None,
                          floating_only: bool = False) -> None:
    """Load the file's weights into `module` (eval, frozen) after checking keys and shapes."""
    state = read_state_dict(path, slot or label)
    expected = module.state_dict()
    if floating_only:
        expected = _floating(expected)
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    wrong = [k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        detail = describe_key_mismatch(missing, unexpected)
        if wrong:
            detail += ("; " if detail else "") + "wrong shapes: " + ", ".join(sorted(wrong)[:8])
        raise CheckpointError(f"{label} {path.name}: the weights do not match its config ({detail}); "
                              "the file is damaged or was edited — re-export it.")
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=not floating_only)
    module.eval().requires_grad_(False)


def add_on_summary(config, metadata: dict) -> dict[str, Any]:
    """{"config", "training"} as the loaders return it (a broken training summary reads as {})."""
    try:
        training = json.loads(metadata.get("training", "{}"))
    except ValueError:
        training = {}
    return {"config": config.to_dict(), "training": training}
