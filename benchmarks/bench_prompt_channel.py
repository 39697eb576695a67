"""Prompt-channel benchmark: does AudioIM's trained prompt channel make the continuation closer in
timbre to the prompt than the training-free replacement alone?

    python benchmarks/bench_prompt_channel.py dump --features FEATURES --clips CLIPS \
        --holdout 96 --compact --out out/prompt_channel_bench/heldout.safetensors
    python benchmarks/bench_prompt_channel.py evaluate --heldout out/prompt_channel_bench/heldout.safetensors \
        --channel out/prompt_channel_bench/prompt_channel_16k.safetensors --steps 12 --cfg 4.5 \
        --out docs/results/prompt_channel_benchmark.json
    python benchmarks/bench_prompt_channel.py pool docs/results/prompt_channel_benchmark*.json

Held-out clips: the last `--holdout` clips of a feature folder the channel was not trained on
(docs/benchmarks.md, second run: clips 480-575 of the recipe's set, which the embedded backbone
did not see either; the first run held out the last 48 of the backbone's own clips).
Per clip, one 4 s window [prompt | target] as in training: prompt = the clip's own first 3/8
(47 latents, 1.5 s, the VAE posterior mean), target = the remaining 2.5 s with the clip's sync
features (CLIP and caption dropped — they name the material — so the prompt is the only timbre
cue). Every condition uses the same noise:
  none: no prompt (plain 2.5 s run) — chance level;
  replacement: training-free latent prompting only;
  channel+replacement, channel only: with the trained channel.
Metrics (metrics/timbre.py, MFCC descriptors of decoded audio): mean distance of the decoded
target to the decoded own prompt, and the fraction of clips whose target is closer to its own
prompt than to the prompt of the next held-out clip of another material ("closer_to_own_prompt"),
and over every pair (clip, held-out clip of another material) ("closer_all_other_pairs").
Synchronisation (issue #5's acceptance): onset accuracy (metrics/onsets.py) of the decoded target
at 0.1 s / 0.3 s against the clip's ground-truth onsets inside the target span (the synthetic
clips' event times, recorded by `dump --clips`), shifted to the target's start. The VAE
reconstruction of the true target ("truth (VAE)") is scored as the detector's ceiling.

Not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

EMBEDDED = REPO_ROOT / "embedded_models"
KEYS = ("clip_f", "sync_f", "text_f", "latent_mean")


def dump(features: Path, holdout: int, out: Path, compact: bool = False, clips: Path | None = None) -> None:
    """compact: fp16 and only the sync features + latents (the evaluation drops CLIP and text
    anyway), to fit the device machine's transfer limit. clips: the synthetic clip folder the
    features were extracted from; its <name>.json event times become the ground-truth onsets."""
    from safetensors.torch import save_file

    from foley_core.synthetic_foley.scenes import ONSET_KINDS
    from foley_core.training import ShardDataset

    dataset = ShardDataset(features)
    rows = [dataset[i] for i in range(len(dataset) - holdout, len(dataset))]
    captions = [dataset.clips[i]["caption"] for i in range(len(dataset) - holdout, len(dataset))]
    extra = {}
    if clips is not None:
        events = [json.loads((clips / f"{Path(r['name']).stem}.json").read_text())["events"] for r in rows]
        extra["onsets"] = json.dumps([[e["time_s"] for e in ev if e["kind"] in ONSET_KINDS] for ev in events])
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = ("sync_f", "latent_mean") if compact else KEYS
    dtype = torch.float16 if compact else torch.float32
    save_file({k: torch.stack([r[k] for r in rows]).to(dtype).contiguous() for k in keys}, str(out),
              metadata={"captions": json.dumps(captions), "names": json.dumps([r["name"] for r in rows]),
                        "seq": json.dumps(dataset.index["seq"]), "mode": dataset.mode, **extra})
    print(f"wrote {out}: {len(rows)} clips")


def evaluate(heldout: Path, channel_path: Path, steps: int, cfg: float, seed: int, device: str,
             conditions: tuple[str, ...] = ()) -> dict:
    from safetensors import safe_open

    from foley_core.decoding import decode_latents
    from foley_core.metrics.timbre import closer_to_own_than_other, timbre_descriptor, timbre_distance
    from foley_core.models import builders
    from foley_core.models.mmaudio.sequence import audio_mode_settings, sequence_lengths
    from foley_core.models.prompt_channel import MODES, apply_prompt_channel, load_channel, split_3_5
    from foley_core.sampling.flow import draw_noise, generate_latents
    from foley_core.sampling.latent_prompt import plan_prompt_window, sample_with_prompt
    from foley_core.style import ReferenceStyle

    with safe_open(str(heldout), framework="pt") as handle:
        meta = handle.metadata()
        data = {k: handle.get_tensor(k).float() for k in handle.keys()}
    captions, names = json.loads(meta["captions"]), json.loads(meta["names"])
    conditions = conditions or ("none", "replacement") + MODES
    seq, mode = json.loads(meta["seq"]), meta["mode"]
    manifest = json.loads((EMBEDDED / "manifest.json").read_text())["files"]
    dev = torch.device(device)
    net = builders.build_network(EMBEDDED / manifest["network"]).network.to(dev).eval()
    vae = builders.build_vae(EMBEDDED / manifest["vae"]).to(dev)
    vocoder = builders.build_vocoder(EMBEDDED / manifest["vocoder"] if manifest.get("vocoder") else None,
                                     vae.cfg.mode)
    vocoder = vocoder.to(dev) if hasattr(vocoder, "to") else vocoder
    channel, channel_meta = load_channel(channel_path)
    sample_rate, hop = audio_mode_settings(mode)
    n = data["latent_mean"].shape[0]
    n_prompt = split_3_5(seq["latent"])
    target_s = (seq["latent"] - n_prompt) / (sample_rate / hop / 2)
    target = sequence_lengths(target_s, mode)
    window = plan_prompt_window(target, n_prompt)
    assert window.latent == seq["latent"], (window, seq)
    latent = data["latent_mean"].to(dev)
    prompt = latent[:, :n_prompt]
    sync = data["sync_f"][:, -target.sync:].to(dev)
    clip = net.empty_clip_feat.detach().expand(n, target.clip, -1).contiguous()

    def decode(latents: torch.Tensor) -> list[np.ndarray]:
        with torch.no_grad():
            wave = decode_latents(vae, vocoder, latents.float())
        return [w[0].cpu().numpy() for w in wave]

    prompt_desc = [timbre_descriptor(w, sample_rate) for w in decode(prompt)]
    other = []
    for i in range(n):  # the next held-out clip of another material (caption's first word)
        material = captions[i].split()[0]
        other.append(next(k % n for k in range(i + 1, i + n) if captions[k % n].split()[0] != material))
    style = ReferenceStyle(prompt_latent=prompt[:1].cpu(), acoustic_vector=prompt[:1].mean(1).cpu(),
                           prompt_seconds=n_prompt / (sample_rate / hop / 2), mode=mode,
                           source_sample_rate=sample_rate, offset_s=0.0)
    # The training objective on the held-out clips (fixed noise, video/text/prompt kept): the
    # zero channel (= training-free, nothing learned) vs the trained one.
    from foley_core.models.prompt_channel import PromptChannel
    from foley_core.training import draw_step_noise, step_generator
    from foley_core.training.prompt_channel import prompt_channel_loss

    net.update_seq_lengths(seq["latent"], seq["clip"], seq["sync"])
    # CLIP and text dropped (empty features), as in the generation below.
    batch = {"latent_mean": latent, "latent_std": torch.zeros_like(latent),
             "clip_f": net.empty_clip_feat.detach().expand(n, seq["clip"], -1),
             "sync_f": data["sync_f"].to(dev), "text_f": net.empty_string_feat.detach().expand(n, -1, -1)}
    held_loss = {}
    for label, module in (("zero channel", PromptChannel(channel.config)), ("trained channel", channel)):
        module = module.to(dev)
        with torch.no_grad():
            values = [prompt_channel_loss(net, module, batch, draw_step_noise(
                step_generator(1234, k, 0), n, seq["latent"], net.config.latent_dim, 0.0, 0.0).to(dev),
                torch.ones(n, dtype=torch.bool, device=dev), n_prompt).item() for k in range(8)]
        held_loss[label] = float(np.mean(values))
    print("held-out target-span flow loss", json.dumps(held_loss), flush=True)
    x0 = draw_noise(n, window.latent, net.config.latent_dim, seed, device=dev)
    prompt_s = n_prompt / (sample_rate / hop / 2)
    onsets = _target_onsets(meta, prompt_s, prompt_s + target_s)
    pairs = [(i, j) for i in range(n) for j in range(n)
             if captions[j].split()[0] != captions[i].split()[0]]  # every other-material reference
    results, timings, per_clip = {}, {}, {}
    if onsets is not None:  # the detector's ceiling: the true target through the VAE
        truth = decode(latent[:, n_prompt:])
        results["truth (VAE)"] = _onset_summary([_onset_row(w, sample_rate, g) for w, g in zip(truth, onsets)])
        print("truth (VAE)", json.dumps(results["truth (VAE)"]), flush=True)
    for name in conditions:
        started = time.time()
        with torch.no_grad():
            if name == "none":
                net.update_seq_lengths(target.latent, target.clip, target.sync)
                out = generate_latents(net, x0[:, n_prompt:], clip, sync, None, steps=steps, cfg_strength=cfg)
            else:
                network = net if name == "replacement" else apply_prompt_channel(net, channel.to(dev), style, mode=name)
                state = sample_with_prompt(network, x0, net.normalize(prompt), window, clip, sync, None,
                                           steps=steps, cfg_strength=cfg)
                out = net.unnormalize(state[:, n_prompt:])
        waves = decode(out)
        outputs = [timbre_descriptor(w, sample_rate) for w in waves]
        timings[name] = round(time.time() - started, 1)
        distances = [timbre_distance(o, p) for o, p in zip(outputs, prompt_desc)]
        to_other = [timbre_distance(o, prompt_desc[j]) for o, j in zip(outputs, other)]
        rows = [{"name": names[i], "material": captions[i].split()[0], "other": names[other[i]],
                 "distance_own": distances[i], "distance_other": to_other[i],
                 "closer": bool(distances[i] < to_other[i])} for i in range(n)]
        if onsets is not None:
            for row, wave, gt in zip(rows, waves, onsets):
                row.update(_onset_row(wave, sample_rate, gt))
        wins = [timbre_distance(outputs[i], prompt_desc[i]) < timbre_distance(outputs[i], prompt_desc[j])
                for i, j in pairs]
        results[name] = {
            "mean_distance_to_own_prompt": float(np.mean(distances)),
            "closer_to_own_prompt": closer_to_own_than_other(outputs, prompt_desc, [prompt_desc[j] for j in other]),
            "closer_all_other_pairs": float(np.mean(wins)), "other_pairs": len(pairs),
            **(_onset_summary(rows) if onsets is not None else {}),
        }
        per_clip[name] = rows
        print(name, json.dumps(results[name]), f"{timings[name]} s", flush=True)
    return {"clips": n, "prompt_latents": n_prompt, "target_s": target_s, "steps": steps, "cfg": cfg, "seed": seed,
            "channel": channel_path.name, "channel_training": channel_meta["training"], "results": results,
            "heldout_target_flow_loss": held_loss, "per_clip": per_clip,
            "seconds": timings, "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor()
            or "cpu", "torch": torch.__version__}


def _target_onsets(meta: dict, start_s: float, end_s: float) -> list[list[float]] | None:
    """Per clip, the ground-truth onsets inside the target span, in seconds from the target's start."""
    if "onsets" not in meta:
        return None
    return [[t - start_s for t in clip if start_s <= t < end_s] for clip in json.loads(meta["onsets"])]


def _onset_row(wave: np.ndarray, sample_rate: int, gt: list[float]) -> dict:
    from foley_core.metrics.onsets import onset_scores

    scores = onset_scores(wave, sample_rate, gt, tolerances=(0.1, 0.3))
    return {"n_gt": len(gt), "n_pred": int(scores["n_pred"]),
            "onset_acc@0.1s": scores["onset_acc@0.1s"], "onset_acc@0.3s": scores["onset_acc@0.3s"]}


def _onset_summary(rows: list[dict]) -> dict:
    """Mean onset accuracy over the clips with at least one ground-truth onset in the target."""
    scored = [r for r in rows if r["n_gt"] > 0]
    return {"onset_clips": len(scored), **{key: float(np.mean([r[key] for r in scored]))
                                            for key in ("onset_acc@0.1s", "onset_acc@0.3s")}}


def pool(files: list[Path]) -> dict:
    """Pooled over seeds (result files of `evaluate`; a seed's conditions may come from several
    files, e.g. the baselines run before the channel was trained): own-prompt rates and onset accuracy."""
    runs = [json.loads(f.read_text()) for f in files]
    pooled = {}
    for name in dict.fromkeys(name for run in runs for name in run["per_clip"]):
        with_it = [run for run in runs if name in run["per_clip"]]
        rows = [r for run in with_it for r in run["per_clip"][name]]
        entry = {"closer_to_own_prompt": float(np.mean([r["closer"] for r in rows])), "outputs": len(rows),
                 "seeds": [run["seed"] for run in with_it],
                 "closer_all_other_pairs": float(np.mean([run["results"][name]["closer_all_other_pairs"]
                                                           for run in with_it])),
                 "mean_distance_to_own_prompt": float(np.mean([r["distance_own"] for r in rows]))}
        if "n_gt" in rows[0]:
            entry.update(_onset_summary(rows))
        pooled[name] = entry
    return {"files": [f.name for f in files], "pooled": pooled}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--features", type=Path, required=True)
    d.add_argument("--holdout", type=int, default=48)
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--compact", action="store_true")
    d.add_argument("--clips", type=Path, help="synthetic clip folder of the features (ground-truth onsets)")
    e = sub.add_parser("evaluate")
    e.add_argument("--heldout", type=Path, required=True)
    e.add_argument("--channel", type=Path, required=True)
    e.add_argument("--steps", type=int, default=25)
    e.add_argument("--cfg", type=float, default=4.5)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    e.add_argument("--conditions", nargs="+", default=[],
                   help="subset of: none, replacement, channel+replacement, 'channel only' (default all)")
    e.add_argument("--out", type=Path)
    p = sub.add_parser("pool")
    p.add_argument("results", type=Path, nargs="+", help="evaluate --out files (one per seed)")
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.features, args.holdout, args.out, args.compact, args.clips)
        return
    if args.command == "pool":
        print(json.dumps(pool(args.results), indent=1))
        return
    summary = evaluate(args.heldout, args.channel, args.steps, args.cfg, args.seed, args.device,
                       tuple(args.conditions))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary["results"], indent=1))


if __name__ == "__main__":
    main()
