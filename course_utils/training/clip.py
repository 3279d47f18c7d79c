"""Training a mini-CLIP on an endless stream of captioned shapes (chapter 05 and its recipe).

The contrastive loss is ``course_utils.models.clip.clip_loss``; each step draws fresh shapes, and 1/tau is
clipped at 100 after every step, as the paper does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from course_utils.data import shapes as S
from course_utils.eval.metrics import eval_sets, zero_shot_accuracy
from course_utils.models.clip import MAX_LOGIT_SCALE, Tokens, clip_loss, clip_normalize
from course_utils.training.loop import fit
from course_utils.training.remember import remembered

__all__ = ["ClipTrainConfig", "ClipHistory", "train_clip"]


@dataclass(frozen=True)
class ClipTrainConfig:
    """How ``train_clip`` trains: fresh shapes every step, AdamW, warm-up then cosine decay."""

    steps: int = 600            # optimisation steps, each on a freshly drawn batch
    batch_size: int = 256       # image-caption pairs per step: B, so the logits are B x B
    lr: float = 2e-3            # peak learning rate
    weight_decay: float = 0.1   # AdamW's, on the weight matrices only (not on gains, biases, tau)
    warmup: float = 0.05        # fraction of the steps spent warming up
    eval_every: int = 100       # steps between zero-shot evaluations (0: only at the end)
    eval_size: int = 500        # images per evaluation split
    seed: int = 0               # initialisation and the data stream


@dataclass
class ClipHistory:
    """What ``train_clip`` measured: the loss and 1/tau every step; zero-shot accuracy at evaluations."""

    loss: list[float] = field(default_factory=list)
    logit_scale: list[float] = field(default_factory=list)          # 1/tau after each step
    eval_step: list[int] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)          # training time at each evaluation
    seen_accuracy: list[float] = field(default_factory=list)         # zero-shot, pairs seen in training
    heldout_accuracy: list[float] = field(default_factory=list)      # zero-shot, the 4 held-out pairs
    seconds: float = 0.0                                             # training time, evaluation excluded


@remembered
def train_clip(model: nn.Module, config: ClipTrainConfig = ClipTrainConfig(), progress: bool = True,
               desc: str = "mini-CLIP") -> ClipHistory:
    """Train a mini-CLIP on an endless stream of captioned shapes (training pairs only); return its history."""
    size = model.visual.input_resolution
    tokens = Tokens(model.positional_embedding.shape[0])
    seen, heldout = eval_sets(config.eval_size, size)
    history = ClipHistory()

    def loss(step: int) -> torch.Tensor:
        batch = S.make_shapes(config.batch_size, size, seed=config.seed * 1_000_003 + step, split="train")
        f = model.encode_image(clip_normalize(batch.images))  # (B, D)
        g = model.encode_text(tokens(batch.captions))  # (B, D)
        return clip_loss(f, g, model.logit_scale.exp())

    def clip_temperature(step: int) -> None:
        with torch.no_grad():  # 1/tau lives on a log scale and is clipped at 100
            model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        history.logit_scale.append(model.logit_scale.exp().item())

    def zero_shot(step: int, net: nn.Module, run) -> dict:
        history.eval_step.append(step + 1)
        history.eval_seconds.append(round(run.seconds, 2))
        history.seen_accuracy.append(round(zero_shot_accuracy(net, seen), 4))
        history.heldout_accuracy.append(round(zero_shot_accuracy(net, heldout), 4))
        return {"seen": history.seen_accuracy[-1], "heldout": history.heldout_accuracy[-1]}

    run = fit(model, loss, config.steps, lr=config.lr, weight_decay=config.weight_decay,
              decay=lambda name, p: p.ndim >= 2 and "embedding" not in name,  # weight matrices only, as the paper
              warmup=max(1, int(config.warmup * config.steps)), schedule="cosine", after_step=clip_temperature,
              every=config.eval_every, evaluate=zero_shot, progress=progress, desc=desc)
    history.loss, history.seconds = run.loss, run.seconds
    return history
