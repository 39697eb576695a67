#!/usr/bin/env bash
# The main job: run the shipped video_to_audio workflow through a real ComfyUI host and write an
# mp4 with sound to a folder it prints. Installs everything it needs first (scripts/bootstrap.sh).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$(bash "$repo/scripts/bootstrap.sh")"
exec "$FOLEY_VENV/bin/python" "$repo/scripts/demo.py" --comfy-dir "$FOLEY_COMFYUI_DIR" "$@"
