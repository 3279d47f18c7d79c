"""One training loop for every model the course trains, live in a lecture, for a stand-in, or in a recipe.

    run = fit(model, loss, steps=600, lr=2e-3, warmup=30, schedule="cosine")

``loss(step)`` computes the loss of one step (drawing its own batch); ``fit`` does the rest, the same
way every time: AdamW, a learning-rate schedule, optional gradient clipping, an optional exponential
moving average of the weights, a hook after each step, an evaluation every so many steps, and a
progress bar redrawn at most once a second (a notebook bar redrawn every step floods the kernel).
The schedules are the libraries' own: diffusers' ``get_cosine_schedule_with_warmup`` and
``get_constant_schedule_with_warmup``, and torch's ``OneCycleLR``; the moving average is diffusers'
``EMAModel``; min-SNR weighting uses diffusers' ``compute_snr`` (``min_snr_weights``).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["Run", "fit", "min_snr_weights"]

SCHEDULES = ("cosine", "constant", "one-cycle")


@dataclass
class Run:
    """What ``fit`` measured."""

    loss: list[float] = field(default_factory=list)   # every step's loss
    evals: list[dict] = field(default_factory=list)   # what ``evaluate`` returned, with "step" added
    seconds: float = 0.0                              # training time, evaluations excluded
    ema: nn.Module | None = None                      # a copy of the model holding the averaged weights


def _schedule(optimizer, name: str, steps: int, warmup: int, lr: float):
    if name == "cosine":  # linear warm-up from 0, then half a cosine down to 0
        from diffusers.optimization import get_cosine_schedule_with_warmup

        return get_cosine_schedule_with_warmup(optimizer, warmup, steps)
    if name == "constant":  # linear warm-up from 0, then constant
        from diffusers.optimization import get_constant_schedule_with_warmup

        return get_constant_schedule_with_warmup(optimizer, warmup)
    if name == "one-cycle":  # a cosine warm-up from lr/25, then a cosine down to lr/25e4 (Smith and Topin 2019)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=warmup)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")


def fit(model: nn.Module, loss: Callable[[int], torch.Tensor], steps: int, *, lr: float, weight_decay: float = 0.0,
        decay: Callable[[str, nn.Parameter], bool] | None = None, warmup: int = 0, schedule: str = "cosine",
        clip_grad: float | None = None, ema: float | None = None, ema_after: int = 0,
        after_step: Callable[[int], None] | None = None, every: int = 0,
        evaluate: Callable[[int, nn.Module, Run], dict] | None = None, progress: bool = True,
        desc: str = "training") -> Run:
    """Train ``model`` for ``steps`` steps of ``loss(step)`` and return the ``Run``.

    - AdamW at peak learning rate ``lr``, decoupled weight decay ``weight_decay`` on the parameters
      for which ``decay(name, parameter)`` is true (default: all);
    - ``schedule``: "cosine" or "constant" after ``warmup`` steps of warming up, or "one-cycle", whose
      ``warmup`` is the fraction of the steps spent warming up (torch's ``pct_start``);
    - ``clip_grad``: the largest gradient norm allowed; ``after_step(step)`` runs after each update
      (CLIP clips its temperature there);
    - ``ema``: the decay of a moving average of the weights, started after ``ema_after`` steps (before
      that it follows the weights); ``Run.ema`` is a copy of the model holding it;
    - ``evaluate(step, model, run)`` runs after every ``every`` steps and after the last one, on the
      averaged model when there is one, with the ``Run`` so far (its losses, its seconds of training);
      its dict goes into ``Run.evals`` and onto the progress bar.
    The model is in training mode during the steps and in eval mode at the end.
    """
    from tqdm.auto import tqdm

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decayed = [p for n, p in named if decay is None or decay(n, p)]
    rest = [p for n, p in named if not (decay is None or decay(n, p))]
    groups = [{"params": decayed, "weight_decay": weight_decay}] + ([{"params": rest, "weight_decay": 0.0}] if rest else [])
    # foreach (torch's default on GPUs only): on a CPU the same numbers, bit for bit, and a sixth faster here
    optimizer = torch.optim.AdamW(groups, lr=lr, foreach=True)
    scheduler = _schedule(optimizer, schedule, steps, warmup, lr)
    average = None
    if ema:  # diffusers' EMAModel, at a fixed decay once ema_after steps are done
        from diffusers.training_utils import EMAModel

        average = EMAModel(model.parameters(), decay=ema, min_decay=ema, update_after_step=ema_after)
    run = Run(ema=copy.deepcopy(model).eval().requires_grad_(False) if average else None)
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0)
    for step in bar:
        start = time.perf_counter()
        value = loss(step)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        scheduler.step()
        if after_step:
            after_step(step)
        if average:
            average.step(model.parameters())
        run.seconds += time.perf_counter() - start
        run.loss.append(value.item())
        if evaluate and ((every and (step + 1) % every == 0) or step + 1 == steps):
            if average:
                average.copy_to(run.ema.parameters())
            row = {"step": step + 1} | evaluate(step, run.ema if average else model, run)
            run.evals.append(row)
            bar.set_postfix({k: f"{v:.3f}" if isinstance(v, float) else v for k, v in row.items() if k != "step"})
            model.train()
    if average:
        average.copy_to(run.ema.parameters())
    model.eval()
    return run


def min_snr_weights(scheduler, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """min-SNR-gamma loss weights (Hang et al., ICCV 2023) for epsilon prediction: min(SNR(t), gamma) / SNR(t), (B,)."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, t)  # (B,) abar_t / (1 - abar_t)
    return snr.clamp(max=gamma) / snr
