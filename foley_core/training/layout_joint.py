"""TiVA's joint stage (§3.2.1, Eq. 10): the layout predictor trained together with the generator.

    python -m foley_core.training layout-predictor joint --features FLOWFEATS --predictor-features PF \
        --predictor P.safetensors --adapter A.safetensors --backbone NET.safetensors --out RUN \
        [--steps N --l2-weight 1 --train-adapter true ...] [--resume] [--stop-at N]
    python -m foley_core.training layout-predictor joint-export --run RUN --predictor-out P2 --adapter-out A2
    python -m foley_core.training layout-predictor joint-eval --features FLOWFEATS --predictor-features PF \
        --predictor P --adapter A --backbone NET [--clips 32] [--json OUT]

Why: the adapter (controls/layout_adapter.py) is trained on the *true* layout of each clip's audio
(Eq. 9), the predictor on L2 to it (Eq. 8), but at sampling the adapter reads the *predicted*
layout. TiVA closes that gap by taking the generator's loss with the predicted layout and
optimising both (Eq. 10). Here the generator is the frozen backbone plus the layout adapter:

    loss = flow-matching loss(backbone + adapter(tokens(clamp(𝒯(video), 0, 1))))
           + l2_weight · ‖𝒯(video) − true layout‖²

- 𝒯(video) comes from the clip's CLIP layer features (`layout-predictor extract`); the layout is
  resampled to the latent rate with the same linear map the adapter's tokens use at sampling
  (controls/layout_adapter.layout_tokens, written as a fixed matrix so gradients pass through it)
  and clamped to [0, 1] as `predict_layout` does at inference.
- The L2 anchor (not in TiVA's Eq. 10; l2_weight 0 gives Eq. 10 alone): the predictor's output is
  also used as a *layout* — layout guidance, the heatmap, the layout L2 — and with a small data set
  the flow loss alone could turn it into any code the adapter happens to read; the anchor keeps it a
  layout while the flow term moves it towards what helps the generator.
- Dropouts: the layout-adapter trainer's (frozen_backbone.draw_control_step: video/text, then layout alone,
  or layout + video + text as CFG's unconditional branch), drawn in the same order.
- `train_adapter` false: only the predictor learns (the adapter stays as loaded).
- Both flow features and predictor features must describe the same clips: rows are matched by
  clip name; a flow clip without predictor features is refused (FoleyError naming the fix).
- Driver (training/driver.py): DDP, EMA of predictor and adapter together, checkpoints, exact
  resume. The last `holdout` flow clips are not trained on; at the end their layout L2 and flow
  loss with the predicted layout (fixed noise and t per clip, so paired) are written to
  RUN/validation.json for the loaded files ("initial") and the run's raw and EMA weights.
- Export: a predictor file and an adapter file in the existing formats (the existing loaders read
  them unchanged), each recording the joint stage and a shared `pair_id`: they belong together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..controls.layout import Layout, layout_span
from ..controls.layout_adapter import (LayoutAdapter, LayoutAdapterConfig, latent_rate_of, load_layout_adapter,
                                       save_layout_adapter)
from ..errors import FoleyError
from ..models.latent_input import check_backbone_dims
from ..models.layout_predictor import (LayoutPredictor, LayoutPredictorConfig, frame_times, load_predictor,
                                       query_times, save_predictor, signature_mismatch)
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .cli_args import report_stop
from .config import OptimRunConfig
from .driver import TrainingTask, prepare_run, run_training, weights_digest
from .flow_loss import FLOW_INPUTS, draw_step_noise, step_generator
from .frozen_backbone import draw_control_step, load_frozen_backbone
from .layout_adapter import LayoutAdapterObjective
from .layout_predictor_trainer import load_features, layout_l2
from .shards import ShardDataset

KIND = "layout_joint"
STAGE = "joint (TiVA Eq. 10) + L2 anchor"
EVAL_SEED = 20_240_610  # fixed noise / t of the held-out flow loss (paired across models)
_FEATURE_KEYS = ("layers", "grid", "feature_version", "frame_rate", "bands", "layout_rate")


# ---------------------------------------------------------------------------------- config
@dataclass
class LayoutJointConfig(OptimRunConfig):
    config_name = "layout joint-stage config"

    backbone: str = ""  # flow-network file (frozen)
    predictor: str = ""  # the L2-stage predictor export (initial weights)
    adapter: str = ""  # the layout-adapter export (initial weights)
    l2_weight: float = 1.0  # λ of the L2 anchor; 0 = TiVA's Eq. 10 alone
    train_adapter: bool = True
    layout_dropout: float = 0.1
    video_dropout: float = 0.1
    text_dropout: float = 0.1
    uncond_dropout: float = 0.1
    holdout: int = 32  # the last `holdout` flow clips are not trained on (validation.json)
    eval_draws: int = 8  # noise/t draws per held-out clip for the held-out flow loss
    # shared fields (OptimRunConfig) with this stage's defaults
    batch_size: int = 8
    lr: float = 3e-4
    warmup_steps: int = 20
    steps: int = 600
    checkpoint_every: int = 100

    probabilities = ("layout_dropout", "video_dropout", "text_dropout", "uncond_dropout")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("backbone", "predictor", "adapter"):
            if not getattr(self, name):
                raise ValueError(f"set '{name}': the {name} file the joint stage starts from")
        if self.l2_weight < 0 or self.holdout < 0 or self.eval_draws < 1:
            raise ValueError("l2_weight, holdout >= 0; eval_draws >= 1")


# ------------------------------------------------------------------------------- modules
class JointLayoutModel(nn.Module):
    """What the joint stage trains, EMA-averages and checkpoints: predictor and adapter together."""

    def __init__(self, predictor: LayoutPredictor, adapter: LayoutAdapter, train_adapter: bool = True):
        super().__init__()
        self.predictor, self.adapter = predictor.requires_grad_(True), adapter
        adapter.requires_grad_(train_adapter)


def token_matrix(layout_frames: int, layout_rate: float, n_tokens: int, latent_rate: float) -> torch.Tensor:
    """[N, M]: adapter token values = matrix @ layout. `layout_span` is linear in the layout's values,
    so resampling the identity gives exactly the map `layout_tokens` applies at sampling."""
    eye = Layout(np.eye(layout_frames, dtype=np.float32), float(layout_rate))
    return torch.from_numpy(layout_span(eye, 0.0, n_tokens / latent_rate, n_tokens))


class JointLayoutObjective(nn.Module):
    """Predictor → layout tokens → adapter on the frozen backbone; flow loss + l2_weight · layout L2."""

    def __init__(self, model: JointLayoutModel, net, *, n_frames: int, frame_rate: float, n_layout: int,
                 layout_rate: float, n_tokens: int, latent_rate: float, l2_weight: float):
        super().__init__()
        self.model, self.l2_weight = model, float(l2_weight)
        self.flow = LayoutAdapterObjective(net, model.adapter)
        self.register_buffer("frame_times", frame_times(n_frames, frame_rate), persistent=False)
        self.register_buffer("query_times", query_times(n_layout, layout_rate), persistent=False)
        self.register_buffer("span", token_matrix(n_layout, layout_rate, n_tokens, latent_rate), persistent=False)

    def predict(self, cls: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Raw predicted layouts [B, M, C] (unclamped: Eq. 8 is taken on them)."""
        return self.model.predictor(cls, patches, self.frame_times, self.query_times)

    def tokens(self, layout: torch.Tensor) -> torch.Tensor:
        """Adapter tokens [B, N, C + 1] of layouts [B, M, C], clamped as at inference; presence flag 1."""
        values = torch.einsum("nm,bmc->bnc", self.span, layout.clamp(0, 1))
        return torch.cat([values, torch.ones_like(values[..., :1])], dim=-1)

    def forward(self, cls, patches, true_layout, latent_mean, latent_std, clip_f, sync_f, text_f, noise, keep,
                uncond) -> torch.Tensor:
        pred = self.predict(cls, patches)
        flow = self.flow(latent_mean, latent_std, clip_f, sync_f, text_f, noise, self.tokens(pred), keep, uncond)
        return flow + self.l2_weight * F.mse_loss(pred, true_layout) if self.l2_weight else flow


# ---------------------------------------------------------------------------------- data
@dataclass
class JointData:
    dataset: ShardDataset  # flow features
    backbone: Any  # frozen_backbone.FrozenBackbone
    cls: torch.Tensor  # predictor features, rows aligned with the dataset's clips
    patches: torch.Tensor
    layouts: torch.Tensor  # true layouts (the predictor's targets)
    meta: dict[str, Any]  # predictor features' metadata
    latent_rate: float


def load_joint_data(flow_features: str | Path, predictor_features: str | Path, backbone: str | Path,
                    predictor_config: LayoutPredictorConfig, adapter_config: LayoutAdapterConfig,
                    adapter_name: str = "the layout adapter") -> JointData:
    """Flow shards + predictor features matched by clip name, the frozen backbone, all checked."""
    dataset = ShardDataset(flow_features)
    frozen = load_frozen_backbone(backbone, dataset)
    cls, patches, layouts, meta = load_features(predictor_features)
    pf_rows = {name: i for i, name in enumerate(meta["clips"])}
    names = [c["name"] for c in dataset.clips]
    missing = [n for n in names if n not in pf_rows]
    if missing:
        raise FoleyError(
            f"{len(missing)} of the {len(names)} clips of the flow features {flow_features} have no layout-predictor "
            f"features in {predictor_features} (first: {', '.join(missing[:3])}; those hold "
            f"{', '.join(meta['clips'][:3])}{' …' if len(meta['clips']) > 3 else ''}). Both must come from the same "
            "clips: run `python -m foley_core.training layout-predictor extract --clips DIR` on the folder the flow "
            "features were extracted from (`extract --videos DIR`).")
    mine = {"layers": list(predictor_config.layers),
            "grid": predictor_config.grid, "feature_version": predictor_config.feature_version,
            "frame_rate": predictor_config.frame_rate, "bands": predictor_config.bands,
            "layout_rate": predictor_config.layout_rate}
    differ = [k for k in _FEATURE_KEYS if meta.get(k) != mine[k]]
    if signature_mismatch(predictor_config.clip_signature, meta.get("clip_signature") or {}):
        differ.insert(0, "CLIP")
    if differ:
        raise FoleyError(f"the predictor features {predictor_features} differ from what the predictor was trained "
                         f"on ({', '.join(differ)}); extract them with the predictor's CLIP and settings "
                         f"(`layout-predictor extract --clip {predictor_config.clip_file}`).")
    if abs(float(meta["duration_s"]) - dataset.duration_s) > 1e-6:
        raise FoleyError(f"the predictor features are {meta['duration_s']} s per clip, the flow features "
                         f"{dataset.duration_s} s; extract both with the same --duration.")
    if predictor_config.bands != adapter_config.bands:
        raise FoleyError(f"the predictor makes {predictor_config.bands} bands, {adapter_name} reads "
                         f"{adapter_config.bands}; use a matching pair.")
    check_backbone_dims(adapter_config.width, adapter_config.latent_dim, adapter_config.backbone, frozen.net,
                        adapter_name.capitalize(), "train a layout adapter for this one")
    rows = torch.tensor([pf_rows[n] for n in names])
    return JointData(dataset, frozen, cls[rows], patches[rows], layouts[rows], meta,
                     latent_rate_of(frozen.built.mode or dataset.mode, "the backbone"))


def build_objective(data: JointData, predictor: LayoutPredictor, adapter: LayoutAdapter, *, l2_weight: float,
                    train_adapter: bool = True) -> JointLayoutObjective:
    cfg = predictor.config
    return JointLayoutObjective(JointLayoutModel(predictor, adapter, train_adapter), data.backbone.net,
                                n_frames=data.cls.shape[1], frame_rate=cfg.frame_rate, n_layout=data.layouts.shape[1],
                                layout_rate=cfg.layout_rate, n_tokens=data.backbone.seq["latent"],
                                latent_rate=data.latent_rate, l2_weight=l2_weight)


# ---------------------------------------------------------------------------- evaluation
@torch.no_grad()
def heldout_metrics(objective: JointLayoutObjective, data: JointData, rows: list[int], *, draws: int = 8,
                    device: torch.device | str = "cpu") -> dict[str, Any]:
    """Per held-out clip: layout L2 (clamped, as `layout_l2`) and the flow loss of backbone + adapter
    fed the predicted layout, the true layout, and no adapter term — each over `draws` noise/t draws
    seeded by (EVAL_SEED, clip row), so every model sees the same draws (a paired comparison)."""
    model = objective.model
    was_training = model.training
    model.eval()
    objective.to(device)
    net = data.backbone.net
    out: dict[str, list[float]] = {"layout_l2": [], "flow_predicted": [], "flow_true_layout": [], "flow_no_adapter": []}
    for row in rows:
        item = data.dataset[row]
        noise = draw_step_noise(step_generator(EVAL_SEED, row, 0), draws, data.backbone.seq["latent"],
                                net.config.latent_dim, 0.0, 0.0)
        noise.drop_text |= ~item["has_text"].expand(draws)
        noise = noise.to(device)
        inputs = [item[k][None].expand(draws, *item[k].shape).to(device) for k in FLOW_INPUTS]
        cls, patches, true = (t[row:row + 1].to(device) for t in (data.cls, data.patches, data.layouts))
        out["layout_l2"].append(layout_l2(model.predictor, cls, patches, true))
        yes, no = torch.ones(draws, dtype=torch.bool, device=device), torch.zeros(draws, dtype=torch.bool,
                                                                                  device=device)
        for key, layout, uncond in (("flow_predicted", objective.predict(cls, patches), no),
                                    ("flow_true_layout", true, no), ("flow_no_adapter", true, yes)):
            tokens = objective.tokens(layout).expand(draws, -1, -1)
            out[key].append(float(objective.flow(*inputs, noise, tokens, yes, uncond)))
    model.train(was_training)
    summary: dict[str, Any] = {k: float(np.mean(v)) if v else float("nan") for k, v in out.items()}
    summary.update({"clips": len(rows), "draws": draws, "names": [data.dataset.clips[r]["name"] for r in rows],
                    "per_clip": out})
    return summary


def _load_pair(predictor_file, adapter_file) -> tuple[LayoutPredictor, dict, LayoutAdapter, dict]:
    predictor, p_info = load_predictor(predictor_file)
    adapter, a_info = load_layout_adapter(adapter_file)
    return predictor, p_info, adapter, a_info


def _seen_by_predictor(p_info: dict, data: JointData, rows: list[int]) -> Optional[int]:
    """How many of `rows` were training clips of the loaded predictor's L2 stage (by clip seed), if known."""
    features = (p_info.get("training") or {}).get("features") or {}
    seeds, trained = features.get("seeds"), (p_info.get("training") or {}).get("train_clips")
    pf_seeds = data.meta.get("seeds")
    if not seeds or trained is None or not pf_seeds:
        return None
    seen = {s for s in seeds[:int(trained)] if s is not None}
    row_seed = dict(zip(data.meta["clips"], pf_seeds))
    return sum(row_seed.get(data.dataset.clips[r]["name"]) in seen for r in rows)


def evaluate_pair(flow_features, predictor_features, backbone, predictor_file, adapter_file, *, clips: int = 32,
                  draws: int = 8, device: str = "cpu") -> dict[str, Any]:
    """`joint-eval`: held-out metrics of a predictor + adapter pair on the last `clips` flow clips."""
    predictor, p_info, adapter, _ = _load_pair(predictor_file, adapter_file)
    data = load_joint_data(flow_features, predictor_features, backbone, predictor.config, adapter.config)
    rows = list(range(max(0, len(data.dataset) - clips), len(data.dataset)))
    result = heldout_metrics(build_objective(data, predictor, adapter, l2_weight=0.0), data, rows, draws=draws,
                             device=device)
    result.update({"predictor": Path(predictor_file).name, "adapter": Path(adapter_file).name,
                   "predictor_stage": (p_info.get("training") or {}).get("stage"),
                   "heldout_clips_in_predictor_training": _seen_by_predictor(p_info, data, rows)})
    return result


# ---------------------------------------------------------------------------------- train
def train_joint(flow_features: str | Path, predictor_features: str | Path, config: Optional[LayoutJointConfig],
                run_dir: str | Path, *, resume: bool = False, stop_at: Optional[int] = None, device: str = "auto",
                report: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or continue) the joint stage; returns the driver's summary (+ validation at the end)."""
    run_dir = Path(run_dir)
    state, config, ctx = prepare_run(run_dir, config, LayoutJointConfig, resume=resume, device=device,
                                     label="layout joint-stage run")
    if state is not None and state.get("kind") != KIND:
        raise ValueError(f"{run_dir / CHECKPOINT_NAME} is not a layout joint-stage run")
    predictor, p_info, adapter, a_info = _load_pair(config.predictor, config.adapter)
    data = load_joint_data(flow_features, predictor_features, config.backbone, predictor.config, adapter.config)
    usable = len(data.dataset) - config.holdout
    if usable < config.batch_size * ctx.world_size:
        raise FoleyError(f"{usable} training clips (after holding out {config.holdout}) < batch size × processes")
    objective = build_objective(data, predictor.train(), adapter.train(), l2_weight=config.l2_weight,
                                train_adapter=config.train_adapter)
    initial = {k: v.detach().clone() for k, v in objective.model.state_dict().items()}
    if ctx.is_main and state is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    net, seq = data.backbone.net, data.backbone.seq
    row_of = {c["name"]: i for i, c in enumerate(data.dataset.clips)}

    def step_loss(model, batch, generator, step) -> torch.Tensor:
        noise, keep, uncond = draw_control_step(generator, config, batch["has_text"], seq["latent"],
                                                net.config.latent_dim, config.layout_dropout)
        rows = torch.tensor([row_of[name] for name in batch["name"]])
        dev = ctx.device
        flow_inputs = [batch[k].to(dev) for k in FLOW_INPUTS]
        return model(data.cls[rows].to(dev), data.patches[rows].to(dev), data.layouts[rows].to(dev), *flow_inputs,
                     noise.to(dev), keep.to(dev), uncond.to(dev))

    features = {k: v for k, v in data.meta.items() if k not in ("clips", "seeds", "skipped")}
    task = TrainingTask(kind=KIND, config=config, trained=objective.model, objective=objective, num_samples=usable,
                        step_loss=step_loss, dataset=data.dataset, weights_key="joint", checkpoint_extra={
                            "predictor_config": json.dumps(predictor.config.to_dict()),
                            "adapter_config": json.dumps(adapter.config.to_dict()),
                            "predictor_training": json.dumps(p_info.get("training") or {}),
                            "adapter_training": json.dumps(a_info.get("training") or {}),
                            "features": json.dumps({"flow": str(flow_features), "predictor": str(predictor_features),
                                                    **features}),
                            "train_clips": usable, "val_clips": config.holdout})
    started = time.time()
    summary = run_training(task, ctx, run_dir, state=state, stop_at=stop_at)
    if ctx.is_main and config.holdout:
        rows = list(range(usable, len(data.dataset)))
        ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
        validation = {"step": summary["step"], "train_clips": usable, "val_clips": config.holdout,
                      "heldout_clips_in_predictor_training": _seen_by_predictor(p_info, data, rows)}
        for label, weights in (("initial", initial), ("raw", ckpt["joint"]), ("ema", ckpt["ema"])):
            objective.model.load_state_dict(weights)
            metrics = heldout_metrics(objective, data, rows, draws=config.eval_draws, device=ctx.device)
            validation[label] = {k: v for k, v in metrics.items() if k not in ("names", "per_clip")}
            validation[label]["per_clip"] = metrics["per_clip"]
        objective.model.load_state_dict(ckpt["joint"])
        validation["names"] = [data.dataset.clips[r]["name"] for r in rows]
        validation["seconds"] = round(time.time() - started, 1)
        (run_dir / "validation.json").write_text(json.dumps(validation, indent=1) + "\n")
        for label in ("initial", "raw", "ema"):
            v = validation[label]
            report(f"{label}: held-out layout L2 {v['layout_l2']:.4f}, flow loss with the predicted layout "
                   f"{v['flow_predicted']:.4f} (true layout {v['flow_true_layout']:.4f}, no adapter "
                   f"{v['flow_no_adapter']:.4f}) on {config.holdout} clips")
        summary["validation"] = validation
    return summary


# --------------------------------------------------------------------------------- export
def export_joint(run_dir: str | Path, predictor_out: str | Path, adapter_out: str | Path, *,
                 use_ema: bool = True) -> tuple[Path, Path]:
    """Write the run's predictor and adapter (existing file formats), marked as one joint-stage pair."""
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
    if ckpt.get("kind") != KIND:
        raise ValueError(f"{run_dir} is not a layout joint-stage run (checkpoint kind {ckpt.get('kind')!r})")
    config = LayoutJointConfig.from_dict(ckpt["config"])
    model = JointLayoutModel(LayoutPredictor(LayoutPredictorConfig.from_dict(json.loads(ckpt["predictor_config"]))),
                             LayoutAdapter(LayoutAdapterConfig.from_dict(json.loads(ckpt["adapter_config"]))))
    model.load_state_dict(ckpt["ema"] if use_ema else ckpt["joint"])
    predictor_out, adapter_out = Path(predictor_out), Path(adapter_out)
    pair_id = hashlib.sha256((weights_digest(model.predictor) + weights_digest(model.adapter)).encode()).hexdigest()[:16]
    validation = run_dir / "validation.json"
    summary = None
    if validation.is_file():
        v = json.loads(validation.read_text())
        summary = {"val_clips": v["val_clips"], **{label: {k: v[label][k] for k in
                   ("layout_l2", "flow_predicted", "flow_true_layout", "flow_no_adapter")} for label in
                   ("initial", "raw", "ema")}}
    joint = {"stage": STAGE, "step": int(ckpt["step"]), "weights": "ema" if use_ema else "model",
             "pair_id": pair_id, "predictor_file": predictor_out.name, "adapter_file": adapter_out.name,
             "l2_weight": config.l2_weight, "train_adapter": config.train_adapter, "lr": config.lr,
             "batch_size": config.batch_size, "seed": config.seed, "backbone": Path(config.backbone).name,
             "initial_predictor": Path(config.predictor).name, "initial_adapter": Path(config.adapter).name,
             "train_clips": int(ckpt["train_clips"]), "val_clips": int(ckpt["val_clips"]), "validation": summary}
    l2_stage = json.loads(ckpt["predictor_training"])
    predictor_training = {**l2_stage, **joint, "l2_stage": l2_stage.get("stage")}
    adapter_training = {**json.loads(ckpt["adapter_training"]), **joint, "backbone_frozen": True,
                        **{k: getattr(config, k) for k in ("layout_dropout", "video_dropout", "text_dropout",
                                                            "uncond_dropout", "holdout")}}
    return (save_predictor(model.predictor, predictor_out, predictor_training),
            save_layout_adapter(model.adapter, adapter_out, adapter_training))


# ------------------------------------------------------------------------------------ CLI
def add_parsers(sub, flag: Callable[[str], bool]) -> None:
    """`joint`, `joint-export`, `joint-eval` under `layout-predictor` (layout_predictor_trainer._parser)."""
    jt = sub.add_parser("joint", help="TiVA's joint stage: predictor + layout adapter on the frozen backbone")
    jt.add_argument("--features", required=True, help="flow-network feature folder (`extract`)")
    jt.add_argument("--predictor-features", required=True, help="`layout-predictor extract` folder of the same clips")
    jt.add_argument("--out", required=True, help="run folder")
    jt.add_argument("--resume", action="store_true")
    jt.add_argument("--stop-at", type=int)
    jt.add_argument("--device", default="auto")
    jt.add_argument("--threads", type=int, help="torch CPU threads")
    for f in fields(LayoutJointConfig):
        if f.name not in ("deterministic", "betas"):
            kind = flag if isinstance(f.default, bool) else type(f.default)
            jt.add_argument("--" + f.name.replace("_", "-"), type=kind, default=None)
    ex = sub.add_parser("joint-export", help="write the joint run's predictor and adapter (a pair)")
    ex.add_argument("--run", required=True)
    ex.add_argument("--predictor-out", required=True)
    ex.add_argument("--adapter-out", required=True)
    ex.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    ev = sub.add_parser("joint-eval", help="held-out layout L2 and flow loss of a predictor + adapter pair")
    ev.add_argument("--features", required=True)
    ev.add_argument("--predictor-features", required=True)
    ev.add_argument("--predictor", required=True)
    ev.add_argument("--adapter", required=True)
    ev.add_argument("--backbone", required=True)
    ev.add_argument("--clips", type=int, default=32, help="the last N flow clips")
    ev.add_argument("--draws", type=int, default=8)
    ev.add_argument("--threads", type=int)
    ev.add_argument("--json", help="write the result here")


def run_command(args) -> int:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if args.command == "joint":
        given = {f.name: getattr(args, f.name) for f in fields(LayoutJointConfig)
                 if getattr(args, f.name, None) is not None}
        config = LayoutJointConfig(**given) if (given or not args.resume) else None
        summary = train_joint(args.features, args.predictor_features, config, args.out, resume=args.resume,
                              stop_at=args.stop_at, device=args.device)
        report_stop(summary, args.out)
    elif args.command == "joint-export":
        paths = export_joint(args.run, args.predictor_out, args.adapter_out, use_ema=not args.raw)
        print("wrote " + " and ".join(str(p) for p in paths))
    else:
        result = evaluate_pair(args.features, args.predictor_features, args.backbone, args.predictor, args.adapter,
                               clips=args.clips, draws=args.draws)
        text = json.dumps(result, indent=1)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text + "\n")
        print(json.dumps({k: v for k, v in result.items() if k not in ("names", "per_clip")}, indent=1))
    return 0
