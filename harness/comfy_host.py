"""A real ComfyUI server in a private working folder, driven over its HTTP API.

The server is the real host (its own `folder_paths`, `comfy.*`, executor and web server). Each
`ComfyHost` gets its own input/output/temp/models folders and a `custom_nodes` folder holding only
a link to this plugin, declared through an `extra_model_paths.yaml` — the same mechanism users
have — so runs never touch the user's folders. The server is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1]
PLUGIN_LINK_NAME = "foley_imitator"


class PromptRejected(RuntimeError):
    """POST /prompt refused the graph (validation error); `details` is the server's JSON."""

    def __init__(self, details: dict):
        self.details = details
        super().__init__(json.dumps(details)[:2000])


@dataclass
class PromptResult:
    prompt_id: str
    status: str  # "success" or "error"
    outputs: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)

    @property
    def error_message(self) -> str:
        """The exception message of the failed node ('' when the prompt succeeded)."""
        for event, data in self.messages:
            if event == "execution_error":
                return f"{data.get('exception_type', '')}: {data.get('exception_message', '')}"
        return ""

    def files(self, kind: str | None = None) -> list[dict]:
        """Every file entry ({filename, subfolder, type}) listed in the node outputs."""
        found = []
        for node_output in self.outputs.values():
            for key, entries in node_output.items():
                if kind is not None and key != kind:
                    continue
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, dict) and "filename" in entry:
                        found.append(entry)
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyHost:
    def __init__(self, comfy_dir: Path, work_dir: Path, python: str = sys.executable,
                 extra_args: tuple[str, ...] = ()):
        self.comfy_dir = Path(comfy_dir).resolve()
        self.work_dir = Path(work_dir).resolve()
        self.python = python
        self.extra_args = tuple(extra_args)
        self.port = None
        self.process = None
        self.input_dir = self.work_dir / "input"
        self.output_dir = self.work_dir / "output"
        self.temp_dir = self.work_dir / "temp"
        self.models_dir = self.work_dir / "models"
        self.log_path = self.work_dir / "server.log"
        self.pid_path = self.work_dir / "server.pid"

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare_folders(self) -> Path:
        """Create the private folders and the plugin link; returns the extra_model_paths.yaml."""
        for folder in (self.input_dir, self.output_dir, self.temp_dir, self.models_dir / "mmaudio",
                       self.models_dir / "foley_style", self.models_dir / "foley_adapters",
                       self.models_dir / "foley_rms_mapper", self.models_dir / "foley_optical_flow",
                       self.models_dir / "foley_controlnet", self.models_dir / "foley_prompt_channels",
                       self.models_dir / "foley_layout_adapters"):
            folder.mkdir(parents=True, exist_ok=True)
        (self.models_dir / "foley_layout_predictor").mkdir(parents=True, exist_ok=True)
        (self.models_dir / "wav2clip").mkdir(parents=True, exist_ok=True)
        nodes_dir = self.work_dir / "custom_nodes"
        nodes_dir.mkdir(parents=True, exist_ok=True)
        link = nodes_dir / PLUGIN_LINK_NAME
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(PLUGIN_DIR, target_is_directory=True)
        config = self.work_dir / "extra_model_paths.yaml"
        config.write_text(
            "foley_test_host:\n"
            f"  base_path: {json.dumps(str(self.work_dir))}\n"
            "  custom_nodes: custom_nodes\n"
            "  mmaudio: models/mmaudio\n"
            "  foley_style: models/foley_style\n"
            "  foley_adapters: models/foley_adapters\n"
            "  foley_rms_mapper: models/foley_rms_mapper\n"
            "  foley_optical_flow: models/foley_optical_flow\n"
            "  foley_controlnet: models/foley_controlnet\n"
            "  foley_prompt_channels: models/foley_prompt_channels\n"
            "  foley_layout_predictor: models/foley_layout_predictor\n"
            "  foley_layout_adapters: models/foley_layout_adapters\n"
            "  wav2clip: models/wav2clip\n"
        )
        return config

    def start(self, timeout: float = 180.0) -> "ComfyHost":
        config = self.prepare_folders()
        self.port = free_port()
        command = [
            self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--disable-auto-launch", "--extra-model-paths-config", str(config),
            "--input-directory", str(self.input_dir), "--output-directory", str(self.output_dir),
            "--temp-directory", str(self.temp_dir), *self.extra_args,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, cwd=self.comfy_dir, stdout=log,
                                        stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        log.close()
        self.pid_path.write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited during start-up:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        self.pid_path.unlink(missing_ok=True)
        self.process = None

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, n_chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- HTTP --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, path: str, body: dict | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get_json(self, path: str):
        status, payload = self.request(path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {payload[:500]!r}")
        return json.loads(payload)

    def object_info(self) -> dict:
        return self.get_json("/object_info")

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
        status, payload = self.request(f"/view?{query}")
        if status != 200:
            raise RuntimeError(f"/view {filename!r} -> {status}")
        return payload

    def queue(self, prompt: dict) -> str:
        status, payload = self.request("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
        details = json.loads(payload or b"{}")
        if status != 200:
            raise PromptRejected(details)
        return details["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600.0) -> PromptResult:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get_json(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and (entry.get("status") or {}).get("completed") is not None:
                status = entry.get("status") or {}
                if status.get("status_str") in ("success", "error"):
                    return PromptResult(prompt_id, status["status_str"], entry.get("outputs", {}),
                                        status.get("messages", []))
            if not self.is_alive():
                raise RuntimeError(f"ComfyUI died while running a prompt:\n{self.log_tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")

    def run(self, prompt: dict, timeout: float = 600.0) -> PromptResult:
        return self.wait(self.queue(prompt), timeout)

    def interrupt(self) -> None:
        self.request("/interrupt", {})
