"""safe_output_file: untrusted prefixes stay inside the output folder and never overwrite."""

from __future__ import annotations

import os
import threading

import pytest

from foley_core.errors import MediaError
from foley_core.media.output_paths import safe_output_file


def _inside(path, root) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def test_plain_prefix_gets_first_free_counter(tmp_path):
    first = safe_output_file(tmp_path, "foley", "mp4")
    second = safe_output_file(tmp_path, "foley", ".mp4")
    assert first.name == "foley_00001.mp4" and second.name == "foley_00002.mp4"
    assert first.exists() and first.stat().st_size == 0  # reserved, not yet written


def test_subfolder_is_created_inside_output(tmp_path):
    path = safe_output_file(tmp_path, "foley/run1", "mov")
    assert path == (tmp_path / "foley" / "run1_00001.mov").resolve()
    assert safe_output_file(tmp_path, "a\\b\\c", "mp4") == (tmp_path / "a" / "b" / "c_00001.mp4").resolve()


def test_existing_files_are_skipped_and_never_touched(tmp_path):
    (tmp_path / "x_00001.mp4").write_bytes(b"keep me")
    (tmp_path / "X_00002.MP4").write_bytes(b"other case")  # collides on case-insensitive disks
    path = safe_output_file(tmp_path, "x", "mp4")
    assert path.name == "x_00003.mp4"
    assert (tmp_path / "x_00001.mp4").read_bytes() == b"keep me"
    (tmp_path / "x_00001.mp4").unlink()
    assert safe_output_file(tmp_path, "x", "mp4").name == "x_00001.mp4"  # first free one


@pytest.mark.parametrize("prefix, fragment", [
    ("../x", r"'\.\.'"),
    ("a/../../b", r"'\.\.'"),
    ("..\\..\\x", r"'\.\.'"),
    ("/etc/passwd", "absolute"),
    ("\\\\server\\share\\x", "absolute"),
    ("C:\\x", "drive letter"),
    ("c:x", "drive letter"),
    ("ok\x00.mp4", "control"),
    ("line\nbreak", "control"),
    ("", "empty"),
    ("   ", "empty"),
    ("foley/", "no file name"),
    ("foley/.", "no file name"),
    ("a/.../b", "becomes empty"),
    ("x/...", "no file name"),
])
def test_malicious_or_empty_prefixes_are_rejected(tmp_path, prefix, fragment):
    outside_before = set(os.listdir(tmp_path.parent))
    with pytest.raises(MediaError, match=fragment):
        safe_output_file(tmp_path / "out", prefix, "mp4")
    assert set(os.listdir(tmp_path.parent)) == outside_before
    assert not any((tmp_path / "out").rglob("*.mp4"))


def test_unsafe_characters_and_device_names_are_neutralised(tmp_path):
    assert safe_output_file(tmp_path, 'a<b>c:d"e|f?g*h', "mp4").name == "a_b_c_d_e_f_g_h_00001.mp4"
    assert safe_output_file(tmp_path, "con", "mp4").name == "_con_00001.mp4"
    assert safe_output_file(tmp_path, "sub/LPT1.take", "mp4").name == "_LPT1.take_00001.mp4"
    assert safe_output_file(tmp_path, "dots. ", "mp4").name == "dots_00001.mp4"


def test_very_long_names_are_shortened_to_fit(tmp_path):
    path = safe_output_file(tmp_path, "é" * 400 + "/" + "x" * 1000, "mp4")
    assert all(len(part.encode()) <= 255 for part in path.relative_to(tmp_path.resolve()).parts)
    assert path.name.endswith("_00001.mp4") and _inside(path, tmp_path)


def test_symlinked_subfolder_escaping_is_rejected(tmp_path):
    root, outside = tmp_path / "out", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(MediaError, match="outside the output folder"):
        safe_output_file(root, "link/x", "mp4")
    assert list(outside.iterdir()) == []


def test_symlink_inside_output_is_allowed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    assert safe_output_file(tmp_path, "alias/x", "mp4").parent == (tmp_path / "real").resolve()


def test_dangling_symlink_at_candidate_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    root = tmp_path / "out"
    root.mkdir()
    (root / "x_00001.mp4").symlink_to(victim)  # would create victim.txt if followed
    path = safe_output_file(root, "x", "mp4")
    assert path.name == "x_00002.mp4" and not victim.exists()


def test_bad_extension_rejected(tmp_path):
    for ext in ["", "mp4/../../x", "m p4", "."]:
        with pytest.raises(MediaError, match="extension"):
            safe_output_file(tmp_path, "x", ext)


def test_concurrent_calls_get_distinct_files(tmp_path):
    results, lock = [], threading.Lock()

    def reserve():
        for _ in range(10):
            path = safe_output_file(tmp_path, "race", "mp4")
            with lock:
                results.append(path)

    threads = [threading.Thread(target=reserve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 40 and len(list(tmp_path.iterdir())) == 40
