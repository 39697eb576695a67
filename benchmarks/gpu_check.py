"""One-shot accelerator check: fp32 parity on the device, half-precision drift, and benchmarks.

    python benchmarks/gpu_check.py --device cuda --out $OUT          # the real run (H100)
    python benchmarks/gpu_check.py --device cpu --small --out /tmp/x  # dry run of every code path

Sections (each runs even if an earlier one failed; results are written after every section):
  parity    — tests/data/parity golden tensors computed on the device in fp32 (TF32 off)
  precision — fp16/bf16 against fp32 on the same random full-size modules (relative errors)
  graph     — CUDA-graph sampler against the eager sampler (same net, same noise)
  bench     — bench_generation runs (large_44k_v2 / small_16k, bf16, 8 s, 25 steps)
Exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_generation as bench  # noqa: E402  (also puts the repo root on sys.path)

from safetensors.torch import load_file  # noqa: E402

from foley_core.models.mmaudio import (MMAudioNetwork, detect_network_config, load_network_weights,  # noqa: E402
                                       with_mode)
from foley_core.sampling.flow import draw_noise, generate_latents  # noqa: E402

PARITY = bench.REPO_ROOT / "tests" / "data" / "parity"


class Checks:
    """Collects named results; a failed bound is recorded, not raised, so later checks still run."""

    def __init__(self):
        self.results: dict[str, dict] = {}
        self.failures: list[str] = []

    def record(self, name: str, ok: bool, **numbers) -> None:
        self.results[name] = {"ok": bool(ok), **numbers}
        if not ok:
            self.failures.append(name)
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {shown}", flush=True)

    def close(self, name: str, actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float) -> None:
        actual, expected = actual.float().cpu(), expected.float().cpu()
        same_shape = actual.shape == expected.shape
        err = (actual - expected).abs().max().item() if same_shape else float("inf")
        ok = same_shape and torch.allclose(actual, expected, atol=atol, rtol=rtol)
        self.record(name, ok, max_abs_err=err, atol=atol)

    def drift(self, name: str, half: torch.Tensor, full: torch.Tensor, bound: float) -> None:
        """Relative L2 error of a half-precision result against fp32, plus finiteness."""
        half, full = half.float().cpu(), full.float().cpu()
        finite = bool(torch.isfinite(half).all() and torch.isfinite(full).all())
        rel = ((half - full).norm() / full.norm().clamp_min(1e-30)).item() if finite else float("nan")
        max_abs = (half - full).abs().max().item() if finite else float("nan")
        self.record(name, finite and rel < bound, rel_l2=rel, max_abs=max_abs, ref_rms=full.pow(2).mean().sqrt().item(),
                    bound=bound, finite=finite)


def to(io: dict, device) -> dict:
    return {k: v.to(device) for k, v in io.items()}


# ----------------------------------------------------------------------------- parity (fp32)
@torch.no_grad()
def parity_checks(checks: Checks, device: torch.device) -> None:
    from foley_core.models.bigvgan import BigVGANConfig, load_bigvgan
    from foley_core.models.clip_encoder import ClipEncoder
    from foley_core.models.synchformer import SynchformerVisualEncoder
    from foley_core.models.vae import load_vae

    def parity_config(name):
        return json.loads((PARITY / f"{name}.json").read_text())["config"]

    for layout in ("v1", "v2"):
        weights = load_file(PARITY / f"mmaudio_net_tiny_{layout}.weights.safetensors")
        _, config = detect_network_config(weights)
        net = MMAudioNetwork(with_mode(config, "44k"))
        net.update_seq_lengths(31, 8, 24)
        net = load_network_weights(net, weights).eval().to(device)
        io = to(load_file(PARITY / f"mmaudio_net_tiny_{layout}.io.safetensors"), device)
        flow = net(io["in.latent"], io["in.t"], io["in.clip_f"], io["in.sync_f"], io["in.text_f"])
        checks.close(f"parity.mmaudio_net_tiny_{layout}.flow", flow, io["out.flow"], 1e-4, 1e-4)
        if layout == "v2":
            sampler_io = to(load_file(PARITY / "fm_sampler_tiny_v2.io.safetensors"), device)
            s_in = {k: sampler_io[f"in.{k}"] for k in ("x0", "clip_f", "sync_f", "text_f", "neg_text_f")}
            latent = generate_latents(net, s_in["x0"], s_in["clip_f"], s_in["sync_f"], s_in["text_f"],
                                      negative_text_f=s_in["neg_text_f"], steps=5, cfg_strength=4.5)
            checks.close("parity.fm_sampler_case_A.latent", latent, sampler_io["out.A.latent"], 2e-4, 2e-4)
            latent_d = generate_latents(net, s_in["x0"], s_in["clip_f"], s_in["sync_f"], s_in["text_f"],
                                        negative_text_f=s_in["neg_text_f"], steps=25, cfg_strength=4.5)
            checks.close("parity.fm_sampler_case_D.latent", latent_d, sampler_io["out.D.latent"], 2e-4, 2e-4)

    vae = load_vae(load_file(str(PARITY / "vae_tiny_44k.weights.safetensors")), device=device)
    io = to(load_file(str(PARITY / "vae_tiny_44k.io.safetensors")), device)
    checks.close("parity.vae_tiny_44k.decode", vae.decode(io["out.posterior_mean"]), io["out.dec_mode"], 1e-4, 1e-4)

    cfg = parity_config("bigvgan_v2_tiny")
    vocoder = load_bigvgan({"generator": load_file(str(PARITY / "bigvgan_v2_tiny.weights.safetensors"))},
                           BigVGANConfig.from_dict(cfg), device=device)
    io = to(load_file(str(PARITY / "bigvgan_v2_tiny.io.safetensors")), device)
    checks.close("parity.bigvgan_v2_tiny.wav", vocoder(io["in.mel"]), io["out.wav"], 1e-4, 1e-4)

    cfg = parity_config("synchformer_tiny")
    sync = SynchformerVisualEncoder.from_state_dict(load_file(PARITY / "synchformer_tiny.weights.safetensors"),
                                                    num_heads=cfg["NUM_HEADS"], device=device)
    io = load_file(PARITY / "synchformer_tiny.io.safetensors")
    checks.close("parity.synchformer_tiny.features", sync(io["in.frames_u8"].to(device)), io["out.sync_features"],
                 2e-4, 2e-4)

    cfg = parity_config("clip_tiny")
    clip = ClipEncoder.from_state_dict(load_file(PARITY / "clip_tiny.weights.safetensors"),
                                       config=cfg["open_clip_cfg"], device=device)
    io = load_file(PARITY / "clip_tiny.io.safetensors")
    checks.close("parity.clip_tiny.image_features", clip.encode_video_frames(io["in.frames_u8"].to(device)),
                 io["out.image_features"], 1e-4, 1e-4)
    checks.close("parity.clip_tiny.text_features", clip.encode_text(cfg["prompts"]), io["out.text_features"],
                 1e-4, 1e-4)


# ----------------------------------------------------------------------------- half precision
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Loose bounds on the relative L2 error against fp32 (random weights; real ones behave better).
FLOW_BOUND = {"bf16": 0.05, "fp16": 0.02}
SAMPLE_BOUND = {"bf16": 0.25, "fp16": 0.1}
MODULE_BOUND = 0.1  # bf16 encoders and decoders, one pass


@torch.no_grad()
def precision_checks(checks: Checks, device: torch.device, variant: str) -> None:
    specs = bench.module_specs(variant)
    config = specs.network
    torch.manual_seed(0)
    net32 = bench.build_network(config, torch.float32, device)
    features = bench.random_features(config, 8.0, config.mode, device)
    lengths = bench.plan_lengths(features, config.mode, 8.0)
    x0 = draw_noise(1, lengths.latent, config.latent_dim, seed=42, device=device)

    def flow_and_sample(net):
        net.update_seq_lengths(lengths.latent, lengths.clip, lengths.sync)
        dtype = net.weight_dtype
        clip_f, sync_f, text_f, neg = (t.to(dtype) for t in (features.clip_f, features.sync_f, features.text_f,
                                                              features.negative_text_f))
        conditions = net.preprocess_conditions(clip_f, sync_f, text_f)
        flow = net.predict_flow(x0, 0.5, conditions)
        sample = generate_latents(net, x0, clip_f, sync_f, text_f, negative_text_f=neg, steps=25, cfg_strength=4.5)
        return flow, sample

    flow32, sample32 = flow_and_sample(net32)
    for name, dtype in HALF.items():
        net_half = copy.deepcopy(net32).to(dtype)
        flow, sample = flow_and_sample(net_half)
        checks.drift(f"precision.{variant}.{name}.flow", flow, flow32, FLOW_BOUND[name])
        checks.drift(f"precision.{variant}.{name}.sample25", sample, sample32, SAMPLE_BOUND[name])
        del net_half
    del net32
    free_memory(device)

    # VAE and vocoder: same random raw weights loaded at each precision.
    torch.manual_seed(1)
    with torch.device(device):
        raw_vae = bench.MelVAE(specs.vae).state_dict()
    latent = sample32.transpose(1, 2).float()
    vae32 = bench.load_vae(raw_vae, dtype=torch.float32, device=device, weight_form="raw", config=specs.vae)
    vae16 = bench.load_vae(raw_vae, dtype=torch.bfloat16, device=device, weight_form="raw", config=specs.vae)
    mel32 = vae32.decode(latent)
    checks.drift(f"precision.vae.{specs.vae.n_mels}mel.bf16.decode", vae16.decode(latent), mel32, MODULE_BOUND)
    torch.manual_seed(2)
    voc32 = bench.build_vocoder(specs.vocoder, torch.float32, device)
    voc16 = copy.deepcopy(voc32).to(torch.bfloat16)
    # Mel scaled to a realistic log-mel range so the Snake activations see ordinary inputs.
    mel_in = (mel32 - mel32.mean()) / mel32.std().clamp_min(1e-6) * 2.0 - 5.0
    checks.drift(f"precision.bigvgan.{specs.vocoder.num_mels}mel.bf16.wav", voc16(mel_in.bfloat16()), voc32(mel_in),
                 MODULE_BOUND)
    del vae32, vae16, voc32, voc16
    free_memory(device)

    clip_frames, sync_frames = bench.synthetic_frames(8.0, config.mode)
    torch.manual_seed(3)
    clip32 = bench.build_clip(specs.clip, torch.float32, device)
    from foley_core.models.clip_encoder import ClipEncoder
    clip16 = ClipEncoder(copy.deepcopy(clip32.model).to(torch.bfloat16)).to(device)
    frames = clip_frames[:8].unsqueeze(0).to(device)
    checks.drift("precision.clip.bf16.image", clip16.encode_video_frames(frames), clip32.encode_video_frames(frames),
                 MODULE_BOUND)
    prompts = ["footsteps on gravel", "music"]
    checks.drift("precision.clip.bf16.text", clip16.encode_text(prompts), clip32.encode_text(prompts), MODULE_BOUND)
    del clip32, clip16
    free_memory(device)

    torch.manual_seed(4)
    sync32 = bench.build_synchformer(specs.synchformer, torch.float32, device)
    sync16 = copy.deepcopy(sync32).to(torch.bfloat16)
    frames = sync_frames[:32].unsqueeze(0).to(device)  # 3 segments
    checks.drift("precision.synchformer.bf16", sync16(frames), sync32(frames), MODULE_BOUND)
    del sync32, sync16
    free_memory(device)


# ----------------------------------------------------------------------------- CUDA graph vs eager
@torch.no_grad()
def graph_checks(checks: Checks, device: torch.device, variant: str, dtype_name: str) -> None:
    specs = bench.module_specs(variant)
    torch.manual_seed(0)
    net = bench.build_network(specs.network, bench.DTYPES[dtype_name], device)
    settings = bench.GenerationSettings(seed=42, steps=25, cfg_strength=4.5, duration_s=8.0)
    first = bench.random_features(specs.network, 8.0, specs.network.mode, device)
    second = bench.random_features(specs.network, 8.0, specs.network.mode, device)
    second.clip_f = second.clip_f.flip(1)  # a different video: exercises copying into captured buffers
    sampler = bench.GraphedSampler(net, capture=device.type == "cuda")
    for label, features in (("first", first), ("reused", second)):
        eager = bench.generate(net, features, specs.network.mode, settings, device=device)[0]
        graphed = sampler(features, specs.network.mode, settings, device)
        scale = eager.abs().max().item()
        err = (graphed - eager).abs().max().item()
        # Same kernels replayed: equal up to nondeterministic reduction order.
        checks.record(f"graph.{variant}.{dtype_name}.{label}", err <= 1e-3 * max(scale, 1.0), max_abs_err=err,
                      ref_max=scale)
    del net, sampler
    free_memory(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--small", action="store_true", help="CPU dry run: small-test sizes everywhere")
    parser.add_argument("--sections", default="parity,precision,graph,bench")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    # Parity needs true fp32: TF32 convs/matmuls alone exceed the 1e-4 tolerances.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    checks = Checks()
    report = {"machine": bench.machine_info(device), "checks": checks.results, "failures": checks.failures,
              "errors": {}, "benchmarks": {}, "section_seconds": {}}

    def save():
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))

    precision_variant = bench.SMALL_TEST if args.small else "large_44k_v2"
    # (name, variant, dtype, keyword arguments of run_benchmark)
    if args.small:
        bench_plan = [("small-test_fp32", bench.SMALL_TEST, "fp32", {}),
                      ("small-test_fp32_graph", bench.SMALL_TEST, "fp32", {"skip_encoders": True, "cuda_graph": True})]
    else:
        bench_plan = [("large_44k_v2_bf16", "large_44k_v2", "bf16", {}),
                      ("small_16k_bf16", "small_16k", "bf16", {}),
                      ("large_44k_v2_bf16_graph", "large_44k_v2", "bf16", {"skip_encoders": True, "cuda_graph": True}),
                      ("large_44k_v2_fp16", "large_44k_v2", "fp16", {}),
                      ("large_44k_v2_fp32", "large_44k_v2", "fp32", {"skip_encoders": True})]

    def run_benches():
        for name, variant, dtype_name, kwargs in bench_plan:
            # Benchmarks use the default (fast) math; only parity needed TF32 off.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = True
            try:
                result = bench.run_benchmark(variant, dtype_name, device, repeats=args.repeats, **kwargs)
                print(bench.format_table(result), flush=True)
                report["benchmarks"][name] = result
                (args.out / f"bench_{name}.json").write_text(json.dumps(result, indent=2))
            except Exception:  # keep going: later benchmarks are still worth having
                report["errors"][f"bench.{name}"] = traceback.format_exc()
                print(report["errors"][f"bench.{name}"], flush=True)
            free_memory(device)
            save()

    sections = {
        "parity": lambda: parity_checks(checks, device),
        "precision": lambda: precision_checks(checks, device, precision_variant),
        "graph": lambda: graph_checks(checks, device, precision_variant, "fp32" if args.small else "bf16"),
        "bench": run_benches,
    }
    for name in args.sections.split(","):
        print(f"=== {name}", flush=True)
        start = time.perf_counter()
        try:
            sections[name]()
        except Exception:
            report["errors"][name] = traceback.format_exc()
            print(report["errors"][name], flush=True)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        report["section_seconds"][name] = time.perf_counter() - start
        free_memory(device)
        save()

    print(f"=== summary: {len(checks.results) - len(checks.failures)}/{len(checks.results)} checks ok; "
          f"failures: {checks.failures or 'none'}; errors in: {list(report['errors']) or 'none'}")
    for name, result in report["benchmarks"].items():
        stages = {k: v["median_s"] for k, v in result["stages"].items()}
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f}s" for k, v in stages.items() if v is not None)
              + f", end-to-end {result['end_to_end_s']:.3f}s")
    return 1 if checks.failures or report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
