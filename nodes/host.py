"""What the nodes need from the ComfyUI host, in one place, for old (2024) and current hosts.

Current hosts have a core `VIDEO` type (`comfy_api` VideoInput objects); 2024 hosts do not. The
plugin declares VIDEO inputs/outputs only where the host can make and read them.
"""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths

try:  # current hosts (ComfyUI ≥ 0.3.3x)
    from comfy_api.input_impl import VideoFromFile as _VideoFromFile
except Exception:  # 2024 hosts: no core VIDEO type
    _VideoFromFile = None

HAS_CORE_VIDEO = _VideoFromFile is not None
CATEGORY = "Foley Imitator"

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif", ".mpg", ".mpeg")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif")


def input_files(extensions: tuple[str, ...]) -> list[str]:
    """Files in the host's input folder (subfolders included) with one of these extensions."""
    root = Path(folder_paths.get_input_directory())
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.suffix.lower() in extensions:
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def resolve_input_file(name: str, what: str) -> Path:
    """The path of an input-folder file picked in a combo, refusing anything outside that folder."""
    from ..foley_core.errors import MediaError

    if not isinstance(name, str) or not name.strip():
        raise MediaError(f"No {what} file selected: upload one or pick a file from the list.")
    root = Path(folder_paths.get_input_directory()).resolve()
    if "\x00" in name or os.path.isabs(name) or ".." in Path(name.replace("\\", "/")).parts:
        raise MediaError(
            f"The {what} file name {name!r} points outside ComfyUI's input folder; only files "
            f"inside {root} can be used. Upload the file and pick it from the list.")
    path = (root / name).resolve()
    if root not in path.parents:
        raise MediaError(f"The {what} file {name!r} resolves outside ComfyUI's input folder.")
    if not path.is_file():
        raise MediaError(f"The {what} file {name!r} was not found in ComfyUI's input folder "
                         f"({root}). Upload it or pick another file.")
    return path


def core_video_from_file(path: Path):
    """A core VIDEO object for a file, or None on hosts without that type."""
    return _VideoFromFile(str(path)) if HAS_CORE_VIDEO else None


def core_video_source(video) -> tuple[str | None, object]:
    """For a core VIDEO input: (path of its file if it is file-backed, the object itself)."""
    for attribute in ("get_stream_source",):
        getter = getattr(video, attribute, None)
        if callable(getter):
            source = getter()
            if isinstance(source, (str, os.PathLike)):
                return str(source), video
    return None, video


def progress_reporter(total: int):
    """A callable(done, total, preview=None) that moves the node's progress bar and raises the
    host's interrupt exception as soon as the user presses Cancel."""
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(max(int(total), 1))

    def report(done: int, total_now: int | None = None, preview=None) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(int(done), None if total_now is None else max(int(total_now), 1), preview)

    return report


def file_fingerprint(path: Path) -> str:
    """Changes whenever the file's content is likely to have changed (for IS_CHANGED)."""
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
