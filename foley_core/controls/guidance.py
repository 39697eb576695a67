"""Training-free envelope / layout guidance on the unchanged flow backbone.

At the guided Euler steps k (a range of the schedule), with state x at time t and velocity v:
1. estimate the clean latent x̂₁ = x + (1 − t)·v (the point the straight flow path reaches);
2. decode it to a log-mel with the VAE decoder (differentiable);
3. compute a differentiable envelope proxy (and/or the TiVA layout) of that mel;
4. take the gradient g of the squared distance to the target with respect to the state;
5. steer: v ← v − strength · STEP / (1 − t) · g / rms(g).
With `iterations` = K > 1, steps 1–5 repeat K times within the sampler step, each with 1/K of the
move and the gradient re-taken at the moved estimate (a few small steps follow the curved loss
better than one big one; default K = 3, see "Iterations" below).
Step 5 moves the clean-latent estimate by `strength · STEP` (RMS, in the network's normalised
latent space, where the data has unit variance) per guided step: dividing by (1 − t) turns a
displacement of x̂₁ into a velocity, and normalising g keeps `strength` independent of the loss's
scale, the model and the clip (no per-model tuning of a raw gradient factor).

Gradient approximation (`gradient=`):
- "detached" (default): v is treated as a constant, so ∂x̂₁/∂x = I and g = ∇_{x̂₁} L — one VAE
  decoder backward per guided step, no extra network call;
- "network": x̂₁(x) = x + (1 − t)·v(x) is differentiated through the flow network (one more
  CFG forward + backward per guided step, about 3× the cost of a plain step).
Measured (docs/benchmarks.md, "Envelope guidance"; embedded model set, 2-core CPU): the two
gradients agree only loosely (cosine 0.60 ± 0.23 over 50 guided steps), the network one costs
about 10× more per guided step (0.54 s vs 0.056 s) and 2.5× more per clip, and on the tuning clips
it lowered E-L1 about as much (−44 % vs −42 % at equal strength) with a smaller onset gain. So
"detached" is the default; it also works in hosts that load models under inference mode.

Iterations (gradient "detached"; with "network" the gradient is taken at the sampler's state, so
extra iterations repeat it): on the synthetic benchmark's tuning clips K = 3 lowered E-L1 by 52.5 %
vs 47.1 % for K = 1 at the same strength, and on the 20 held-out clips by 40 % vs 21 %
(docs/benchmarks.md, "Envelope guidance"); each extra iteration costs one more VAE decode and
backward per guided step.

Envelope proxy: the RMS envelope (controls/envelope.py) needs a waveform, i.e. a vocoder in the
loop. Instead we use the frame energy of the decoded mel, e(j) = sqrt(mean_m M_lin(m, j)²)
(M_lin = the mel magnitudes, 10^mel or e^mel), smoothed by the envelope's own 0.12 s moving
average, and compare shapes: proxy and target are each divided by their maximum over the span
(the RMS envelope is computed on peak-normalised audio, so its absolute level is not under the
generator's control anyway). Distance: mean squared difference over the mel frames of the span.
Layout: TiVA's normalised, area-resized mel (controls/layout.py) of the decoded mel, restricted
to the bands below 8 kHz, against the target layout resampled to the same grid.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..decoding import latents_to_mel_differentiable
from ..errors import FoleyError
from ..models.mel import MEL_SETTINGS
from .envelope import ENVELOPE_SAMPLE_RATE, ENVELOPE_HOP, ENVELOPE_SMOOTHING, Envelope, envelope_values
from .layout import Layout, layout_span, mel_band_limit, normalize_and_resize

# x̂₁ displacement (RMS, normalised latent units) per guided step at strength 1. Tuned on the
# synthetic benchmark's tuning seeds (docs/benchmarks.md): strength 1 = the lowest tuning E-L1.
STEP = 1.0
GRADIENTS = ("detached", "network")
DEFAULT_START, DEFAULT_END = 0.0, 1.0
DEFAULT_ITERATIONS = 3


def mel_energy(log_mel: torch.Tensor, log: str, band_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B, n_mels, T) log-mel → (B, T) frame energy proxy sqrt(Σ_m w_m M_lin²), differentiable.

    w = None: the plain mean over bands. With `band_weights` (mel_band_weights), each band counts
    by its bandwidth, as the energy of the linear spectrum it summarises would (Parseval).
    """
    linear = torch.pow(10.0, log_mel.float()) if log == "log10" else torch.exp(log_mel.float())
    if band_weights is None:
        return torch.sqrt(linear.pow(2).mean(dim=1) + 1e-12)
    w = band_weights.to(device=linear.device, dtype=linear.dtype)[None, :, None]
    return torch.sqrt((w * linear.pow(2)).sum(dim=1) + 1e-12)


def mel_band_weights(settings) -> torch.Tensor:
    """Bandwidth of each Slaney mel band (f_(m+2) − f_m, as a fraction of the total): the
    Slaney-normalised filters divide by it, so a wide high band's magnitude understates its energy."""
    import librosa

    edges = librosa.mel_frequencies(settings.n_mels + 2, fmin=settings.fmin, fmax=settings.fmax)
    width = torch.as_tensor(edges[2:] - edges[:-2], dtype=torch.float32)
    return width / width.sum()


def smooth(curve: torch.Tensor, kernel: int) -> torch.Tensor:
    """Centred moving average over the last axis with edge replication (the envelope's filter)."""
    if kernel <= 1:
        return curve
    left = (kernel - 1) // 2
    padded = torch.nn.functional.pad(curve[:, None], (left, kernel - 1 - left), mode="replicate")
    return torch.nn.functional.avg_pool1d(padded, kernel, stride=1)[:, 0]


def envelope_proxy(log_mel: torch.Tensor, log: str, mel_rate: float,
                   band_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Smoothed mel energy at the mel frame rate, (B, T); not yet normalised."""
    kernel = max(1, int(round(ENVELOPE_SMOOTHING * ENVELOPE_HOP / ENVELOPE_SAMPLE_RATE * mel_rate)))
    return smooth(mel_energy(log_mel, log, band_weights), kernel)


def peak_normalized(curve: torch.Tensor) -> torch.Tensor:
    return curve / curve.amax(dim=-1, keepdim=True).clamp(min=1e-8)


def envelope_at(envelope: Envelope, times: np.ndarray) -> np.ndarray:
    """The envelope's value at `times` (linear, edge values held)."""
    return np.interp(times, envelope.times(), envelope_values(envelope)).astype(np.float32)


def _has_inference_tensors(module) -> bool:
    return any(t.is_inference() for t in itertools.chain(module.parameters(), module.buffers()))


def guided_steps(steps: int, start: float, end: float) -> range:
    """Step indices k with start ≤ k / steps < end (fractions of the schedule)."""
    if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0):
        raise FoleyError(f"control_start/control_end are fractions of the steps in [0, 1]; got {start}, {end}.")
    first = int(math.ceil(start * steps - 1e-9))
    last = int(math.ceil(end * steps - 1e-9))
    return range(first, max(first, last))


@dataclass
class GuidanceReport:
    """What the guidance did, for the node's info and for measurements."""

    steps: list
    losses: list  # loss before each guided step (mean over the batch)

    def summary(self) -> str:
        if not self.steps:
            return "no guided steps"
        return (f"guided steps {self.steps[0]}..{self.steps[-1]} ({len(self.steps)}), "
                f"distance {self.losses[0]:.4f} → {self.losses[-1]:.4f}")


class ControlGuidance:
    """A `velocity_hook` for sample_euler (see module doc). Targets are on the output timeline."""

    def __init__(self, vae, network, *, envelope: Optional[Envelope] = None, layout: Optional[Layout] = None,
                 strength: float = 1.0, start: float = DEFAULT_START, end: float = DEFAULT_END, steps: int,
                 gradient: str = "detached", envelope_weight: float = 1.0, layout_weight: float = 1.0,
                 distance: str = "l2", band_weighting: bool = False, iterations: int = DEFAULT_ITERATIONS):
        if envelope is None and layout is None:
            raise FoleyError("Guidance needs an envelope or a layout target.")
        if gradient not in GRADIENTS:
            raise FoleyError(f"gradient must be one of {GRADIENTS}, got {gradient!r}.")
        if distance not in ("l1", "l2"):
            raise FoleyError(f"distance must be 'l1' or 'l2', got {distance!r}.")
        self.distance = distance
        if int(iterations) < 1:
            raise FoleyError(f"guidance iterations must be >= 1, got {iterations}.")
        self.iterations = int(iterations)
        self.band_weights = mel_band_weights(MEL_SETTINGS[vae.cfg.mode]) if band_weighting else None
        if strength < 0:
            raise FoleyError(f"control_strength must be >= 0, got {strength}.")
        mode = vae.cfg.mode
        self.vae, self.network = vae, network
        self.mel = MEL_SETTINGS[mode]
        self.mel_rate = self.mel.sample_rate / self.mel.hop  # 2 mel frames per latent
        self.envelope, self.layout = envelope, layout
        self.strength, self.gradient = float(strength), gradient
        self.envelope_weight, self.layout_weight = float(envelope_weight), float(layout_weight)
        self.active = set(guided_steps(steps, start, end))
        self.prompt_latents = 0  # leading latents of the window that are a prompt, not output
        self.start_s = 0.0  # where the window's target span starts on the output timeline
        self.band_limit = mel_band_limit(self.mel) if layout is not None else None
        self.report = GuidanceReport([], [])
        self._velocity: Optional[Callable] = None
        self._vae_for_grad = None
        self._latent_stats = None

    # --- sampler protocol -------------------------------------------------------------------
    def bind(self, velocity: Callable) -> None:
        """Called by sample_euler with its CFG velocity v(x, t) (used by gradient="network")."""
        self._velocity = velocity

    def for_window(self, prompt_latents: int, start_s: float) -> "ControlGuidance":
        """A copy aimed at one window of long generation: [prompt | target starting at start_s]."""
        self._decoder()  # prepare once, shared by the windows
        window = copy.copy(self)
        window.prompt_latents, window.start_s = int(prompt_latents), float(start_s)
        window._velocity = None
        return window

    def __call__(self, k: int, t, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if k not in self.active or self.strength == 0:
            return v
        scale = self.strength * STEP / self.iterations / max(1.0 - float(t), 1e-3)
        steered = v.float()
        for i in range(self.iterations):  # each re-decodes x̂₁ = x + (1 − t)·v at the steered v
            grad, loss = self.gradient_at(t, x, steered, self.gradient)
            if i == 0:
                self.report.steps.append(k)
                self.report.losses.append(float(loss.mean()))
            rms = grad.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp(min=1e-12)
            steered = steered - scale * grad / rms
        return steered.to(v.dtype)

    def gradient_at(self, t, x: torch.Tensor, v: torch.Tensor, gradient: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(∂L/∂x under the chosen approximation, L per clip), both detached."""
        t_f = float(t)
        # Hosts run nodes under torch.inference_mode(), where no graph can be built; leave it for
        # this computation and work on normal (non-inference) copies of the tensors.
        with torch.inference_mode(False), torch.enable_grad():
            x, v = x.detach().float().clone(), v.detach().float().clone()
            if gradient == "network":
                if self._velocity is None:
                    raise FoleyError("gradient='network' needs the sampler to bind its velocity.")
                if _has_inference_tensors(self.network):
                    raise FoleyError("gradient='network' cannot differentiate a network loaded under "
                                     "inference mode (as in ComfyUI); use gradient='detached'.")
                leaf = x.requires_grad_(True)
                x1 = leaf + (1.0 - t_f) * self._velocity(leaf.to(self._dtype(v)), t).float()
            else:  # v constant: ∂x̂₁/∂x = I
                leaf = (x + (1.0 - t_f) * v).requires_grad_(True)
                x1 = leaf
            loss = self.loss(x1)
            (grad,) = torch.autograd.grad(loss.sum(), leaf)
        return grad.detach(), loss.detach()

    def _dtype(self, like: torch.Tensor) -> torch.dtype:
        return getattr(self.network, "weight_dtype", like.dtype)

    def _decoder(self):
        """The VAE, or (once) a copy whose weights autograd can use: modules built or loaded under
        inference mode hold inference tensors, which cannot be saved for backward."""
        if self._vae_for_grad is None:
            self._vae_for_grad = copy.deepcopy(self.vae) if _has_inference_tensors(self.vae) else self.vae
        return self._vae_for_grad

    def _unnormalize(self, x1: torch.Tensor) -> torch.Tensor:
        """network.unnormalize with plain copies of its statistics (same maths, fp32)."""
        if not hasattr(self.network, "latent_std"):  # a wrapper without the statistics
            return self.network.unnormalize(x1).float()
        if self._latent_stats is None:
            self._latent_stats = (self.network.latent_mean.detach().float().clone(),
                                  self.network.latent_std.detach().float().clone())
        mean, std = self._latent_stats
        return x1.float() * std.to(x1.device) + mean.to(x1.device)

    # --- the distance -----------------------------------------------------------------------
    def loss(self, x1_normalized: torch.Tensor) -> torch.Tensor:
        """Per-clip distance (B,) of the decoded clean-latent estimate to the targets."""
        latents = self._unnormalize(x1_normalized)
        mel = latents_to_mel_differentiable(self._decoder(), latents).float()  # (B, n_mels, 2N)
        mel = mel[:, :, 2 * self.prompt_latents:]  # the window's output span only
        frames = mel.shape[-1]
        total = torch.zeros(mel.shape[0], device=mel.device)
        if self.envelope is not None and self.envelope_weight:
            times = self.start_s + np.arange(frames) / self.mel_rate
            target = torch.from_numpy(envelope_at(self.envelope, times)).to(mel.device)
            proxy = peak_normalized(envelope_proxy(mel, self.mel.log, self.mel_rate, self.band_weights))
            diff = proxy - peak_normalized(target[None])
            # l1 = the E-L1 metric's own distance (its gradient weighs every frame alike).
            per_frame = diff.abs() if self.distance == "l1" else diff.pow(2)
            total = total + self.envelope_weight * per_frame.mean(dim=-1)
        if self.layout is not None and self.layout_weight:
            duration = frames / self.mel_rate
            rows = max(1, int(round(duration * self.layout.frame_rate)))
            target = torch.from_numpy(layout_span(self.layout, self.start_s, duration, rows)).to(mel.device)
            ours = normalize_and_resize(mel[:, :self.band_limit], rows, self.layout.n_bands)
            total = total + self.layout_weight * (ours - target[None]).pow(2).mean(dim=(1, 2))
        return total
