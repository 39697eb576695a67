"""Prompt-channel benchmark: does AudioIM's trained prompt channel make the continuation closer in
timbre to the prompt than the training-free replacement alone?

    python benchmarks/bench_prompt_channel.py dump --features /tmp/embedded/work/features \
        --holdout 32 --compact --out out/prompt_channel_bench/heldout.safetensors
    python benchmarks/bench_prompt_channel.py evaluate --heldout out/prompt_channel_bench/heldout.safetensors \
        --channel out/prompt_channel_bench/prompt_channel_16k.safetensors --steps 25 --cfg 4.5 \
        --out docs/results/prompt_channel_benchmark.json

Held-out clips: the last `--holdout` clips of the synthetic feature set, which the channel was
not trained on (`train-prompt-channel --holdout 48`; the embedded backbone itself saw them).
Per clip, one 4 s window [prompt | target] as in training: prompt = the clip's own first 3/8
(47 latents, 1.5 s, the VAE posterior mean), target = the remaining 2.5 s with the clip's sync
features (CLIP and caption dropped — they name the material — so the prompt is the only timbre
cue). Every condition uses the same noise:
  none: no prompt (plain 2.5 s run) — chance level;
  replacement: training-free latent prompting only;
  channel+replacement, channel only: with the trained channel.
Metrics (metrics/timbre.py, MFCC descriptors of decoded audio): mean distance of the decoded
target to the decoded own prompt, and the fraction of clips whose target is closer to its own
prompt than to the prompt of the next held-out clip of another material.

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


def dump(features: Path, holdout: int, out: Path, compact: bool = False) -> None:
    """compact: fp16 and only the sync features + latents (the evaluation drops CLIP and text
    anyway), to fit the device machine's transfer limit."""
    from safetensors.torch import save_file

    from foley_core.training import ShardDataset

    dataset = ShardDataset(features)
    rows = [dataset[i] for i in range(len(dataset) - holdout, len(dataset))]
    captions = [dataset.clips[i]["caption"] for i in range(len(dataset) - holdout, len(dataset))]
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = ("sync_f", "latent_mean") if compact else KEYS
    dtype = torch.float16 if compact else torch.float32
    save_file({k: torch.stack([r[k] for r in rows]).to(dtype).contiguous() for k in keys}, str(out),
              metadata={"captions": json.dumps(captions), "names": json.dumps([r["name"] for r in rows]),
                        "seq": json.dumps(dataset.index["seq"]), "mode": dataset.mode})
    print(f"wrote {out}: {len(rows)} clips")


def evaluate(heldout: Path, channel_path: Path, steps: int, cfg: float, seed: int, device: str) -> dict:
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
    captions = json.loads(meta["captions"])
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
    results, timings = {}, {}
    for name in ("none", "replacement") + MODES:
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
        outputs = [timbre_descriptor(w, sample_rate) for w in decode(out)]
        timings[name] = round(time.time() - started, 1)
        distances = [timbre_distance(o, p) for o, p in zip(outputs, prompt_desc)]
        results[name] = {
            "mean_distance_to_own_prompt": float(np.mean(distances)),
            "closer_to_own_prompt": closer_to_own_than_other(outputs, prompt_desc, [prompt_desc[j] for j in other]),
        }
        print(name, json.dumps(results[name]), f"{timings[name]} s", flush=True)
    return {"clips": n, "prompt_latents": n_prompt, "target_s": target_s, "steps": steps, "cfg": cfg, "seed": seed,
            "channel": channel_path.name, "channel_training": channel_meta["training"], "results": results,
            "heldout_target_flow_loss": held_loss,
            "seconds": timings, "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor()
            or "cpu", "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--features", type=Path, required=True)
    d.add_argument("--holdout", type=int, default=48)
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--compact", action="store_true")
    e = sub.add_parser("evaluate")
    e.add_argument("--heldout", type=Path, required=True)
    e.add_argument("--channel", type=Path, required=True)
    e.add_argument("--steps", type=int, default=25)
    e.add_argument("--cfg", type=float, default=4.5)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    e.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.features, args.holdout, args.out, args.compact)
        return
    summary = evaluate(args.heldout, args.channel, args.steps, args.cfg, args.seed, args.device)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary["results"], indent=1))


if __name__ == "__main__":
    main()
