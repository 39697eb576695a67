"""What the add-on host tests do to a shipped API prompt, and how they read back the sound it made."""

from __future__ import annotations

import numpy as np

from media_files import decoded_audio
from test_workflows import mp4_entry

MODEL_FILE_ENDINGS = (".pth", ".safetensors", ".pt")


def node_of(prompt: dict, class_type: str) -> str:
    """The id of the prompt's one node of this class."""
    (node_id,) = [k for k, v in prompt.items() if v["class_type"] == class_type]
    return node_id


def plug(prompt: dict, into: str, input_name: str, node_id: str, class_type: str, inputs: dict) -> dict:
    """Add a node and connect its first output to `input_name` of node `into`."""
    prompt[node_id] = {"class_type": class_type, "inputs": inputs}
    prompt[into]["inputs"][input_name] = [node_id, 0]
    return prompt


def with_models_not_installed(prompt: dict) -> dict:
    """Point every model slot at a file that is not installed, so the loaders fall back to the
    embedded set (what a user without the official weights gets)."""
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if isinstance(value, str) and value.endswith(MODEL_FILE_ENDINGS):
                node["inputs"][name] = f"not_installed_{value.replace('/', '_')}"
    return prompt


def soundtrack(host, prompt: dict, timeout: int = 600) -> np.ndarray:
    """Run the prompt and decode the audio of the video its Foley Mux wrote ([channels, samples])."""
    result = host.run(prompt, timeout=timeout)
    assert result.status == "success", result.error_message + host.log_tail(3000)
    samples, _, _ = decoded_audio(mp4_entry(host, result, node_of(prompt, "FoleyMux")))
    return samples
