"""Small random-weight Wav2CLIP + CLIP files in the official key layouts (the real weights are not
available here), for the wav2clip verifier's tests: they prove loading and scoring mechanics, not
what the scores mean."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from foley_core.models.clip_encoder import build_clip_model

# A small CLIP whose image embedding is 512-d at 224 px, as ViT-B/32's; the loader infers the config
# from the shapes. (Text tower tiny: the verifier never uses it, but the file is a whole CLIP.)
SMALL_CLIP = {"embed_dim": 512, "quick_gelu": True,
              "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 64, "patch_size": 32},
              "text_cfg": {"context_length": 77, "vocab_size": 500, "width": 64, "heads": 1, "layers": 1}}


def wav2clip_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Keys as in the release Wav2CLIP.pt: the pre-training module's audio_encoder.* (ResNet-18 with
    its spectrogram window), audio_transform.* (MLP), plus entries the extractor does not use
    (image_transform.*, the two losses' logit scales). Built from the `wav2clip` package's classes."""
    from wav2clip.model.encoder import MLPLayers
    from wav2clip.model.resnet import BasicBlock, ResNet

    torch.manual_seed(seed)
    encoder, transform = ResNet(BasicBlock, [2, 2, 2, 2]), MLPLayers([512, 512, 512])
    for module in encoder.modules():  # non-trivial batch-norm statistics, as trained weights have
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    sd = {f"audio_encoder.{k}": v for k, v in encoder.state_dict().items()}
    sd.update({f"audio_transform.{k}": v for k, v in transform.state_dict().items()})
    sd.update({f"image_transform.{k}": torch.randn_like(v) for k, v in transform.state_dict().items()})
    sd.update({"loss_fn_a.logit_scale": torch.tensor(2.6593), "loss_fn_i.logit_scale": torch.tensor(2.6593)})
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def clip_state_dict(config: dict = SMALL_CLIP, seed: int = 1) -> dict[str, torch.Tensor]:
    """An open_clip CLIP state dict (open_clip key names) with random weights."""
    torch.manual_seed(seed)
    return {k: v.detach().clone().contiguous() for k, v in build_clip_model(config).state_dict().items()}


def write_wav2clip_files(folder: Path, wav2clip_name: str, clip_name: str) -> None:
    """`wav2clip_name` as torch.save of the state dict (the release format), `clip_name` as safetensors."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(wav2clip_state_dict(), folder / wav2clip_name)
    save_file(clip_state_dict(), str(folder / clip_name))
