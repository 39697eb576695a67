"""Does the video reach the sound? Two diagnostics for a feature folder (and a trained network).

    python -m foley_core.evaluation.video_use --features FEATURES --clips CLIPS [--network NET.safetensors]

1. **Probe**: do the stored Synchformer features carry event timing at all? A ridge regression
   from each sync token's features (optionally with ±k neighbouring tokens) to "an onset falls in
   this token's 0.08 s", trained on the first clips and scored (ROC AUC, AP) on the last ones.
   Needs the synthetic clips' ground-truth JSON files (`CLIPS/<name>.json`, `events`).
2. **Loss sensitivity** (with --network): the flow-matching loss on the feature folder with the
   true features, with the sync features of another clip, with the clip features of another clip,
   and with the learned empty video features. A network that uses the picture's timing loses
   clearly more when the sync features belong to another clip.
Both are cheap (seconds to a minute on a CPU) and need no decoding; the synthetic benchmark
(`python -m foley_core.evaluation`) is what measures the sound itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..metrics.onsets import average_precision
from ..synthetic_foley.scenes import ONSET_KINDS
from ..training.shards import ShardDataset
from .sync_timing import FRAMES_PER_TOKEN, token_starts
from ..models.mmaudio.sequence import SYNC_FPS


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney form of the ROC AUC (ties count half)."""
    from scipy.stats import rankdata

    labels = labels.astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def onset_token_labels(dataset: ShardDataset, clips_dir: Path) -> np.ndarray:
    """(clips, sync tokens) 1 where a ground-truth onset falls inside the token's frames."""
    sync_len = dataset.shapes["sync_f"][0]
    start = token_starts(sync_len)
    width = FRAMES_PER_TOKEN / SYNC_FPS
    labels = np.zeros((len(dataset), sync_len))
    for i, clip in enumerate(dataset.clips):
        truth = json.loads((clips_dir / f"{Path(clip['name']).stem}.json").read_text())
        for event in truth["events"]:
            if event["kind"] in ONSET_KINDS:
                labels[i, (start <= event["time_s"]) & (event["time_s"] < start + width)] = 1
    return labels


def _with_neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """(clips, tokens, D) → (clips, tokens, D·(2k+1)), zero beyond the clip's ends."""
    padded = np.pad(x, ((0, 0), (k, k), (0, 0)))
    return np.concatenate([padded[:, i:i + x.shape[1]] for i in range(2 * k + 1)], axis=2)


def probe(dataset: ShardDataset, clips_dir: Path, *, neighbours=(0, 2), held_out: float = 0.2,
          ridge: float = 10.0) -> dict:
    sync = torch.stack([dataset[i]["sync_f"] for i in range(len(dataset))]).double().numpy()
    labels = onset_token_labels(dataset, clips_dir)
    n_train = int(round(len(dataset) * (1 - held_out)))
    report = {"clips_train": n_train, "clips_test": len(dataset) - n_train,
              "positive_rate": float(labels[n_train:].mean())}
    for k in neighbours:
        z = _with_neighbours(sync, k).reshape(-1, sync.shape[2] * (2 * k + 1))
        z = (z - z.mean(0)) / (z.std(0) + 1e-6)
        y = labels.reshape(-1)
        split = n_train * sync.shape[1]
        a, target = z[:split], y[:split] - y[:split].mean()
        w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ target)
        scores = z[split:] @ w
        report[f"neighbours_{k}"] = {"auc": roc_auc(y[split:], scores),
                                     "ap": average_precision(y[split:], scores)}
    return report


@torch.no_grad()
def loss_sensitivity(dataset: ShardDataset, network_file: Path, *, clips: int = 80, repeats: int = 4,
                     seed: int = 1) -> dict:
    from ..models.builders import build_network
    from ..training.flow_loss import FlowMatchingObjective, draw_step_noise

    net = build_network(network_file).network.eval()
    shapes = dataset.shapes
    net.update_seq_lengths(shapes["latent_mean"][0], shapes["clip_f"][0], shapes["sync_f"][0])
    objective = FlowMatchingObjective(net)
    rows = [dataset[i] for i in range(max(0, len(dataset) - clips), len(dataset))]
    batch = {k: torch.stack([r[k] for r in rows]) for k in ("latent_mean", "latent_std", "clip_f", "sync_f", "text_f")}
    n = len(rows)
    other = torch.roll(torch.arange(n), 1)  # every clip gets its neighbour's features
    generator = torch.Generator().manual_seed(seed)
    totals = {"true": 0.0, "sync_of_another_clip": 0.0, "clip_of_another_clip": 0.0, "empty_video": 0.0}
    for _ in range(repeats):
        noise = draw_step_noise(generator, n, shapes["latent_mean"][0], shapes["latent_mean"][1], 0.0, 0.0)
        b = batch
        args = (b["latent_mean"], b["latent_std"])
        totals["true"] += objective(*args, b["clip_f"], b["sync_f"], b["text_f"], noise).item()
        totals["sync_of_another_clip"] += objective(*args, b["clip_f"], b["sync_f"][other], b["text_f"], noise).item()
        totals["clip_of_another_clip"] += objective(*args, b["clip_f"][other], b["sync_f"], b["text_f"], noise).item()
        noise.drop_video[:] = True
        totals["empty_video"] += objective(*args, b["clip_f"], b["sync_f"], b["text_f"], noise).item()
    return {"clips": n, **{k: v / repeats for k, v in totals.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True, help="feature folder (python -m foley_core.training extract)")
    parser.add_argument("--clips", required=True, help="folder with the synthetic clips' ground-truth JSON")
    parser.add_argument("--network", help="trained flow network (.safetensors) for the loss sensitivity")
    args = parser.parse_args()
    dataset = ShardDataset(args.features)
    report = {"probe": probe(dataset, Path(args.clips))}
    if args.network:
        report["loss"] = loss_sensitivity(dataset, Path(args.network))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
