"""Euler flow-matching sampler with classifier-free guidance (spec §4).

Convention: t = 0 is Gaussian noise, t = 1 is data; the network predicts dx/dt. Integration
happens in the network's *normalised* latent space; `generate_latents` un-normalises at the end.
The state keeps the dtype of x0 (pass fp32 noise to accumulate in fp32 with a bf16 network).
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

# callback(step_index, total_steps, x_current, x1_estimate); it may raise to abort sampling.
StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]
# state_hook(k, t_k, x) -> x: rewrites the state at grid time t_k before the velocity is evaluated
# there (k = 0 ... steps - 1) and once more on the final state (k = steps, t = 1). Used for
# inpainting-style constraints such as latent prompting (sampling/latent_prompt.py).
StateHook = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
# velocity_hook(k, t_k, x, v) -> v: rewrites the velocity evaluated at step k before the Euler
# update (and before the callback's clean-latent estimate). Used for training-free guidance
# (controls/guidance.py). A hook with a `bind(velocity)` method is first given the sampler's CFG
# velocity function v(x, t), so it can differentiate through the network if it wants to.
VelocityHook = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_STEPS = 25
DEFAULT_CFG_STRENGTH = 4.5


class FlowNetwork(Protocol):
    """What the sampler needs from a network (MMAudioNetwork satisfies it)."""

    def predict_flow(self, latent: torch.Tensor, t, conditions): ...
    def preprocess_conditions(self, clip_f, sync_f, text_f): ...
    def empty_conditions(self, batch_size: int, negative_text_f=None): ...
    def unnormalize(self, latent: torch.Tensor) -> torch.Tensor: ...


def draw_noise(batch_size: int, latent_len: int, latent_dim: int, seed: int, *,
               device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """x0 ~ N(0, I) of shape (B, latent_len, latent_dim), channel-last as the reference.

    Drawn in fp32 from a CPU generator seeded with `seed`, so a seed gives the same noise on
    every device (equal to the official `generate` with a CPU generator).
    """
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn(batch_size, latent_len, latent_dim, generator=generator, dtype=torch.float32)
    return noise.to(device=device, dtype=dtype)


def time_grid(steps: int) -> torch.Tensor:
    """t_k = linspace(0, 1, steps + 1) in fp32; the network is evaluated at t_0 ... t_{steps-1}."""
    if steps < 1:
        raise ValueError(f"need at least one sampling step, got {steps}")
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float32)


def uses_guidance(cfg_strength: float) -> bool:
    """Strength below 1 switches guidance off entirely (conditional branch only)."""
    return cfg_strength >= 1.0


class GuidedVelocity:
    """v(x, t) with CFG: s * v_cond + (1 - s) * v_uncond, both branches in one batched call."""

    def __init__(self, net: FlowNetwork, conditions, uncond_conditions, cfg_strength: float, batch_size: int):
        self.net = net
        self.cfg_strength = float(cfg_strength)
        self.guided = uses_guidance(cfg_strength)
        self.conditions = conditions.expand(batch_size)
        if self.guided:
            if uncond_conditions is None:
                raise ValueError(f"CFG strength {cfg_strength} >= 1 needs unconditional conditions")
            # Built once: [conditional | unconditional] along the batch.
            self.joint = type(conditions).concat([self.conditions, uncond_conditions.expand(batch_size)])

    def __call__(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        if not self.guided:
            return self.net.predict_flow(x, t, self.conditions)
        v_cond, v_uncond = self.net.predict_flow(torch.cat([x, x]), t, self.joint).chunk(2)
        return self.cfg_strength * v_cond + (1.0 - self.cfg_strength) * v_uncond


@torch.no_grad()
def sample_euler(net: FlowNetwork, x0: torch.Tensor, conditions, uncond_conditions=None, *,
                 steps: int = DEFAULT_STEPS, cfg_strength: float = DEFAULT_CFG_STRENGTH,
                 callback: StepCallback | None = None,
                 state_hook: StateHook | None = None,
                 velocity_hook: VelocityHook | None = None) -> torch.Tensor:
    """Integrate from noise x0 (t=0) to data (t=1); returns the final *normalised* latent.

    After each step, `callback(k, steps, x, x1_estimate)` gets the new state and the clean-latent
    estimate x_k + (1 - t_k) * v_k (for previews); raising from it aborts sampling.
    `state_hook` (see StateHook) is applied before every velocity evaluation and to the final
    state, so the callback already sees the rewritten state; None = plain sampling.
    `velocity_hook` (see VelocityHook) may replace each step's velocity; None = plain sampling,
    bit for bit.
    """
    velocity = GuidedVelocity(net, conditions, uncond_conditions, cfg_strength, x0.shape[0])
    if velocity_hook is not None and hasattr(velocity_hook, "bind"):
        velocity_hook.bind(velocity)
    grid = time_grid(steps)
    x = x0 if state_hook is None else state_hook(0, grid[0], x0)
    for k in range(steps):
        t, dt = grid[k], grid[k + 1] - grid[k]
        v = velocity(x, t)
        if velocity_hook is not None:
            v = velocity_hook(k, t, x, v)
        x1_estimate = x + (1.0 - t) * v if callback is not None else None
        x = x + dt * v
        if state_hook is not None:
            x = state_hook(k + 1, grid[k + 1], x)
        if callback is not None:
            callback(k, steps, x, x1_estimate)
    return x


@torch.no_grad()
def generate_latents(net: FlowNetwork, x0: torch.Tensor, clip_f: torch.Tensor | None,
                     sync_f: torch.Tensor | None, text_f: torch.Tensor | None, *,
                     negative_text_f: torch.Tensor | None = None, steps: int = DEFAULT_STEPS,
                     cfg_strength: float = DEFAULT_CFG_STRENGTH, callback: StepCallback | None = None,
                     normalized: bool = False, state_hook: StateHook | None = None,
                     velocity_hook: VelocityHook | None = None) -> torch.Tensor:
    """Full sampling run from raw features. None clip/sync (text-only) or text use the empty features.

    The unconditional branch uses empty clip/sync and `negative_text_f` (or `empty_string_feat`).
    Returns the latent un-normalised with the net's statistics, or the sampler state if
    `normalized`. `state_hook` and `velocity_hook` are passed on to `sample_euler`.
    """
    batch = x0.shape[0]
    conditions = net.preprocess_conditions(clip_f, sync_f, text_f).expand(batch)
    uncond = net.empty_conditions(batch, negative_text_f) if uses_guidance(cfg_strength) else None
    x1 = sample_euler(net, x0, conditions, uncond, steps=steps, cfg_strength=cfg_strength, callback=callback,
                      state_hook=state_hook, velocity_hook=velocity_hook)
    return x1 if normalized else net.unnormalize(x1)
