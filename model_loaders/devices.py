"""Devices and dtypes, decided by the host's model management (never a hard-coded "cuda")."""

from __future__ import annotations

import torch
import comfy.model_management as mm
import comfy.model_patcher

DTYPE_CHOICES = ["auto", "fp32", "fp16", "bf16"]
_NAMED = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def compute_dtype(choice: str, device: torch.device | None = None) -> torch.dtype:
    """'auto' = bf16 where the GPU supports it (MMAudio's own default), else fp16 on GPUs,
    fp32 on the CPU."""
    if choice in _NAMED:
        return _NAMED[choice]
    device = device or mm.get_torch_device()
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def wrap(module: torch.nn.Module) -> "comfy.model_patcher.ModelPatcher":
    """A ModelPatcher so the host loads the module to the GPU on demand and offloads it."""
    module.eval().requires_grad_(False)
    return comfy.model_patcher.ModelPatcher(
        module, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


def load_to_device(*patchers) -> torch.device:
    """Ask the host to put these models on its compute device; returns that device."""
    patchers = [p for p in patchers if p is not None]
    mm.load_models_gpu(patchers)
    return patchers[0].load_device if patchers else mm.get_torch_device()


def output_device() -> torch.device:
    """Where node outputs (latents, audio) live between nodes."""
    return mm.intermediate_device()
