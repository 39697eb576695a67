"""Convert UI-format workflow JSON (what users save and share) to API-format prompts.

The host's `/object_info` says which inputs of a node are widgets and in what order, so the
positional `widgets_values` of a UI node can be mapped to named inputs. The UI stores one extra
value after a seed widget ("fixed"/"randomize"…) and after an upload combo ("image"/"video"…);
those are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
UPLOAD_FLAGS = {"image_upload": "image", "video_upload": "video", "audio_upload": "audio"}
UI_ONLY_NODES = {"Note", "MarkdownNote"}


def _input_specs(node_info: dict) -> list[tuple[str, object, dict]]:
    """(name, type, options) of every required and optional input, in the node's own order."""
    specs = []
    for section in ("required", "optional"):
        entries = node_info["input"].get(section, {})
        order = node_info.get("input_order", {}).get(section, list(entries))
        for name in order:
            spec = entries[name]
            kind = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs.append((name, kind, options))
    return specs


def _is_widget(kind) -> bool:
    return isinstance(kind, list) or kind in WIDGET_TYPES


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        class_type = node["type"]
        if class_type in UI_ONLY_NODES:
            continue
        if class_type not in object_info:
            raise KeyError(f"node {node['id']}: class {class_type!r} is not installed on this host")
        linked = {}
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                link = links[entry["link"]]
                linked[entry["name"]] = [str(link[1]), link[2]]
        values = list(node.get("widgets_values") or [])
        inputs = {}
        for name, kind, options in _input_specs(object_info[class_type]):
            if _is_widget(kind):
                value = values.pop(0) if values else None
                if kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed")):
                    if values and values[0] in SEED_CONTROL_VALUES:
                        values.pop(0)
                for flag, marker in UPLOAD_FLAGS.items():
                    if options.get(flag) and values and values[0] == marker:
                        values.pop(0)
                if name in linked:
                    inputs[name] = linked[name]
                elif value is not None:
                    inputs[name] = value
            elif name in linked:
                inputs[name] = linked[name]
        prompt[str(node["id"])] = {"class_type": class_type, "inputs": inputs}
    return prompt


def load_workflow(path: Path) -> dict:
    return json.loads(Path(path).read_text())
