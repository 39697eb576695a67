"""GMDS vs best-of-N at an equal number of sampler evaluations, on held-out synthetic clips.

For every clip (foley_core.synthetic_foley, the seeds the synthetic benchmark holds out) the
embedded model set generates audio from the clip's video; the verifier is envelope agreement
(1 − E-L1) with the clip's TRUE soundtrack (`--verifier timbre`: MFCC timbre similarity to it). Both searches get the same budget of sampler
evaluations, E = N·(1 + 2T):
- GMDS (AvSyncDiff Algorithm 1): population N, T rounds, β_s / β_l;
- best-of-N: E independent noises, keep the best (sampled in batches of 2N, like GMDS's rounds).
Reported over the clips (mean ± std, and the paired difference): the verifier score, and a
held-out metric the search did not optimise — onset accuracy at 0.1 s against the true event
times (metrics/onsets.py). The report also compares the two at every smaller budget the run
passes through (GMDS after round t vs the best of best-of-N's first N·(1 + 2t) draws), so one
run with many rounds gives the whole budget curve. Also the cost per candidate of evaluating a round's 2N candidates as
one batch vs one at a time (sample + decode + score), on this machine's CPU.

    python benchmarks/bench_gmds.py                      # 20 clips, 2 s, 8 steps, N=3, T=2
    python benchmarks/bench_gmds.py --clips 2 --steps 4  # a smoke run
    python benchmarks/bench_gmds.py --json docs/results/gmds_benchmark.json

Not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from foley_core.decoding import decode_latents  # noqa: E402
from foley_core.evaluation.synthetic_benchmark import HELD_OUT_SEED_OFFSET, load_model_set  # noqa: E402
from foley_core.features import encode_visual  # noqa: E402
from foley_core.media.video import sample_video  # noqa: E402
from foley_core.metrics import onset_accuracy  # noqa: E402
from foley_core.search import best_of_n, gmds_evaluations, gmds_search  # noqa: E402
from foley_core.search.sampling import make_sampler, make_scorer  # noqa: E402
from foley_core.search.verifiers import EnvelopeVerifier, TimbreVerifier, VerifierContext  # noqa: E402
from foley_core.synthetic_foley import make_clip  # noqa: E402
from foley_core.synthetic_foley.scenes import ONSET_KINDS  # noqa: E402

CPU = torch.device("cpu")
# What the search optimises, each against the clip's TRUE soundtrack (an oracle target, as a user's
# drawn envelope or chosen reference recording would be).
VERIFIERS = {
    "envelope": ("envelope agreement with the true soundtrack (1 - E-L1)", EnvelopeVerifier),
    "timbre": ("timbre similarity to the true soundtrack (MFCC descriptor, 1 / (1 + distance / 10))", TimbreVerifier),
}


def setup_clip(models, seed: int, duration: float, steps: int, cfg: float, verifier: str = "envelope"):
    clip = make_clip(seed, duration_s=duration, fps=25, sample_rate=models.sample_rate, size=128)
    video = sample_video(torch.from_numpy(clip.frames), frame_rate=clip.fps)
    caption = f"{clip.meta['material']} {clip.meta['scene']}"  # as the synthetic benchmark
    features = encode_visual(models.clip, models.synchformer, video.clip_frames, video.sync_frames,
                             video.duration_s, caption, "")
    sampler = make_sampler(models.network, features, models.mode, steps=steps, cfg_strength=cfg, device=CPU)
    n_samples = int(round(sampler.lengths.duration_s * models.sample_rate))
    scorer = make_scorer(models.vae, models.vocoder, VERIFIERS[verifier][1].from_audio(clip.audio, models.sample_rate), models.sample_rate, n_samples,
                         VerifierContext(duration_s=sampler.lengths.duration_s, prompt=caption))
    gt = [e["time_s"] for e in clip.meta["events"] if e["kind"] in ONSET_KINDS]
    return clip, sampler, scorer, n_samples, gt


def held_out(models, latent, n_samples, gt) -> float:
    wave = decode_latents(models.vae, models.vocoder, latent, n_samples)[0, 0].numpy()
    return onset_accuracy(wave, gt, 0.1, sample_rate=models.sample_rate)


def time_batched_vs_sequential(sampler, scorer, k: int, repeats: int, seed: int) -> dict:
    """Cost per candidate of k candidates evaluated as one batch vs as k single-candidate calls.

    Evaluation = sample + decode + score (the search's unit of work); the sampler alone is also
    timed. Both wall time and this process's CPU time (time.process_time) are recorded; the
    ratio is taken from CPU time, which other processes on a shared box inflate far less than
    wall time. Batched and sequential runs alternate within each repeat (so drifting load hits
    both alike) and the median over repeats is kept, after one warm-up of each."""
    noise = torch.randn(k, *sampler.noise_shape, generator=torch.Generator().manual_seed(seed))

    def batched(score):
        latents = sampler(noise)
        if score:
            scorer(latents)

    def sequential(score):
        for i in range(k):
            latents = sampler(noise[i:i + 1])
            if score:
                scorer(latents)

    batched(True), sequential(True)  # warm-up: first-call allocations and caches
    out = {"candidates": k, "repeats": repeats, "torch_threads": torch.get_num_threads()}
    for prefix, score in (("", True), ("sampler_only_", False)):  # full evaluation, then the sampler alone
        samples = {"batched": [], "sequential": []}
        for _ in range(repeats):
            for name, run in (("batched", batched), ("sequential", sequential)):
                wall, cpu = time.perf_counter(), time.process_time()
                run(score)
                samples[name].append((time.perf_counter() - wall, time.process_time() - cpu))
        for name, values in samples.items():
            out[f"{prefix}{name}_wall_s_per_candidate"] = float(np.median([w for w, _ in values])) / k
            out[f"{prefix}{name}_cpu_s_per_candidate"] = float(np.median([c for _, c in values])) / k
        out[f"{prefix}ratio"] = out[f"{prefix}batched_cpu_s_per_candidate"] / out[f"{prefix}sequential_cpu_s_per_candidate"]
        out[f"{prefix}wall_ratio"] = (out[f"{prefix}batched_wall_s_per_candidate"]
                                      / out[f"{prefix}sequential_wall_s_per_candidate"])
    return out


def stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "sem": float(v.std(ddof=1) / np.sqrt(len(v)))
            if len(v) > 1 else 0.0}


def run(args, on_clip=None) -> dict:
    torch.manual_seed(0)
    models = load_model_set(args.models)
    budget = gmds_evaluations(args.population, args.rounds)
    rows, started = [], time.monotonic()
    timing = None
    if args.timing_repeats > 0:  # on the first clip's setup; --clips 0 measures only this
        first = HELD_OUT_SEED_OFFSET + args.seed
        _, sampler, scorer, _, _ = setup_clip(models, first, args.duration, args.steps, args.cfg, args.verifier)
        timing = time_batched_vs_sequential(sampler, scorer, 2 * args.population, args.timing_repeats, first)
        print(f"[gmds] cost per candidate: {timing}", flush=True)
    for i in range(args.clips):
        seed = HELD_OUT_SEED_OFFSET + args.seed + i
        clip, sampler, scorer, n_samples, gt = setup_clip(models, seed, args.duration, args.steps, args.cfg,
                                                          args.verifier)
        t0 = time.perf_counter()
        g = gmds_search(sampler, scorer, sampler.noise_shape, population=args.population, rounds=args.rounds,
                        beta_small=args.beta_small, beta_large=args.beta_large, seed=seed,
                        keep_parent=args.keep_parent)
        t1 = time.perf_counter()
        b = best_of_n(sampler, scorer, sampler.noise_shape, n=budget, seed=seed, batch_size=2 * args.population)
        t2 = time.perf_counter()
        single = float(g.trace[0]["scores"][0])  # the first noise alone: what one sample would score
        rows.append({
            "seed": seed, "scene": clip.meta["scene"], "material": clip.meta["material"], "n_onsets": len(gt),
            "single_score": single, "gmds_score": g.best_score, "best_of_n_score": b.best_score,
            "gmds_onset_acc@0.1s": held_out(models, g.best_latent, n_samples, gt),
            "best_of_n_onset_acc@0.1s": held_out(models, b.best_latent, n_samples, gt),
            "gmds_best_per_round": [r["best_score"] for r in g.trace],
            "best_of_n_scores": [x for r in b.trace for x in r["scores"]],  # in draw order: any smaller budget's best
            "gmds_s": round(t1 - t0, 2), "best_of_n_s": round(t2 - t1, 2),
        })
        r = rows[-1]
        if on_clip is not None:
            on_clip(summarize(args, budget, rows, timing, started))
        print(f"[gmds] clip {i + 1}/{args.clips} {r['scene']:7s} single {single:.4f}  GMDS {g.best_score:.4f}  "
              f"best-of-{budget} {b.best_score:.4f}  onset acc {r['gmds_onset_acc@0.1s']:.2f} / "
              f"{r['best_of_n_onset_acc@0.1s']:.2f}  ({time.monotonic() - started:.0f} s)", flush=True)

    return summarize(args, budget, rows, timing, started)


def summarize(args, budget: int, rows: list, timing, started: float) -> dict:
    def col(key):
        return [r[key] for r in rows]

    if not rows:
        return {"command": "python benchmarks/bench_gmds.py " + " ".join(sys.argv[1:]), "n_clips": 0,
                "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                             if k not in ("json", "merge")},
                "evaluations_each": budget, "clips": [], "summary": {"cost_per_candidate": timing},
                "seconds": round(time.monotonic() - started, 1)}
    diff = np.array(col("gmds_score")) - np.array(col("best_of_n_score"))
    onset_diff = np.array(col("gmds_onset_acc@0.1s")) - np.array(col("best_of_n_onset_acc@0.1s"))
    summary = {
        "verifier_score": {"single_sample": stats(col("single_score")), "gmds": stats(col("gmds_score")),
                           "best_of_n": stats(col("best_of_n_score")), "gmds_minus_best_of_n": stats(diff),
                           "gmds_wins": int((diff > 0).sum()), "ties": int((diff == 0).sum())},
        "onset_acc@0.1s": {"gmds": stats(col("gmds_onset_acc@0.1s")),
                           "best_of_n": stats(col("best_of_n_onset_acc@0.1s")),
                           "gmds_minus_best_of_n": stats(onset_diff)},
        "cost_per_candidate": timing,
        "by_budget": by_budget(args.population, rows),
    }
    return {
        "command": "python benchmarks/bench_gmds.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("json", "merge")},
        "evaluations_each": budget, "verifier": VERIFIERS[getattr(args, "verifier", "envelope")][0],
        "n_clips": len(rows), "summary": summary, "clips": rows, "seconds": round(time.monotonic() - started, 1),
    }


def by_budget(population: int, rows: list) -> list:
    """GMDS after round t vs best-of-N at the same budget N·(1 + 2t), for every t the run reached.

    GMDS stopped after round t is exactly GMDS with T = t (same seed, same draws), and best-of-N
    at a smaller budget is the best of the first draws, so one run gives the whole budget curve."""
    if not rows or "best_of_n_scores" not in rows[0]:
        return []
    curve = []
    for t in range(len(rows[0]["gmds_best_per_round"])):
        budget = gmds_evaluations(population, t)
        gmds = np.array([r["gmds_best_per_round"][t] for r in rows])
        best = np.array([max(r["best_of_n_scores"][:budget]) for r in rows])
        diff = gmds - best
        curve.append({"round": t, "evaluations": budget, "gmds": stats(gmds), "best_of_n": stats(best),
                      "gmds_minus_best_of_n": stats(diff), "gmds_wins": int((diff > 0).sum()),
                      "ties": int((diff == 0).sum())})
    return curve


def merge(paths: list[Path]) -> dict:
    """One report from several partial runs (e.g. clip ranges run side by side)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    seen, rows = set(), []
    for row in (r for p in parts for r in p["clips"]):
        if row["seed"] not in seen:  # overlapping clip ranges count each clip once
            seen.add(row["seed"])
            rows.append(row)
    rows.sort(key=lambda r: r["seed"])
    timing = next((p["summary"]["cost_per_candidate"] for p in parts if p["summary"]["cost_per_candidate"]), None)
    args = argparse.Namespace(**parts[0]["settings"])
    report = summarize(args, parts[0]["evaluations_each"], rows, timing, time.monotonic())
    report["settings"]["clips"] = len(rows)
    report["merged_from"] = [{"command": p["command"], "n_clips": len(p["clips"]), "seconds": p["seconds"]}
                             for p in parts]
    report["seconds"] = sum(p["seconds"] for p in parts)
    return report


def markdown(report: dict) -> str:
    s = report["summary"]

    def cell(d):
        return f"{d['mean']:.4f} ± {d['std']:.4f}"

    v, o = s["verifier_score"], s["onset_acc@0.1s"]
    lines = [f"| over {report['n_clips']} clips, {report['evaluations_each']} evaluations each | "
             "GMDS | best-of-N | GMDS − best-of-N (mean ± s.e.) |", "|---|---|---|---|",
             f"| verifier: {report.get('verifier', 'envelope agreement')} ↑ | {cell(v['gmds'])} | {cell(v['best_of_n'])} | "
             f"{v['gmds_minus_best_of_n']['mean']:+.4f} ± {v['gmds_minus_best_of_n']['sem']:.4f} "
             f"(GMDS higher on {v['gmds_wins']}/{report['n_clips']}) |",
             f"| held out: onset accuracy @0.1 s ↑ | {cell(o['gmds'])} | {cell(o['best_of_n'])} | "
             f"{o['gmds_minus_best_of_n']['mean']:+.4f} ± {o['gmds_minus_best_of_n']['sem']:.4f} |",
             f"| (one sample, no search: verifier) | {cell(v['single_sample'])} | | |"]
    if len(s.get("by_budget", [])) > 1:
        lines += ["", "| GMDS rounds | evaluations | GMDS | best-of-N | GMDS − best-of-N (± s.e.) | GMDS higher on |",
                  "|---|---|---|---|---|---|"]
        for c in s["by_budget"]:
            lines.append(f"| {c['round']} | {c['evaluations']} | {c['gmds']['mean']:.4f} | {c['best_of_n']['mean']:.4f} | "
                         f"{c['gmds_minus_best_of_n']['mean']:+.4f} ± {c['gmds_minus_best_of_n']['sem']:.4f} | "
                         f"{c['gmds_wins']}/{report['n_clips']} |")
    c = s["cost_per_candidate"]
    if c:
        lines.append("")
        lines.append(f"Cost per candidate (sample + decode + score), {c['candidates']} candidates, median of "
                     f"{c.get('repeats', '?')}, CPU time: batched {c['batched_cpu_s_per_candidate']:.3f} s, sequential "
                     f"{c['sequential_cpu_s_per_candidate']:.3f} s → ratio {c['ratio']:.2f} (wall-time ratio "
                     f"{c['wall_ratio']:.2f}); sampler alone: batched {c['sampler_only_batched_cpu_s_per_candidate']:.3f} s, "
                     f"sequential {c['sampler_only_sequential_cpu_s_per_candidate']:.3f} s → ratio "
                     f"{c['sampler_only_ratio']:.2f} ({c.get('torch_threads', '?')} torch threads).")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=REPO_ROOT / "embedded_models")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--cfg", type=float, default=4.5)
    parser.add_argument("--verifier", choices=sorted(VERIFIERS), default="envelope",
                        help="what the search optimises (against the clip's true soundtrack)")
    parser.add_argument("--population", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--beta-small", type=float, default=0.5)
    parser.add_argument("--beta-large", type=float, default=0.9)
    parser.add_argument("--keep-parent", action="store_true",
                        help="elitist variant (not Algorithm 1): a member stays when both candidates score below it")
    parser.add_argument("--timing-repeats", type=int, default=1, help="0 = skip the batched/sequential timing")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="write the report here (and a .md beside it)")
    parser.add_argument("--merge", type=Path, nargs="+", help="combine these partial reports instead of running")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    def write(report):
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1) + "\n")

    report = merge(args.merge) if args.merge else run(args, on_clip=write)  # partial results survive a stop
    table = markdown(report) if report["n_clips"] else json.dumps(report["summary"])
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        args.json.with_suffix(".md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
