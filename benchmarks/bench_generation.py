"""Speed and memory of one Foley generation (encode → sample → decode) with random weights.

Builds every module at the real shapes of a variant (flow network, DFN5B CLIP, Synchformer, the
mode's VAE and BigVGAN), feeds synthetic uint8 frames and times each stage: one warm-up run, then
the median of --repeats runs. Weights are random, so the numbers are about speed, not sound.

    python benchmarks/bench_generation.py --variant large_44k_v2 --dtype bf16 --device cuda \
        --duration 8 --steps 25 --repeats 3 --json out.json
    python benchmarks/bench_generation.py --variant small-test      # tiny modules, seconds on CPU

Not a test: pytest never collects it (it lives outside tests/ and is not named test_*).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from foley_core.features import VisualFeatures, encode_visual  # noqa: E402
from foley_core.generation import GenerationSettings, generate, plan_lengths  # noqa: E402
from foley_core.decoding import decode_latents  # noqa: E402
from foley_core.models.bigvgan import BIGVGAN_16K, BIGVGAN_44K, BigVGANConfig, BigVGANGenerator  # noqa: E402
from foley_core.models.mmaudio import VARIANTS, MMAudioNetwork, NetworkConfig  # noqa: E402
from foley_core.models.mmaudio.sequence import sequence_lengths  # noqa: E402
from foley_core.models.synchformer import SynchformerConfig, SynchformerVisualEncoder  # noqa: E402
from foley_core.models.vae import VAE_16K, VAE_44K, MelVAE, VAEConfig, load_vae  # noqa: E402
from foley_core.sampling.flow import GuidedVelocity, draw_noise, time_grid, uses_guidance  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SMALL_TEST = "small-test"
GIB = 1024 ** 3


# ----------------------------------------------------------------------------- module specs
@dataclass(frozen=True)
class ModuleSpecs:
    """Configs of every module of one benchmark setup (shapes must agree across modules)."""

    network: NetworkConfig
    vae: VAEConfig
    vocoder: BigVGANConfig
    clip: Optional[dict]  # open_clip config; None = full DFN5B
    synchformer: SynchformerConfig


def module_specs(variant: str) -> ModuleSpecs:
    if variant == SMALL_TEST:
        # Dims chained so the modules fit each other: CLIP embed 24 → clip_dim, text width 16 →
        # text_dim, Synchformer width 32 → sync_dim, VAE embed 8 → latent_dim; vocoder hop 256
        # as the 16k mode expects.
        return ModuleSpecs(
            network=NetworkConfig(latent_dim=8, hidden_dim=64, depth=3, fused_depth=1, num_heads=2,
                                  clip_dim=24, sync_dim=32, text_dim=16, mode="16k"),
            vae=VAEConfig(n_mels=80, embed_dim=8, hidden_dim=16),
            vocoder=BigVGANConfig(num_mels=80, upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8),
                                  upsample_initial_channel=32, sampling_rate=16_000),
            clip={"embed_dim": 24, "quick_gelu": True,
                  "vision_cfg": {"image_size": 378, "layers": 2, "width": 32, "head_width": 16, "patch_size": 14},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 2}},
            synchformer=SynchformerConfig(embed_dim=32, depth=2, num_heads=2),
        )
    network = VARIANTS[variant]
    is_16k = network.mode == "16k"
    return ModuleSpecs(network=network, vae=VAE_16K if is_16k else VAE_44K,
                       vocoder=BIGVGAN_16K if is_16k else BIGVGAN_44K, clip=None,
                       synchformer=SynchformerConfig())


# ----------------------------------------------------------------------------- building
def build_network(config: NetworkConfig, dtype: torch.dtype, device: torch.device) -> MMAudioNetwork:
    # Built on the target device: random init of 1B parameters is far faster on a GPU.
    with torch.device(device):
        net = MMAudioNetwork(config)
    return net.to(device=device, dtype=dtype).eval().requires_grad_(False)  # _apply keeps RoPE/timestep tables fp32


def build_vae(config: VAEConfig, dtype: torch.dtype, device: torch.device) -> MelVAE:
    # Through the checkpoint loader with "raw" weights, so the weights get the same
    # magnitude-preserving normalisation as a real checkpoint (realistic activation scales).
    with torch.device(device):
        raw = MelVAE(config).state_dict()
    return load_vae(raw, dtype=dtype, device=device, weight_form="raw", config=config)


def build_vocoder(config: BigVGANConfig, dtype: torch.dtype, device: torch.device) -> BigVGANGenerator:
    with torch.device(device):
        vocoder = BigVGANGenerator(config)
    # .to(device) too: the anti-aliasing filters are cached CPU tensors, not built under the context.
    return vocoder.to(device=device, dtype=dtype).eval().requires_grad_(False)


def build_clip(config: Optional[dict], dtype: torch.dtype, device: torch.device):
    from foley_core.models.clip_encoder import ClipEncoder, build_clip_model  # open_clip: lazy

    with torch.device(device):
        model = build_clip_model(config)
    # Only the model is cast: the pixel statistics stay fp32 as in ClipEncoder.from_state_dict.
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return ClipEncoder(model).to(device)


def build_synchformer(config: SynchformerConfig, dtype: torch.dtype, device: torch.device):
    with torch.device(device):
        encoder = SynchformerVisualEncoder(config)
    return encoder.to(device=device, dtype=dtype).eval().requires_grad_(False)


@dataclass
class Pipeline:
    network: MMAudioNetwork
    vae: MelVAE
    vocoder: BigVGANGenerator
    clip: object = None
    synchformer: object = None


def build_pipeline(specs: ModuleSpecs, dtype: torch.dtype, device: torch.device, with_encoders: bool) -> Pipeline:
    torch.manual_seed(0)
    return Pipeline(
        network=build_network(specs.network, dtype, device),
        vae=build_vae(specs.vae, dtype, device),
        vocoder=build_vocoder(specs.vocoder, dtype, device),
        clip=build_clip(specs.clip, dtype, device) if with_encoders else None,
        synchformer=build_synchformer(specs.synchformer, dtype, device) if with_encoders else None,
    )


# ----------------------------------------------------------------------------- inputs
def synthetic_frames(duration_s: float, mode: str, clip_size: int = 384, sync_size: int = 224,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 CLIP frames (T8, 3, 384, 384) and sync frames (T25, 3, 224, 224) for duration_s."""
    lengths = sequence_lengths(duration_s, mode)
    generator = torch.Generator().manual_seed(seed)
    clip = torch.randint(0, 256, (lengths.clip_frames, 3, clip_size, clip_size), generator=generator,
                         dtype=torch.uint8)
    sync = torch.randint(0, 256, (lengths.sync_frames, 3, sync_size, sync_size), generator=generator,
                         dtype=torch.uint8)
    return clip, sync


def random_features(config: NetworkConfig, duration_s: float, mode: str, device: torch.device) -> VisualFeatures:
    """Encoder-shaped features without running the encoders (CLIP/text rows L2-normalised)."""
    lengths = sequence_lengths(duration_s, mode)
    generator = torch.Generator().manual_seed(1)

    def unit_rows(*shape):
        return F.normalize(torch.randn(*shape, generator=generator), dim=-1).to(device)

    return VisualFeatures(
        clip_f=unit_rows(1, lengths.clip, config.clip_dim),
        sync_f=torch.randn(1, lengths.sync, config.sync_dim, generator=generator).to(device),
        text_f=unit_rows(1, config.text_seq_len, config.text_dim),
        negative_text_f=unit_rows(1, config.text_seq_len, config.text_dim),
        duration_s=float(duration_s))


# ----------------------------------------------------------------------------- CUDA graphs
class GraphedGuidedVelocity:
    """The guided velocity (both CFG branches, one batched network call) as one CUDA graph.

    Experimental (--cuda-graph). At 25 steps the large network is launch-bound on a fast GPU:
    ~1000 small kernels per step; replaying a captured graph removes the per-kernel CPU cost.
    Static buffers (x, t and the conditions) are captured once per shape and reused: a new
    run copies its conditions into them. Without `capture` (CPU) the same static-buffer path
    runs eagerly, which checks the plumbing where no GPU is available.
    """

    def __init__(self, velocity: GuidedVelocity, x_like: torch.Tensor, capture: bool):
        self.velocity = velocity
        self.static_x = torch.zeros_like(x_like)
        self.static_t = torch.zeros((), dtype=torch.float32, device=x_like.device)
        self.graph = None
        # The graph reads the RoPE/timestep tables at fixed addresses, but update_seq_lengths()
        # replaces them with new tensors: keep the captured ones alive and refresh their values.
        self.tables = self._tables()
        if capture:
            self._capture()

    def _tables(self) -> list[torch.Tensor]:
        net = self.velocity.net
        return [net.latent_rot, net.clip_rot, net.t_embed.freqs]

    def restore_tables(self) -> None:
        net = self.velocity.net
        for kept, current in zip(self.tables, self._tables()):
            if current is not kept:
                kept.copy_(current)
        net.latent_rot, net.clip_rot = self.tables[0], self.tables[1]
        net.t_embed.freqs = self.tables[2]

    def _run(self) -> torch.Tensor:
        return self.velocity(self.static_x, self.static_t)

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph (cuBLAS/cuDNN handles, workspaces)
            for _ in range(2):
                self._run()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = self._run()

    def load_conditions(self, joint_or_single) -> None:
        """Copy a new run's conditions into the captured buffers (same shapes)."""
        target = self.velocity.joint if self.velocity.guided else self.velocity.conditions
        for name in ("clip_f", "sync_f", "text_f", "clip_f_c", "text_f_c"):
            getattr(target, name).copy_(getattr(joint_or_single, name))

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.static_x.copy_(x)
        self.static_t.copy_(t)
        if self.graph is None:
            return self._run()
        self.graph.replay()
        return self.static_out


class GraphedSampler:
    """generate() with the velocity replayed from a CUDA graph; same math as sampling/flow.py."""

    def __init__(self, network: MMAudioNetwork, capture: bool):
        self.network = network
        self.capture = capture
        self.cache: dict[tuple, GraphedGuidedVelocity] = {}
        self.capture_seconds: list[float] = []

    @torch.no_grad()
    def __call__(self, features: VisualFeatures, mode: str, settings: GenerationSettings,
                 device: torch.device) -> torch.Tensor:
        net = self.network
        lengths = plan_lengths(features, mode, settings.duration_s)
        clip_f, sync_f = features.sliced(lengths.clip, lengths.sync)
        net.update_seq_lengths(lengths.latent, lengths.clip, lengths.sync)

        def prepare(t):
            return None if t is None else t.to(device=device, dtype=net.weight_dtype)

        batch = settings.batch_size
        x = draw_noise(batch, lengths.latent, net.config.latent_dim, settings.seed, device=device)
        conditions = net.preprocess_conditions(prepare(clip_f), prepare(sync_f), prepare(features.text_f)).expand(batch)
        guided = uses_guidance(settings.cfg_strength)
        uncond = net.empty_conditions(batch, prepare(features.negative_text_f)) if guided else None
        velocity = GuidedVelocity(net, conditions, uncond, settings.cfg_strength, batch)
        # Materialise the (possibly broadcast) conditions so they can serve as static buffers.
        fresh = velocity.joint if guided else velocity.conditions
        key = (tuple(x.shape), net.weight_dtype, float(settings.cfg_strength), lengths.clip, lengths.sync)
        graphed = self.cache.get(key)
        if graphed is None:
            for name in ("clip_f", "sync_f", "text_f", "clip_f_c", "text_f_c"):
                setattr(fresh, name, getattr(fresh, name).contiguous().clone())
            start = time.perf_counter()
            graphed = GraphedGuidedVelocity(velocity, x, self.capture)
            synchronize(device)
            self.capture_seconds.append(time.perf_counter() - start)
            self.cache[key] = graphed
        else:
            graphed.load_conditions(fresh)
            graphed.restore_tables()
        grid = time_grid(settings.steps).to(device)
        for k in range(settings.steps):
            v = graphed(x, grid[k])
            x = x + (grid[k + 1] - grid[k]) * v
        return net.unnormalize(x).float()


# ----------------------------------------------------------------------------- measuring
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def current_rss() -> Optional[int]:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


class RssPeakWatcher:
    """Peak resident memory during a stage, polled every few ms in a thread (CPU runs)."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.start = self.peak = current_rss()
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.start is not None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            time.sleep(self.interval_s)

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.peak = max(self.peak, current_rss())

    @property
    def growth(self) -> Optional[int]:
        return None if self.start is None else self.peak - self.start


@dataclass
class StageResult:
    name: str
    seconds: list[float] = field(default_factory=list)
    peak_bytes: Optional[int] = None  # GPU: max allocated during the stage; CPU: peak RSS
    extra_bytes: Optional[int] = None  # above what was allocated / resident when the stage began

    @property
    def median_s(self) -> Optional[float]:
        return statistics.median(self.seconds) if self.seconds else None


def measure(stage: StageResult, fn: Callable[[], object], device: torch.device, record: bool):
    """Run fn once; when `record`, append its wall time and keep the largest memory peak."""
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        elapsed = time.perf_counter() - start
        peak, extra = torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_allocated(device) - before
    else:
        with RssPeakWatcher() as watcher:
            start = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - start
        peak, extra = watcher.peak, watcher.growth
    if record:
        stage.seconds.append(elapsed)
        if peak is not None:
            stage.peak_bytes = max(stage.peak_bytes or 0, peak)
            stage.extra_bytes = max(stage.extra_bytes or 0, extra)
    return result


def machine_info(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            # Other work on a shared machine skews CPU timings; keep the load beside them.
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GIB, 1),
                    cuda=torch.version.cuda, sm_count=props.multi_processor_count)
    return info


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ----------------------------------------------------------------------------- benchmark
def run_benchmark(variant: str, dtype_name: str, device: str | torch.device, *, duration_s: float = 8.0,
                  steps: int = 25, repeats: int = 3, batch_size: int = 1, skip_encoders: bool = False,
                  cuda_graph: bool = False, cfg_strength: float = 4.5, log=print) -> dict:
    device = torch.device(device)
    dtype = DTYPES[dtype_name]
    specs = module_specs(variant)
    mode = specs.network.mode
    build_start = time.perf_counter()
    pipe = build_pipeline(specs, dtype, device, with_encoders=not skip_encoders)
    synchronize(device)
    build_s = time.perf_counter() - build_start
    log(f"built {variant} ({dtype_name}, {device}) in {build_s:.1f} s")

    clip_frames, sync_frames = synthetic_frames(duration_s, mode)
    lengths = sequence_lengths(duration_s, mode)
    settings = GenerationSettings(seed=42, steps=steps, cfg_strength=cfg_strength, duration_s=duration_s,
                                  batch_size=batch_size)
    stages = {name: StageResult(name) for name in ("encode", "sample", "decode")}
    graph_sampler = GraphedSampler(pipe.network, capture=device.type == "cuda") if cuda_graph else None
    if skip_encoders:
        fixed_features = random_features(specs.network, duration_s, mode, device)

    def encode():
        if skip_encoders:
            return fixed_features
        return encode_visual(pipe.clip, pipe.synchformer, clip_frames, sync_frames, duration_s,
                             "footsteps on gravel", "music", output_device=device)

    def sample(features):
        if graph_sampler is not None:
            return graph_sampler(features, mode, settings, device)
        return generate(pipe.network, features, mode, settings, device=device)[0]

    waveform = None
    for run in range(repeats + 1):  # run 0 is the warm-up
        record = run > 0
        features = measure(stages["encode"], encode, device, record and not skip_encoders)
        latents = measure(stages["sample"], lambda: sample(features), device, record)
        waveform = measure(stages["decode"], lambda: decode_latents(pipe.vae, pipe.vocoder, latents, lengths.samples),
                           device, record)
        log(f"  run {run}{' (warm-up)' if run == 0 else ''}: "
            + ", ".join(f"{s.name} {s.seconds[-1]:.3f} s" for s in stages.values() if record and s.seconds))

    medians = {name: s.median_s for name, s in stages.items()}
    end_to_end = sum(m for m in medians.values() if m is not None)
    return {
        "variant": variant, "dtype": dtype_name, "device": str(device), "duration_s": duration_s,
        "steps": steps, "cfg_strength": cfg_strength, "batch_size": batch_size, "repeats": repeats,
        "skip_encoders": skip_encoders, "cuda_graph": cuda_graph,
        "graph_capture_s": graph_sampler.capture_seconds if graph_sampler else None,
        "build_s": build_s,
        "shapes": {"latent": lengths.latent, "clip": lengths.clip, "sync": lengths.sync,
                   "clip_frames": int(clip_frames.shape[0]), "sync_frames": int(sync_frames.shape[0]),
                   "samples": lengths.samples},
        "stages": {name: {"median_s": s.median_s, "all_s": s.seconds, "peak_bytes": s.peak_bytes,
                          "extra_bytes": s.extra_bytes} for name, s in stages.items()},
        "end_to_end_s": end_to_end,
        "seconds_per_clip": end_to_end / batch_size,
        "output_finite": bool(torch.isfinite(waveform).all()) if waveform is not None else None,
        "machine": machine_info(device),
    }


def format_table(result: dict) -> str:
    cuda = result["device"].startswith("cuda")
    mem_label = "peak alloc GiB" if cuda else "peak RSS GiB"
    lines = [f"{result['variant']} {result['dtype']} on {result['machine'].get('gpu', result['machine']['cpu'])}"
             f" (torch {result['machine']['torch']}), {result['duration_s']} s clip, {result['steps']} steps, "
             f"batch {result['batch_size']}, median of {result['repeats']}"
             + (", CUDA graph" if result["cuda_graph"] else ""),
             f"{'stage':<8} {'median s':>10} {mem_label:>16} {'extra GiB':>10}"]
    for name, stage in result["stages"].items():
        if stage["median_s"] is None:
            lines.append(f"{name:<8} {'skipped':>10}")
            continue
        peak = "-" if stage["peak_bytes"] is None else f"{stage['peak_bytes'] / GIB:.2f}"
        extra = "-" if stage["extra_bytes"] is None else f"{stage['extra_bytes'] / GIB:.2f}"
        lines.append(f"{name:<8} {stage['median_s']:>10.3f} {peak:>16} {extra:>10}")
    lines.append(f"{'total':<8} {result['end_to_end_s']:>10.3f}   ({result['seconds_per_clip']:.3f} s per clip)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="large_44k_v2", choices=[*VARIANTS, SMALL_TEST])
    parser.add_argument("--dtype", default="bf16", choices=list(DTYPES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--skip-encoders", action="store_true",
                        help="random features instead of running CLIP and Synchformer")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="experimental: replay the guided network call from a CUDA graph")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_benchmark(args.variant, args.dtype, args.device, duration_s=args.duration, steps=args.steps,
                           repeats=args.repeats, batch_size=args.batch_size, skip_encoders=args.skip_encoders,
                           cuda_graph=args.cuda_graph)
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
