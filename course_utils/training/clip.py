"""Training a mini-CLIP on an endless stream of captioned shapes (chapter 05 and its recipe).

The contrastive loss is ``course_utils.models.clip.clip_loss``; each step draws fresh shapes, and 1/tau is
clipped at 100 after every step, as the paper does.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from course_utils.data import shapes as S
from course_utils.eval.metrics import eval_sets, zero_shot_accuracy
from course_utils.models.clip import MAX_LOGIT_SCALE, Tokens, clip_loss, clip_normalize
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

    def as_dict(self) -> dict:
        return asdict(self)


@remembered
def train_clip(model: nn.Module, config: ClipTrainConfig = ClipTrainConfig(), progress: bool = True,
               desc: str = "mini-CLIP") -> ClipHistory:
    """Train a mini-CLIP on an endless stream of captioned shapes (training pairs only); return its history."""
    from tqdm.auto import tqdm

    size = model.visual.input_resolution
    tokens = Tokens(model.positional_embedding.shape[0])
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.lr)
    warm = max(1, int(config.warmup * config.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, max(0, s - warm) / max(1, config.steps - warm)))))
    seen, heldout = eval_sets(config.eval_size, size)
    history = ClipHistory()
    # mininterval: a notebook bar redrawn every step floods the kernel's iopub channel (nbval then
    # timed out waiting for the cell's output on a loaded CI machine); once a second is plenty.
    bar = tqdm(range(config.steps), desc=desc, disable=not progress, mininterval=1.0)
    model.train()
    for step in bar:
        start = time.perf_counter()
        batch = S.make_shapes(config.batch_size, size, seed=config.seed * 1_000_003 + step, split="train")
        f = model.encode_image(clip_normalize(batch.images))  # (B, D)
        g = model.encode_text(tokens(batch.captions))  # (B, D)
        loss = clip_loss(f, g, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # 1/tau lives on a log scale and is clipped at 100
            model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        history.seconds += time.perf_counter() - start
        history.loss.append(loss.item())
        history.logit_scale.append(model.logit_scale.exp().item())
        last = step == config.steps - 1
        if last or (config.eval_every and (step + 1) % config.eval_every == 0):
            history.eval_step.append(step + 1)
            history.eval_seconds.append(round(history.seconds, 2))
            history.seen_accuracy.append(round(zero_shot_accuracy(model, seen), 4))
            history.heldout_accuracy.append(round(zero_shot_accuracy(model, heldout), 4))
            model.train()
            bar.set_postfix(loss=f"{loss.item():.3f}", seen=f"{history.seen_accuracy[-1]:.2f}",
                            heldout=f"{history.heldout_accuracy[-1]:.2f}")
    model.eval()
    return history
