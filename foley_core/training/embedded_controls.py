"""The embedded set's control stages (issue #4): what makes the embedded set follow the video.

The bare flow network does not place sounds within 0.1 s (docs/embedded_sync.md); the pipeline
video → RMS-Mapper → envelope → envelope ControlNet on that network does. These stages train both
with the same engine and functions as the commands in docs/training.md, after the recipe's flow
network (embedded_recipe.py):

1. envelopes of the training features (controlnet.extract_envelopes) → FEATURES/envelopes.safetensors
2. RMS-Mapper: features of the training clips, training, export (rms_mapper_trainer.py)
3. envelope ControlNet against the set's flow network (frozen), export (controlnet.py)

Each writes its file into the model folder and its entry into manifest.json, in the layout
model_loaders/ and evaluation.synthetic_benchmark.load_model_set read. Work products (mapper
features, runs) stay in the work folder, so the stages can be re-run on their own.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .controlnet import ENVELOPES_NAME, ControlNetTrainConfig, export_controlnet, extract_envelopes, \
    train_controlnet
from .driver import LOG_NAME
from .rms_mapper_trainer import FEATURES_NAME as MAPPER_FEATURES_NAME
from .rms_mapper_trainer import MapperTrainConfig, export_mapper, train_mapper
from .rms_mapper_trainer import extract_features as extract_mapper_features

CONTROL_FILES = {"rms_mapper": "foley_embedded_rms_mapper.safetensors",
                 "controlnet": "foley_envelope_controlnet_16k.safetensors"}
CONTROL_LOGS = {"rms_mapper": "rms_mapper_training_log.jsonl", "controlnet": "controlnet_training_log.jsonl"}


@dataclass
class ControlSettings:
    """Sizes of the control stages. A fixed count (epochs / steps) reproduces a set exactly; with
    0 the count is sized to the minute budget from a short timing probe on this machine."""

    mapper_epochs: int = 0
    mapper_minutes: float = 15.0
    mapper_batch_size: int = 32
    mapper_val_clips: int = 24
    controlnet_steps: int = 0
    controlnet_minutes: float = 30.0
    controlnet_batch_size: int = 12
    controlnet_lr: float = 5e-4
    seed: int = 0
    device: str = "cpu"


def machine(device: str) -> str:
    """A short description of where a stage ran (quoted into the manifest)."""
    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    name = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"CPU {name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)"


def _log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _fresh(run: Path, config: dict, inputs: list[Path]) -> bool:
    """Resume `run` only when it was started with the same settings and its inputs are older than it;
    otherwise clear it (a rebuilt backbone or a new step count needs a new run)."""
    checkpoint, saved = run / "checkpoint.pt", run / "config.json"
    if checkpoint.is_file() and saved.is_file() and json.loads(saved.read_text()) == config \
            and all(p.stat().st_mtime <= saved.stat().st_mtime for p in inputs):
        return False
    shutil.rmtree(run, ignore_errors=True)
    return True


# ------------------------------------------------------------------------------ RMS-Mapper
def mapper_stage(clips: Path, work: Path, out: Path, duration: float, settings: ControlSettings,
                 log: Callable[[str], None]) -> dict:
    """Train the RMS-Mapper on the training clips; returns its manifest entry."""
    features = work / "mapper_features"
    started = time.monotonic()
    if not (features / MAPPER_FEATURES_NAME).is_file():
        log("RMS-Mapper: extracting the clips' motion features")
        extract_mapper_features(clips, features, duration_s=duration, report=log)
    extract_s = time.monotonic() - started

    def config(epochs: int) -> MapperTrainConfig:
        return MapperTrainConfig(epochs=epochs, batch_size=settings.mapper_batch_size,
                                 val_clips=settings.mapper_val_clips, seed=settings.seed,
                                 checkpoint_every=max(1, min(10, epochs)))

    epochs = settings.mapper_epochs
    if epochs <= 0:
        probe = work / "mapper_probe"
        shutil.rmtree(probe, ignore_errors=True)
        train_mapper(features, config(1), probe, device=settings.device, report=log)
        per_epoch = _log_lines(probe / LOG_NAME)[-1]["elapsed_s"]
        shutil.rmtree(probe, ignore_errors=True)
        epochs = max(1, int(settings.mapper_minutes * 60 / max(per_epoch, 1e-3)))
        log(f"RMS-Mapper: {per_epoch:.1f} s per epoch → {epochs} epochs")
    run = work / "mapper_run"
    chosen = config(epochs)
    resume = not _fresh(run, chosen.to_dict(), [features / MAPPER_FEATURES_NAME])
    log(f"RMS-Mapper: training {epochs} epochs")
    started = time.monotonic()
    train_mapper(features, chosen, run, resume=resume, device=settings.device, report=log)
    train_s = time.monotonic() - started
    exported = export_mapper(run, out / CONTROL_FILES["rms_mapper"])
    shutil.copyfile(run / LOG_NAME, out / CONTROL_LOGS["rms_mapper"])
    last = [e for e in _log_lines(run / LOG_NAME) if "val_e_l1" in e][-1]
    return {"trained_on": f"the training clips of this set (the last {settings.mapper_val_clips} held out "
                          "for validation)",
            "epochs": epochs, "batch_size": settings.mapper_batch_size, "val_e_l1": last["val_e_l1"],
            "recipe": "python -m foley_core.training.embedded_recipe --stages mapper (rms_mapper_trainer.py)",
            "machine": f"{machine(settings.device)}; extraction {extract_s:.0f} s, training {train_s:.0f} s",
            "file": exported.name}


# ------------------------------------------------------------------------------ ControlNet
def controlnet_config(backbone: Path, steps: int, settings: ControlSettings) -> ControlNetTrainConfig:
    """The committed ControlNet's settings (embedded_models/manifest.json) with the given step count."""
    return ControlNetTrainConfig(backbone=str(backbone), batch_size=settings.controlnet_batch_size,
                                 lr=settings.controlnet_lr, warmup_steps=min(100, max(1, steps // 10)),
                                 steps=steps, ema_decay=0.998, seed=settings.seed,
                                 checkpoint_every=max(1, min(500, steps)), log_every=max(1, min(50, steps)))


def controlnet_stage(features: Path, out: Path, network_file: str, work: Path, settings: ControlSettings,
                     log: Callable[[str], None]) -> dict:
    """Envelopes of the training features, then a ControlNet on the set's flow network; returns its
    manifest entry."""
    backbone = out / network_file
    if not (features / ENVELOPES_NAME).is_file():
        log("ControlNet: RMS envelopes of the training clips")
        extract_envelopes(features, report=log)
    steps = settings.controlnet_steps
    if steps <= 0:
        probe = work / "controlnet_probe"
        shutil.rmtree(probe, ignore_errors=True)
        timing = ControlNetTrainConfig(**{**controlnet_config(backbone, 8, settings).to_dict(),
                                          "log_every": 1, "checkpoint_every": 1000})
        train_controlnet(features, timing, probe, device=settings.device)
        elapsed = [e["elapsed_s"] for e in _log_lines(probe / LOG_NAME)]
        per_step = (elapsed[-1] - elapsed[1]) / (len(elapsed) - 2)  # the first step warms caches up
        shutil.rmtree(probe, ignore_errors=True)
        steps = max(50, int(settings.controlnet_minutes * 60 / per_step))
        log(f"ControlNet: {per_step:.2f} s per step → {steps} steps")
    config = controlnet_config(backbone, steps, settings)
    run = work / "controlnet_run"
    resume = not _fresh(run, config.to_dict(), [backbone, features / ENVELOPES_NAME])
    log(f"ControlNet: training {steps} steps against {network_file}")
    started = time.monotonic()
    train_controlnet(features, config, run, resume=resume, device=settings.device)
    train_s = time.monotonic() - started
    exported = export_controlnet(run, out / CONTROL_FILES["controlnet"], fp16=True)
    shutil.copyfile(run / LOG_NAME, out / CONTROL_LOGS["controlnet"])
    n_clips = len(json.loads((features / "index.json").read_text())["clips"])
    from ..controls.controlnet import load_controlnet

    blocks = load_controlnet(exported)[1]["config"]["blocks"]
    return {"kind": "foley_controlnet", "backbone": network_file, "blocks_copied": blocks,
            "recipe": "python -m foley_core.training.embedded_recipe --stages controlnet (training/controlnet.py)",
            "config": {**config.to_dict(), "backbone": str(backbone.name)},
            "trained_on": {"synthetic_clips": n_clips}, "machine": f"{machine(settings.device)}, {train_s:.0f} s",
            "file": exported.name}


# ------------------------------------------------------------------------------- the stages
def build_controls(work: Path, out: Path, manifest: dict, *, stages: set[str], duration: float,
                   settings: ControlSettings, log: Callable[[str], None]) -> dict:
    """Run the requested control stages ({"mapper", "controlnet"}) on WORK's clips and features
    against OUT's flow network, and record them in `manifest` (returned; the caller writes it)."""
    features, clips = work / "features", work / "train_clips"
    needs = [(features / "index.json", "training features")]
    if "mapper" in stages:
        needs.append((clips / "index.json", "training clips"))
    for needed, what in needs:
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} is missing: run the recipe with the base stage first "
                                    f"(it makes the {what})")
    logs = manifest.setdefault("training_logs", {})
    if "mapper" in stages:
        manifest["rms_mapper"] = mapper_stage(clips, work, out, duration, settings, log)
        manifest["files"]["rms_mapper"] = CONTROL_FILES["rms_mapper"]
        logs["rms_mapper"] = CONTROL_LOGS["rms_mapper"]
    if "controlnet" in stages:
        network = manifest["files"]["network"]
        manifest["controlnet"] = controlnet_stage(features, out, network, work, settings, log)
        manifest["files"]["controlnet"] = CONTROL_FILES["controlnet"]
        logs["controlnet"] = CONTROL_LOGS["controlnet"]
    return manifest
