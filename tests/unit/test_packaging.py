"""The plugin's packaging promises: PEP 508 dependencies, a [tool.comfy] section, no torch pin."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def test_pyproject_dependencies_are_pep508_and_comfy_section_is_complete():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = [Requirement(r) for r in data["project"]["dependencies"]]
    assert {r.name.lower() for r in requirements} >= {"av", "safetensors", "open_clip_torch"}
    comfy = data["tool"]["comfy"]
    for key in ("PublisherId", "DisplayName", "requires-comfyui"):
        assert comfy[key], key


def test_requirements_do_not_pin_the_hosts_torch():
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name = Requirement(line).name.lower()
            assert name not in {"torch", "torchvision", "torchaudio"}, line


def test_plugin_package_exports_what_comfyui_reads():
    source = (REPO / "__init__.py").read_text()
    for name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"):
        assert re.search(rf"^{name}\b|\b{name}\b.*import|import.*\b{name}\b", source, re.M), name
