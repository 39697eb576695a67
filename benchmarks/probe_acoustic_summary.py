"""How much does a reference's acoustic summary tell about its material? (style-adapter input probe)

    python benchmarks/probe_acoustic_summary.py --sources /tmp/style/sources \
        --index /tmp/embedded/work/train_clips/index.json --clips 480

For each training clip, one 2 s segment of the rest of its recording (the stage-2 region,
seconds 4..8 of bench_style's sources) is encoded exactly as Foley Style Encode does; then each
candidate summary of the prompt latent (N_p, C) is scored by two held-out material classifiers
(first 2/3 of the clips fit, last 1/3 scored), on standardised features:
  - nearest class centroid (what "the mean picks the right material 78 %" measured),
  - a ridge least-squares linear read-out (closer to what the adapter's first layer can do).
Frame weights for the "loud frames" summaries: softmax(distance of each latent frame from the
dataset's median latent / tau) — a silence-like frame sits near the median.

Not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from foley_core.evaluation.synthetic_benchmark import load_model_set  # noqa: E402
from foley_core.media.audio import decode_audio_stream  # noqa: E402
from foley_core.style import encode_reference  # noqa: E402


def scores(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> dict[str, float]:
    n_fit = (2 * len(labels)) // 3
    fit, test = slice(0, n_fit), slice(n_fit, None)
    mean, std = features[fit].mean(0), features[fit].std(0).clamp_min(1e-4)
    x = (features - mean) / std
    centroids = torch.stack([x[fit][labels[fit] == k].mean(0) for k in range(n_classes)])
    centroid_acc = (torch.cdist(x[test], centroids).argmin(1) == labels[test]).float().mean()
    design = torch.cat([x, torch.ones(len(x), 1)], 1)
    onehot = torch.nn.functional.one_hot(labels[fit], n_classes).float()
    weights = torch.linalg.solve(design[fit].T @ design[fit] + torch.eye(design.shape[1]), design[fit].T @ onehot)
    linear_acc = ((design[test] @ weights).argmax(1) == labels[test]).float().mean()
    return {"nearest_centroid": round(float(centroid_acc), 3), "linear": round(float(linear_acc), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True, help="train_clips/index.json (names, materials)")
    parser.add_argument("--clips", type=int, default=480)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = load_model_set(REPO_ROOT / "embedded_models")
    clips = json.loads(args.index.read_text())["clips"][:args.clips]
    materials = sorted({c["material"] for c in clips})
    generator = torch.Generator().manual_seed(0)
    latents, labels = [], []
    for clip in clips:
        wave, rate = decode_audio_stream(args.sources / f"{clip['name']}.wav")
        offset = 4.0 + 2.0 * float(torch.rand(1, generator=generator))
        latents.append(encode_reference(models.vae, wave, rate, models.mode, offset_s=offset,
                                        prompt_s=2.0).prompt_latent[0])
        labels.append(materials.index(clip["material"]))
    z, y = torch.stack(latents), torch.tensor(labels)  # (N, N_p, C), (N,)
    mean, std = z.mean(1), z.std(1)
    loudness = (z - z.reshape(-1, z.shape[-1]).median(0).values).norm(dim=2)
    results = {"mean (acoustic vector)": scores(mean, y, len(materials)),
               "mean + std": scores(torch.cat([mean, std], 1), y, len(materials))}
    for tau in (1.0, 2.0):
        w = torch.softmax(loudness / tau, 1)[..., None]
        w_mean = (w * z).sum(1)
        w_std = (w * (z - w_mean[:, None]) ** 2).sum(1).sqrt()
        results[f"loud-weighted mean + std (tau {tau})"] = scores(torch.cat([w_mean, w_std], 1), y, len(materials))
        results[f"loud-weighted mean + std + mean (tau {tau})"] = scores(
            torch.cat([w_mean, w_std, mean], 1), y, len(materials))
    report = {"clips": len(clips), "materials": materials, "held_out": len(clips) - (2 * len(clips)) // 3,
              "results": results}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
