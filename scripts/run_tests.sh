#!/usr/bin/env bash
# Run the whole test suite (unit tests of the core + integration tests through a real ComfyUI
# host). Installs everything it needs first (scripts/bootstrap.sh). Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$(bash "$repo/scripts/bootstrap.sh")"
cd "$repo"
exec "$FOLEY_VENV/bin/python" -m pytest -c tests/pytest.ini "$@"
