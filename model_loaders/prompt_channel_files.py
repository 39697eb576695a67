"""Prompt channels (FOLEY_PROMPT_CHANNEL) from models/foley_prompt_channels, or the embedded one.

Weights-only .safetensors written by `python -m foley_core.training train-prompt-channel`; the
metadata says what it is (kind "foley_prompt_channel") and which backbone it was trained against.
A missing or foreign file is an error, never a silent stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folder_paths

from ..foley_core.errors import CheckpointError
from ..foley_core.models.prompt_channel import MODES, PromptChannel, describe, load_channel
from . import embedded, folders

SLOT = "Prompt channel"
EMBEDDED_KEY = "prompt_channel"  # manifest "files" entry of the embedded channel


@dataclass
class FoleyPromptChannel:
    """FOLEY_PROMPT_CHANNEL: a loaded prompt channel (tiny; kept on the CPU) and how to use it."""

    channel: PromptChannel
    file_name: str
    mode: str = MODES[0]  # "channel+replacement" or "channel only"
    metadata: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.file_name} ({self.mode}): {describe(self.channel)}"


def choices() -> list[str]:
    return embedded.choices(EMBEDDED_KEY) + folders.model_files(folders.PROMPT_CHANNEL_FOLDER)


def locate(name: str) -> Path:
    """The channel file for a combo value: "(embedded) <file>" or a file in models/foley_prompt_channels."""
    if isinstance(name, str) and name.startswith(embedded.EMBEDDED_PREFIX):
        return embedded.locate(name, EMBEDDED_KEY, SLOT)[0]
    if not isinstance(name, str) or name not in folder_paths.get_filename_list(folders.PROMPT_CHANNEL_FOLDER):
        # No silent stand-in: a channel changes the sound, so a missing one is an error.
        embedded_choice = embedded.choices(EMBEDDED_KEY)
        hint = f" (or pick {embedded_choice[0]!r}, made for the embedded flow network)" if embedded_choice else ""
        raise CheckpointError(
            f"{SLOT}: {name!r} is not installed. Put the channel (.safetensors from `python -m "
            f"foley_core.training train-prompt-channel`) into ComfyUI/models/{folders.PROMPT_CHANNEL_FOLDER}/ "
            f"and refresh, or pick another channel{hint}.")
    return folders.resolve(name, SLOT, folders.PROMPT_CHANNEL_FOLDER)


def load_prompt_channel(name: str, mode: str = MODES[0]) -> FoleyPromptChannel:
    if mode not in MODES:
        raise CheckpointError(f"{SLOT}: mode must be one of {', '.join(MODES)}, got {mode!r}.")
    path = locate(name)
    channel, metadata = load_channel(path)
    return FoleyPromptChannel(channel, path.name, mode, metadata)
