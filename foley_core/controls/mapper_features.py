"""Per-frame video features of the RMS-Mapper: RGB statistics + optical-flow statistics.

Stable-V2A (§III-C) feeds its mapper 512-d TC-CLIP features of the RGB frames and of RAFT optical
flow, concatenated per frame ([video_frames, 1024], 30 fps). TC-CLIP weights are not available
here and CPU time is scarce, so the encoders are replaced by cheap, deterministic statistics on a
4 × 4 grid (chosen here, not the paper's); the conv/BiLSTM mapper learns the rest:

- frames: the 25 fps Synchformer stream of FoleyLoadVideo (the densest stream the plugin keeps;
  the paper converts to 30 fps), any size, resized by area averaging to 64 × 64, values 0..1;
- RGB (64 per frame): per grid cell (16 × 16 px at 64 px) the mean R, G, B and the std of luma;
- flow (64 per frame): a flow field from frame k-1 to k (zeros at k = 0), in pixels of the 64 px
  frame; per grid cell the mean dx, mean dy and mean |flow|, plus the mean |Δ luma| (the part of
  the change that flow does not explain, e.g. flashes and fades).

Flow methods (the mapper's config records which one it was trained with):
- "block": block matching written here — 8 × 8 blocks of the 64 px luma, exhaustive search over
  ±4 px (81 shifts), cost = mean |difference| + 0.002 per px of shift (so textureless blocks stay
  at zero motion). Always available, ~10 ms per second of video.
- "raft_small" / "raft_large": torchvision's RAFT architecture with weights the user provides
  (nothing is downloaded), run on 128 × 128 frames in [-1, 1], RAFT_ITERATIONS refinement steps,
  then scaled to 64 px units and averaged over the same 8 × 8 blocks.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FoleyError

FEATURE_RATE = 25.0  # frames per second of the features (the Synchformer stream's rate)
FEATURE_VERSION = "grid4-v1"  # bump when the recipe changes: mappers record it
WORK_SIZE = 64
GRID = 4
BLOCK = 8
SEARCH = 4
SHIFT_PENALTY = 0.002
RAFT_SIZE = 128
RAFT_ITERATIONS = 12
RGB_DIM = 4 * GRID * GRID
FLOW_DIM = 4 * GRID * GRID
FEATURE_DIM = RGB_DIM + FLOW_DIM
FLOW_METHODS = ("block", "raft_small", "raft_large")
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def frames_to_float(frames) -> torch.Tensor:
    """[T, 3, H, W] float 0..1 from uint8/float [T, 3, H, W] or a ComfyUI IMAGE [T, H, W, 3]."""
    x = torch.as_tensor(frames) if not isinstance(frames, torch.Tensor) else frames
    if x.ndim != 4:
        raise FoleyError(f"RMS-Mapper features need a frame stack [T, 3, H, W], got shape {tuple(x.shape)}.")
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] != 3:
        raise FoleyError(f"RMS-Mapper features need RGB frames, got shape {tuple(x.shape)}.")
    if x.dtype == torch.uint8:
        return x.float().mul_(1.0 / 255.0)
    return x.float().clamp(0.0, 1.0)


def _small(frames: torch.Tensor, size: int) -> torch.Tensor:
    return F.adaptive_avg_pool2d(frames, size) if frames.shape[-1] >= size else \
        F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)


def rgb_features(small: torch.Tensor) -> torch.Tensor:
    """[T, 64]: per grid cell mean R, G, B and luma std (small: [T, 3, 64, 64])."""
    cell = WORK_SIZE // GRID
    means = F.avg_pool2d(small, cell).flatten(1)  # [T, 3·16]
    luma = (small * _LUMA).sum(1, keepdim=True)
    var = F.avg_pool2d(luma * luma, cell) - F.avg_pool2d(luma, cell) ** 2
    return torch.cat([means, var.clamp_min(0).sqrt().flatten(1)], dim=1)


def block_flow(luma: torch.Tensor) -> torch.Tensor:
    """Block-matching flow [T, 2, 8, 8] (dx, dy in px) from frame k-1 to k; frame 0 gets zeros."""
    t = luma.shape[0]
    flow = torch.zeros(t, 2, WORK_SIZE // BLOCK, WORK_SIZE // BLOCK)
    if t < 2:
        return flow
    cur, prev = luma[1:], F.pad(luma[:-1], (SEARCH,) * 4, mode="replicate")
    shifts = [(dy, dx) for dy in range(-SEARCH, SEARCH + 1) for dx in range(-SEARCH, SEARCH + 1)]
    costs = []
    for dy, dx in shifts:
        window = prev[..., SEARCH + dy: SEARCH + dy + WORK_SIZE, SEARCH + dx: SEARCH + dx + WORK_SIZE]
        cost = F.avg_pool2d((cur - window).abs(), BLOCK)[:, 0]
        costs.append(cost + SHIFT_PENALTY * (abs(dy) + abs(dx)))
    best = torch.stack(costs, 1).argmin(1)  # [T-1, 8, 8]
    offsets = torch.tensor(shifts, dtype=torch.float32)  # (dy, dx) where cur(p) ≈ prev(p + offset)
    # Content at p + offset in the previous frame moved to p: motion = -offset.
    flow[1:, 0] = -offsets[best, 1]
    flow[1:, 1] = -offsets[best, 0]
    return flow


class RaftFlow:
    """torchvision RAFT (raft_small or raft_large architecture) with user-supplied weights."""

    def __init__(self, state_dict: dict, name: str = "RAFT weights", iterations: int = RAFT_ITERATIONS):
        from torchvision.models.optical_flow import raft_large, raft_small

        errors = []
        for method, build in (("raft_small", raft_small), ("raft_large", raft_large)):
            model = build(weights=None, progress=False)
            try:
                model.load_state_dict(state_dict, strict=True)
            except RuntimeError as error:
                errors.append(f"{method}: {str(error).splitlines()[0]}")
                continue
            self.method, self.model, self.iterations = method, model.eval().requires_grad_(False), iterations
            return
        raise FoleyError(f"{name} is not a torchvision RAFT checkpoint (raft_small or raft_large): "
                         f"{'; '.join(errors)}. Use raft_small_C_T_V2 / raft_large_C_T_SKHT_V2 style "
                         "state dicts from torchvision.")

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """[T, 2, 8, 8] flow in 64 px units (frames: [T, 3, H, W] float 0..1)."""
        t = frames.shape[0]
        out = torch.zeros(t, 2, WORK_SIZE // BLOCK, WORK_SIZE // BLOCK)
        if t < 2:
            return out
        x = F.interpolate(frames, size=(RAFT_SIZE, RAFT_SIZE), mode="bilinear", align_corners=False,
                          antialias=True) * 2.0 - 1.0
        pieces = []
        for start in range(0, t - 1, chunk):
            stop = min(t - 1, start + chunk)
            field = self.model(x[start:stop], x[start + 1:stop + 1], num_flow_updates=self.iterations)[-1]
            pieces.append(F.avg_pool2d(field, RAFT_SIZE // (WORK_SIZE // BLOCK)) * (WORK_SIZE / RAFT_SIZE))
        out[1:] = torch.cat(pieces)
        return out


def flow_features(flow: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    """[T, 64]: per grid cell mean dx, dy, |flow| and mean |Δ luma| (flow: [T, 2, 8, 8])."""
    pool = (WORK_SIZE // BLOCK) // GRID
    magnitude = flow.norm(dim=1, keepdim=True)
    stats = F.avg_pool2d(torch.cat([flow, magnitude], 1), pool).flatten(1)  # [T, 3·16]
    change = torch.zeros_like(luma)
    change[1:] = (luma[1:] - luma[:-1]).abs()
    return torch.cat([stats, F.avg_pool2d(change, WORK_SIZE // GRID).flatten(1)], dim=1)


@torch.no_grad()
def video_features(frames, flow: str | RaftFlow = "block") -> torch.Tensor:
    """The mapper's input [T, FEATURE_DIM] (float32) for frames at FEATURE_RATE.

    `flow` is "block" or a RaftFlow (see the module doc).
    """
    x = frames_to_float(frames)
    if x.shape[0] == 0:
        raise FoleyError("RMS-Mapper features: the video has no frames.")
    small = _small(x, WORK_SIZE)
    luma = (small * _LUMA).sum(1, keepdim=True)
    if isinstance(flow, RaftFlow):
        field = flow(x)
    elif flow == "block":
        field = block_flow(luma)
    else:
        raise FoleyError(f"unknown flow method {flow!r}; use 'block' or RAFT weights")
    return torch.cat([rgb_features(small), flow_features(field, luma)], dim=1).float()


def flow_method(flow: str | RaftFlow) -> str:
    return flow.method if isinstance(flow, RaftFlow) else str(flow)


def frames_at_rate(frames: np.ndarray | torch.Tensor, times: np.ndarray, duration_s: float,
                   rate: float = FEATURE_RATE):
    """Pick, for each feature time k / rate (k < round(rate·duration)), the last frame shown then.

    frames: [N, ...] with presentation times `times` (seconds, ascending). Same rule as the
    plugin's timestamp resampler: a frame is shown from its timestamp until the next one.
    """
    count = int(round(rate * duration_s))
    targets = np.arange(count) / rate + 1e-6
    index = np.clip(np.searchsorted(np.asarray(times), targets, side="right") - 1, 0, len(times) - 1)
    return frames[torch.as_tensor(index) if isinstance(frames, torch.Tensor) else index]
