#!/usr/bin/env bash
# Run the whole test suite (unit tests of the core + integration tests through a real ComfyUI
# host). Installs everything it needs first (scripts/bootstrap.sh). Extra arguments go to pytest;
# test paths are relative to tests/ (e.g. `scripts/run_tests.sh unit/test_mel.py`).
# pytest runs from tests/ so that the repository root — the plugin package, whose __init__.py
# imports the ComfyUI host — is never collected as a test package.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$(bash "$repo/scripts/bootstrap.sh")"
cd "$repo/tests"
exec "$FOLEY_VENV/bin/python" -m pytest "$@"
