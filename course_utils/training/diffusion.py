"""Training a denoiser to predict the noise (DDPM algorithm 1; chapter 06)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models.diffusion import alphas_cumprod, predict_eps, q_sample
from course_utils.training.loop import fit
from course_utils.training.remember import remembered

__all__ = ["DiffusionTrainConfig", "DiffusionHistory", "train_diffusion"]


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """How ``train_diffusion`` trains: the simple epsilon loss, random t, AdamW, an EMA of the weights."""

    steps: int = 900            # optimisation steps (the lecture's run: about 80 s on 2 cores)
    batch_size: int = 128       # images per step, each at its own random t
    lr: float = 2e-3            # AdamW's learning rate, constant after a short warm-up
    warmup: int = 50            # steps of linear warm-up
    ema: float = 0.99           # the sampler uses an exponential moving average of the weights (0: off)
    seed: int = 0               # the data order, the steps t and the noise


@dataclass
class DiffusionHistory:
    """What ``train_diffusion`` measured: the loss every step and the training time."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


@remembered
def train_diffusion(model: nn.Module, images: torch.Tensor, betas: torch.Tensor,
                    config: DiffusionTrainConfig = DiffusionTrainConfig(), progress: bool = True,
                    desc: str = "diffusion") -> DiffusionHistory:
    """Train ``model`` to predict the noise (DDPM algorithm 1); images (N, C, H, W) in [-1, 1].

    Each step: draw x_0 from the data, t uniformly from 0..T-1 and eps ~ N(0, I), form x_t with
    ``q_sample`` and minimise ||eps - eps_theta(x_t, t)||^2. At the end the model holds the EMA weights.
    """
    gen = torch.Generator().manual_seed(config.seed)
    abar = alphas_cumprod(betas)  # (T,)

    def loss(step: int) -> torch.Tensor:
        idx = torch.randint(len(images), (config.batch_size,), generator=gen)  # (B,)
        x0 = images[idx]  # (B, C, H, W)
        t = torch.randint(len(betas), (config.batch_size,), generator=gen)  # (B,)
        eps = torch.randn(x0.shape, generator=gen)  # (B, C, H, W)
        x_t = q_sample(x0, t, eps, abar)  # (B, C, H, W)
        return F.mse_loss(predict_eps(model, x_t, t), eps)  # the simple loss, eq. 14

    run = fit(model, loss, config.steps, lr=config.lr, warmup=config.warmup, schedule="constant",
              ema=config.ema or None, progress=progress, desc=desc)
    if run.ema is not None:
        model.load_state_dict(run.ema.state_dict())
    return DiffusionHistory(loss=run.loss, seconds=run.seconds)
