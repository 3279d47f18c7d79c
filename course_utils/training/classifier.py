"""Training classifiers on the CPU: chapter 03's loop, the digits ViT, chapter 04's families and the judges.

``train_classifier`` trains any images-in, logits-out model with cross-entropy (AdamW, a one-cycle schedule,
augmentation) and is remembered (see ``course_utils.training.remember``). ``train_digits_vit`` is the lecture's
run and the stand-in for google/vit-base-patch16-224; ``train_family`` trains a chapter 04 stand-in;
``train_digit_judge`` and ``train_shape_judge`` train the referees of chapters 06 and 07.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_utils.data.digits import digits_data
from course_utils.data.shapes import make_shapes
from course_utils.eval.metrics import accuracy, attribute_labels, evaluate
from course_utils.models.classifiers import Family, ImagesToLogits, build_model
from course_utils.models.judges import HEADS, Judge, digit_judge
from course_utils.models.vit import ViT, ViTConfig
from course_utils.training.remember import remembered

__all__ = ["TrainConfig", "History", "random_affine", "train_classifier", "DIGITS_TRAINING", "train_digits_vit", "FAMILY_TRAINING", "train_family", "train_digit_judge", "JudgeTrainConfig", "train_shape_judge"]


@dataclass(frozen=True)
class TrainConfig:
    """How ``train_classifier`` trains: AdamW with a one-cycle schedule (warm-up, then cosine decay)."""

    epochs: int = 30            # passes over the training set
    batch_size: int = 64        # images per step
    lr: float = 3e-3            # peak learning rate, reached after the warm-up
    weight_decay: float = 0.05  # AdamW's decoupled weight decay
    warmup: float = 0.1         # fraction of the steps spent warming up
    augment: bool = True        # random rotation, scale and shift of each training image
    seed: int = 0               # shuffling and augmentation


@dataclass
class History:
    """What ``train_classifier`` measured, one entry per epoch (test accuracy only when asked for)."""

    loss: list[float] = field(default_factory=list)            # mean training loss
    train_accuracy: list[float] = field(default_factory=list)  # on the (augmented) training batches
    test_accuracy: list[float] = field(default_factory=list)   # on the test set, after the epoch
    seconds: float = 0.0                                        # training time, evaluation excluded

    def as_dict(self) -> dict:
        return asdict(self)


def random_affine(images: torch.Tensor, generator: torch.Generator, degrees: float = 8.0,
                  scale: float = 0.1, shift: float = 0.03) -> torch.Tensor:
    """Rotate by up to ``degrees``, scale by 1 +- ``scale`` and shift by up to ``shift`` of the width,
    independently per image; pixels from outside repeat the border. (B, C, H, W) -> (B, C, H, W)."""
    B = images.shape[0]
    u = torch.rand(B, 4, generator=generator) * 2 - 1  # (B, 4) uniform in [-1, 1]
    angle = u[:, 0] * math.radians(degrees)  # (B,)
    s = 1 + u[:, 1] * scale  # (B,)
    theta = torch.zeros(B, 2, 3)  # one 2x3 affine matrix per image, in [-1, 1] coordinates
    theta[:, 0, 0], theta[:, 0, 1] = s * angle.cos(), -s * angle.sin()
    theta[:, 1, 0], theta[:, 1, 1] = s * angle.sin(), s * angle.cos()
    theta[:, :, 2] = u[:, 2:] * shift * 2  # a shift of `shift` widths is 2*shift in [-1, 1] units
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False)  # (B, C, H, W)


@remembered
def train_classifier(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor,
                     config: TrainConfig = TrainConfig(), x_test: torch.Tensor | None = None,
                     y_test: torch.Tensor | None = None, progress: bool = True, desc: str = "training") -> History:
    """Train any classifier (images in, logits out) with cross-entropy on the CPU; return its History.

    One tqdm bar over the epochs shows the loss and accuracies. Shuffling and augmentation draw
    from a generator seeded with ``config.seed``; seed torch before building the model for a
    repeatable initialisation.
    """
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=config.warmup)
    history = History()
    bar = tqdm(range(config.epochs), desc=desc, disable=not progress, leave=True)
    for _ in bar:
        start = time.perf_counter()
        model.train()
        total_loss, correct = 0.0, 0
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(x_train), config.batch_size):
            idx = order[i:i + config.batch_size]
            x, y = x_train[idx], y_train[idx]  # (b, C, H, W), (b,)
            if config.augment:
                x = random_affine(x, generator)
            logits = model(x)  # (b, K)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(-1) == y).sum().item()
        history.seconds += time.perf_counter() - start
        history.loss.append(total_loss / len(x_train))
        history.train_accuracy.append(correct / len(x_train))
        shown = {"loss": f"{history.loss[-1]:.3f}", "train": f"{history.train_accuracy[-1]:.3f}"}
        if x_test is not None:
            history.test_accuracy.append(evaluate(model, x_test, y_test))
            shown["test"] = f"{history.test_accuracy[-1]:.3f}"
        bar.set_postfix(shown)
    model.eval()
    return history


DIGITS_TRAINING = TrainConfig(epochs=30, batch_size=64, lr=3e-3, weight_decay=0.05, warmup=0.1, augment=True, seed=0)


def train_digits_vit(config: ViTConfig | None = None, training: TrainConfig = DIGITS_TRAINING,
                     progress: bool = True) -> tuple[ViT, History]:
    """The course's digits ViT: ``ViTConfig.tiny()`` trained with ``DIGITS_TRAINING`` (the lecture's run,
    and the stand-in for google/vit-base-patch16-224). Returns the model (eval mode) and its History."""
    config = config or ViTConfig.tiny()
    data = digits_data(config.image_size, config.in_channels)
    torch.manual_seed(training.seed)
    model = ViT(config)
    history = train_classifier(model, data.x_train, data.y_train, training, data.x_test, data.y_test,
                               progress=progress, desc="ViT on digits")
    return model, history


# Each chapter 04 stand-in's recipe for train_classifier; unnamed settings are TrainConfig's defaults:
# batch 64, AdamW (weight decay 0.05), 10% warm-up, augmentation, seed 0.
FAMILY_TRAINING: dict[str, TrainConfig] = {
    "swin": TrainConfig(epochs=25, lr=3e-3),
    "beit": TrainConfig(epochs=30, lr=3e-3),
    "deit": TrainConfig(epochs=20, lr=2e-3),
    "convnext": TrainConfig(epochs=10, lr=3e-3),
}


def train_family(family: Family, training: TrainConfig | None = None,
                 progress: bool = True) -> tuple[nn.Module, History]:
    """Train ``family``'s tiny model on the digits (1,438 train / 359 test) with ``course_utils.training.classifier.train_classifier``.

    ``training`` replaces the family's recipe. Returns the transformers model (eval mode) and its History,
    whose ``test_accuracy`` holds one entry per epoch.
    """
    training = training or FAMILY_TRAINING[family.name]
    data = digits_data(family.image_size)
    torch.manual_seed(training.seed)
    model = build_model(family)
    history = train_classifier(ImagesToLogits(model), data.x_train, data.y_train, training, data.x_test, data.y_test,
                               progress=progress, desc=f"{family.name} on digits")
    return model.eval(), history


def train_digit_judge(x_train: torch.Tensor, y_train: torch.Tensor, epochs: int = 12, seed: int = 0,
                progress: bool = False) -> nn.Module:
    """``digit_judge`` trained on real digits in [-1, 1] with chapter 03's ``train_classifier`` (augmented)."""

    torch.manual_seed(seed)
    judge = digit_judge(x_train.shape[-1])
    train_classifier(judge, x_train, y_train, TrainConfig(epochs=epochs, lr=3e-3, seed=seed), progress=progress,
                     desc="digit judge")
    return judge.eval()


@dataclass
class JudgeTrainConfig:
    steps: int = 1500
    batch_size: int = 128
    lr: float = 3e-3
    width: int = 32
    seed: int = 0
    noise: float = 0.03  # a little pixel noise, so the judge does not rely on perfectly flat backgrounds


def train_shape_judge(config: JudgeTrainConfig = JudgeTrainConfig(), progress: bool = True) -> tuple[Judge, dict]:
    """Train a judge on real shapes of all 25 pairs (fresh images every step); returns it and a record."""
    torch.manual_seed(config.seed)
    judge = Judge(config.width)
    opt = torch.optim.AdamW(judge.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)
    start = time.perf_counter()
    losses = []
    for step in tqdm(range(config.steps), desc="judge", disable=not progress, mininterval=1):
        data = make_shapes(config.batch_size, 32, seed=10_000 + config.seed * 100_000 + step, split="all")
        x = (data.images + config.noise * torch.randn_like(data.images)).clamp(0, 1)
        logits = judge(x)
        targets = attribute_labels(data)
        loss = sum(F.cross_entropy(logits[k], targets[k]) for k in HEADS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    judge.eval()
    test = make_shapes(2000, 32, seed=987_654, split="all")
    record = {"config": asdict(config), "seconds": round(time.perf_counter() - start, 1),
              "accuracy_on_2000_real_images": accuracy(judge, test.images, test),
              "final_loss": round(sum(losses[-20:]) / 20, 4)}
    return judge, record
