"""pytest imports test files by basename (rootdir import mode, no packages): a file name used in
both tests/unit and tests/host makes the whole run stop at collection."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_file_name_is_used_twice():
    unit = {p.name for p in (TESTS / "unit").glob("test_*.py")}
    host = {p.name for p in (TESTS / "host").glob("test_*.py")}
    assert not unit & host, f"rename one of each pair: {sorted(unit & host)}"
