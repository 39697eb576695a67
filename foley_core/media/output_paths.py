"""Safe output file names: a user-typed prefix can pick a subfolder but never escape the folder.

`filename_prefix` comes from a widget or an API client, so it is untrusted text. It may name a
subfolder ("foley/run1", like the host's SaveImage), but absolute paths, drive letters, `..`,
control characters and symlinks that lead outside the output folder are refused. Existing files
are never overwritten: each call reserves a new `<prefix>_<counter>.<ext>` with O_EXCL.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import MediaError

# Characters that are illegal or troublesome in file names on Windows, macOS or Linux.
_UNSAFE_CHARS = re.compile(r'[<>:"|?*]')
# Windows device names: "con.mp4" opens the console there, so such names get a leading "_".
_RESERVED_NAMES = {"con", "prn", "aux", "nul"} | {f"{d}{i}" for d in ("com", "lpt") for i in range(1, 10)}
# File-system limit is 255 bytes per name; keep room for "_00001" and the extension.
MAX_COMPONENT_BYTES = 200
COUNTER_DIGITS = 5
MAX_COUNTER = 10**7  # give up long before a directory listing becomes absurd


def _reject(prefix: str, problem: str) -> MediaError:
    return MediaError(
        f"Output filename prefix {prefix!r} {problem}. Use a relative name such as "
        "'foley/run1' (a subfolder of the output folder and a file name)."
    )


def _truncate_bytes(text: str, max_bytes: int) -> str:
    """Cut `text` to at most `max_bytes` UTF-8 bytes without splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def _clean_component(component: str) -> str:
    """Make one path component safe as a file or folder name on every platform."""
    name = _UNSAFE_CHARS.sub("_", component)
    # Windows drops trailing dots and spaces, which would make two names collide.
    name = name.rstrip(" .").strip()
    name = _truncate_bytes(name, MAX_COMPONENT_BYTES).rstrip(" .")
    if name.split(".")[0].lower() in _RESERVED_NAMES:
        name = "_" + name
    return name


def split_prefix(filename_prefix: str) -> tuple[list[str], str]:
    """Validate the prefix and return (subfolder components, file stem), all cleaned.

    Raises MediaError for absolute paths, drive letters, '..', control characters or an
    empty file name.
    """
    if not isinstance(filename_prefix, str):
        raise MediaError(f"Output filename prefix must be text, got {type(filename_prefix).__name__}.")
    prefix = filename_prefix.strip()
    if not prefix:
        raise _reject(filename_prefix, "is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in prefix):
        raise _reject(filename_prefix, "contains control characters (NUL, newline, ...)")
    if prefix.startswith(("/", "\\")) or os.path.isabs(prefix):
        raise _reject(filename_prefix, "is an absolute path")
    if re.match(r"^[A-Za-z]:", prefix):
        raise _reject(filename_prefix, "starts with a drive letter")
    # Both separators count: a prefix typed on Windows must behave the same on Linux.
    raw_parts = re.split(r"[\\/]+", prefix)
    if any(part.strip() == ".." for part in raw_parts):
        raise _reject(filename_prefix, "contains '..' (a parent-folder step)")
    parts = [_clean_component(p) for p in raw_parts if p.strip() not in ("", ".")]
    if not parts or not parts[-1] or raw_parts[-1].strip() in ("", "."):
        raise _reject(filename_prefix, "has no file name after the last '/'")
    if any(not p for p in parts):
        raise _reject(filename_prefix, "has a folder name that becomes empty once made safe (such as '...')")
    return parts[:-1], parts[-1]


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _clean_extension(extension: str) -> str:
    ext = str(extension).lstrip(".")
    if not ext or not re.fullmatch(r"[A-Za-z0-9]{1,10}", ext):
        raise MediaError(f"Output extension {extension!r} is not a plain extension such as 'mp4'.")
    return ext


def safe_output_file(output_dir, filename_prefix: str, extension: str) -> Path:
    """Reserve and return a new, empty file `<output_dir>/<sub>/<stem>_<NNNNN>.<ext>`.

    The counter is the first one not taken; the file is created with O_EXCL so two concurrent
    calls never get the same name, and an existing file is never overwritten. The resolved path
    (symlinks followed) is checked to be inside `output_dir`. The caller writes the real content
    over this empty placeholder (mux_audio does so atomically).
    """
    subfolders, stem = split_prefix(filename_prefix)
    ext = _clean_extension(extension)
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve(strict=True)

    folder = root
    for part in subfolders:
        folder = folder / part
        # Check each level before creating the next, so a symlinked subfolder pointing
        # elsewhere is caught before anything is written through it.
        if folder.exists() or folder.is_symlink():
            resolved = folder.resolve()
            if not _is_inside(resolved, root):
                raise _reject(filename_prefix, f"leads outside the output folder (through "
                              f"{folder.name!r}, a link to {resolved})")
            if not resolved.is_dir():
                raise _reject(filename_prefix, f"uses {folder.name!r} as a folder, but it is a file")
        else:
            folder.mkdir()
    folder = folder.resolve(strict=True)
    if not _is_inside(folder, root):
        raise _reject(filename_prefix, "leads outside the output folder")

    taken = {entry.lower() for entry in os.listdir(folder)}
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for counter in range(1, MAX_COUNTER):
        name = f"{stem}_{counter:0{COUNTER_DIGITS}d}.{ext}"
        if name.lower() in taken:  # lower(): case-insensitive file systems collide too
            continue
        candidate = folder / name
        try:
            fd = os.open(candidate, flags, 0o644)
        except FileExistsError:
            continue  # created by someone else since the listing; try the next counter
        os.close(fd)
        resolved = candidate.resolve(strict=True)
        if not _is_inside(resolved, root):  # defence in depth: never hand out an outside path
            candidate.unlink()
            raise _reject(filename_prefix, "leads outside the output folder")
        return resolved
    raise MediaError(
        f"Output folder {folder} already holds {MAX_COUNTER - 1} files named {stem}_*.{ext}; "
        "choose another filename prefix."
    )
