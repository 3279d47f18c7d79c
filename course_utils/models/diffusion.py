"""Denoising diffusion: the forward process, the epsilon objective, DDPM and DDIM sampling.

Three papers, and the equations the code cites:

- Ho, Jain & Abbeel 2020, *Denoising Diffusion Probabilistic Models* (DDPM, arXiv:2006.11239).
  The forward process adds Gaussian noise in T small steps with variances beta_1..beta_T (eq. 2);
  with alpha_t = 1 - beta_t and abar_t = prod_{s<=t} alpha_s it has a closed form (eq. 4),
  q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I). A network eps_theta(x_t, t) learns to predict
  the noise; the "simple" loss is ||eps - eps_theta(x_t, t)||^2 (eq. 14, algorithm 1), and
  sampling walks back from pure noise one step at a time (algorithm 2, eq. 11).
- Song, Meng & Ermon 2021, *Denoising Diffusion Implicit Models* (DDIM, arXiv:2010.02502): the same
  trained network, a deterministic update (eq. 12 with sigma = 0) that can skip steps.
- Nichol & Dhariwal 2021, *Improved Denoising Diffusion Probabilistic Models* (arXiv:2102.09672):
  the cosine schedule (eq. 17), which destroys information more slowly than the linear one.
- Ho & Salimans 2022, *Classifier-Free Diffusion Guidance* (arXiv:2207.12598): mix a conditional
  and an unconditional prediction (chapter 07 uses it; it lives here with the other update rules).

Indexing: the papers count t = 1..T; the code, like diffusers, counts t = 0..T-1, so ``betas[t]``
is the paper's beta_{t+1}, and the last reverse step is at t = 0.

The denoiser is diffusers' ``UNet2DModel`` built small (``denoiser_config``, ``build_denoiser``); chapter 07's
``UNet2DConditionModel`` is the same network with cross-attention added. Its sinusoidal time
embedding is ``timestep_embedding`` here, which equals the model's own ``time_proj``.

Legend: B batch, C channels, H height, W width, T diffusion steps, S sampling steps, D embedding width.

Training is in ``course_utils.training.diffusion``; the digit judge in ``course_utils.models.judges``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

__all__ = ["classifier_free_guidance", "linear_betas", "cosine_betas", "alphas_cumprod", "snr", "q_sample", "predict_x0", "ddpm_step", "ddim_step", "ddim_timesteps", "ideal_eps", "Sampled", "predict_eps", "sample_ddpm", "sample_ddim", "timestep_embedding", "denoiser_config", "build_denoiser"]


def classifier_free_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Ho & Salimans 2022, eq. 6 written as diffusers does: eps_uncond + w (eps_cond - eps_uncond).

    ``guidance_scale`` w = 1 gives the conditional prediction, w = 0 the unconditional one, and
    w > 1 pushes past the conditional one, away from the unconditional. (The paper writes
    (1 + w') eps_cond - w' eps_uncond, the same thing with w = 1 + w'.) Any shapes that broadcast.
    """
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM's schedule (section 4): T variances rising linearly from 1e-4 to 0.02, float32 (T,)."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule (eq. 17), float32 (T,).

    abar(t) = f(t) / f(0) with f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2); beta_t = 1 - abar_t / abar_{t-1},
    clipped at ``max_beta`` so the last steps are not singular. The small offset s keeps beta_1 from
    being too small near t = 0.
    """
    def f(t: float) -> float:
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - f(t + 1) / f(t), max_beta) for t in range(T)]
    return torch.tensor(betas, dtype=torch.float32)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """abar_t = prod_{s<=t} (1 - beta_s), (T,): how much of x_0 is left at step t (DDPM eq. 4)."""
    return torch.cumprod(1.0 - betas, dim=0)


def snr(abar: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio abar_t / (1 - abar_t) of q(x_t | x_0) (Kingma et al. 2021's SNR(t))."""
    return abar / (1.0 - abar)


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) in one go (DDPM eq. 4): sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.

    ``x0`` and ``noise`` (B, C, H, W); ``t`` (B,) long, one step per sample; ``alphas_cumprod`` (T,).
    """
    abar = alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1)  # (B, 1, 1, 1), broadcasts over C, H, W
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise  # (B, C, H, W)


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, abar_t) -> torch.Tensor:
    """Invert eq. 4 with the predicted noise: x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) (DDIM eq. 9)."""
    abar_t = torch.as_tensor(abar_t, dtype=x_t.dtype)
    return (x_t - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()


def ddpm_step(x_t: torch.Tensor, t: int, eps: torch.Tensor, betas: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One ancestral step x_t -> x_{t-1} (DDPM algorithm 2, eq. 11) with sigma_t^2 = beta_t.

    x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps) + sigma_t z, and no noise at t = 0.
    ``x_t``, ``eps`` and ``noise`` (B, C, H, W); ``t`` an int; ``betas`` (T,). Ho et al. report that
    sigma_t^2 = beta_t and the posterior's beta~_t give similar samples (section 3.2); this is the first.
    """
    beta_t = betas[t]
    alpha_t = 1 - beta_t
    abar_t = alphas_cumprod(betas)[t]
    mean = (x_t - beta_t / (1 - abar_t).sqrt() * eps) / alpha_t.sqrt()  # 1. the mean, eq. 11
    if t == 0:
        return mean  # 2. the last step returns the mean: no noise is added
    return mean + beta_t.sqrt() * noise  # 2. sigma_t z, sigma_t = sqrt(beta_t)


def ddim_step(x_t: torch.Tensor, t: int, t_prev: int, eps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step x_t -> x_{t_prev} (Song et al. eq. 12 with sigma = 0, i.e. eta = 0).

    ``t_prev`` < t may skip many steps; ``t_prev = -1`` means "past the end": abar = 1, a clean image.
    """
    abar_t = alphas_cumprod[t]
    abar_prev = alphas_cumprod[t_prev] if t_prev >= 0 else torch.ones(())
    x0_hat = predict_x0(x_t, eps, abar_t)  # 1. predicted x_0
    direction = (1 - abar_prev).sqrt() * eps  # 2. direction pointing to x_t
    return abar_prev.sqrt() * x0_hat + direction  # 3. x_{t_prev}, eq. 12


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """The S steps DDIM visits, largest first: 0, T/S, 2T/S, ... reversed (diffusers' default "leading")."""
    stride = T // steps
    return [i * stride for i in reversed(range(steps))]


def ideal_eps(x_t: torch.Tensor, t: int, data: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The best possible noise prediction when the data are exactly the N images ``data`` (N, C, H, W).

    Under q, x_t came from image i with probability proportional to N(x_t; sqrt(abar_t) x_i, (1 - abar_t) I);
    E[x_0 | x_t] is the average of the images with those weights, and eps = (x_t - sqrt(abar_t) E[x_0 | x_t])
    / sqrt(1 - abar_t). A network trained to convergence on ``data`` would predict this; sampling with it
    reproduces training images, which is why real models are judged on what they do *not* memorise.
    """
    abar = alphas_cumprod[t]
    d2 = torch.cdist(x_t.flatten(1), abar.sqrt() * data.flatten(1)) ** 2  # (B, N) squared distances
    w = (-d2 / (2 * (1 - abar))).softmax(dim=-1)  # (B, N) posterior over the images
    x0 = (w @ data.flatten(1)).view_as(x_t)  # (B, C, H, W), E[x_0 | x_t]
    return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()


class Sampled(NamedTuple):
    """What a sampler returns: the images and, if asked for, snapshots along the way."""

    images: torch.Tensor                 # (B, C, H, W), x_0
    trajectory: dict[int, torch.Tensor]  # step t -> x_t (after the update at t), for the steps asked for


def predict_eps(model: nn.Module, x_t: torch.Tensor, t) -> torch.Tensor:
    """eps_theta(x_t, t): a diffusers model's ``.sample``, or a plain module's output, (B, C, H, W).

    ``t`` is one step for the whole batch (an int) or one per sample, (B,) long.
    """
    steps = torch.as_tensor(t, dtype=torch.long, device=x_t.device).expand(len(x_t))  # (B,)
    out = model(x_t, steps)
    return out.sample if hasattr(out, "sample") else out  # (B, C, H, W)


def _start(shape, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator)  # x_T ~ N(0, I)


@torch.no_grad()
def sample_ddpm(model: nn.Module, shape: tuple[int, ...], betas: torch.Tensor, generator: torch.Generator | None = None,
                keep: tuple[int, ...] = (), progress: bool = True, desc: str = "DDPM") -> Sampled:
    """DDPM ancestral sampling (algorithm 2): all T steps from x_T ~ N(0, I) down to x_0.

    ``generator`` makes it repeatable; ``keep`` lists the steps t whose x_t go into the trajectory.
    """
    from tqdm.auto import tqdm

    model.eval()
    x = _start(shape, generator)  # (B, C, H, W)
    trajectory = {}
    # mininterval: redrawing a notebook bar every step floods the kernel's iopub channel
    for t in tqdm(range(len(betas) - 1, -1, -1), desc=desc, disable=not progress, mininterval=1.0):
        eps = predict_eps(model, x, t)
        noise = torch.randn(shape, generator=generator)  # z ~ N(0, I); ddpm_step ignores it at t = 0
        x = ddpm_step(x, t, eps, betas, noise)
        if t in keep:
            trajectory[t] = x.clone()
    return Sampled(x, trajectory)


@torch.no_grad()
def sample_ddim(model: nn.Module, shape: tuple[int, ...], betas: torch.Tensor, steps: int,
                generator: torch.Generator | None = None, keep: tuple[int, ...] = (), progress: bool = True,
                desc: str = "DDIM") -> Sampled:
    """DDIM sampling with eta = 0 over ``steps`` of the T steps (``ddim_timesteps``): deterministic given x_T."""
    from tqdm.auto import tqdm

    model.eval()
    abar = alphas_cumprod(betas)  # (T,)
    x = _start(shape, generator)  # (B, C, H, W)
    ts = ddim_timesteps(len(betas), steps)
    trajectory = {}
    for i in tqdm(range(len(ts)), desc=desc, disable=not progress, mininterval=1.0):
        t = ts[i]
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        x = ddim_step(x, t, t_prev, predict_eps(model, x, t), abar)
        if t in keep:
            trajectory[t] = x.clone()
    return Sampled(x, trajectory)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """The sinusoidal embedding of the step t (Vaswani et al.'s positions, used by DDPM), (B, D).

    Half the D numbers are cos(t w_k), half sin(t w_k), with frequencies w_k = max_period^(-k / (D/2)),
    k = 0..D/2-1: cosines first, the order of ``UNet2DModel``'s ``time_proj`` (flip_sin_to_cos=True).
    """
    half = dim // 2
    w = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)  # (D/2,)
    angles = t.float()[:, None] * w[None, :]  # (B, D/2)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)  # (B, D)


def denoiser_config(image_size: int = 16, channels: int = 1, widths: tuple[int, ...] = (32, 64)) -> dict:
    """The arguments of a small diffusers ``UNet2DModel``: two resolutions, one ResNet block each way."""
    return dict(
        sample_size=image_size,          # H = W
        in_channels=channels,            # x_t in
        out_channels=channels,           # eps out, same shape
        block_out_channels=widths,       # channels at 16 px, then at 8 px (Stable Diffusion: 320 ... 1280)
        layers_per_block=1,              # ResNet blocks per resolution on the way down (up: one more)
        down_block_types=("DownBlock2D",) * len(widths),
        up_block_types=("UpBlock2D",) * len(widths),
        norm_num_groups=8,               # GroupNorm groups (the default 32 is too many for 32 channels)
    )


def build_denoiser(image_size: int = 16, channels: int = 1, widths: tuple[int, ...] = (32, 64)) -> nn.Module:
    """A freshly initialised small ``UNet2DModel`` (seed torch first for a repeatable one)."""
    from diffusers import UNet2DModel

    return UNet2DModel(**denoiser_config(image_size, channels, widths))
