"""Training classifiers on the CPU: chapter 03's loop, the digits ViT, chapter 04's families and the judges.

``train_classifier`` trains any images-in, logits-out model with cross-entropy (AdamW, a one-cycle schedule,
augmentation) and is remembered (see ``course_utils.training.remember``). ``train_digits_vit`` is the lecture's
run and the stand-in for google/vit-base-patch16-224; ``train_family`` trains a chapter 04 stand-in;
``train_digit_judge`` and ``train_shape_judge`` train the referees of chapters 06 and 07.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data.digits import digits_data
from course_utils.data.shapes import make_shapes
from course_utils.eval.metrics import accuracy, attribute_labels, evaluate
from course_utils.models.classifiers import Family, ImagesToLogits, build_model
from course_utils.models.judges import HEADS, Judge, digit_judge
from course_utils.models.vit import ViT, ViTConfig
from course_utils.training.loop import fit
from course_utils.training.remember import remembered

__all__ = ["DIGITS_TRAINING", "FAMILY_TRAINING", "History", "JudgeTrainConfig", "TrainConfig", "random_affine", "train_classifier", "train_digit_judge", "train_digits_vit", "train_family", "train_shape_judge"]


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

    ``fit``'s loop, epoch by epoch: one progress bar shows the loss and accuracies. Shuffling and
    augmentation draw from a generator seeded with ``config.seed``; seed torch before building the
    model for a repeatable initialisation.
    """
    generator = torch.Generator().manual_seed(config.seed)
    per_epoch = math.ceil(len(x_train) / config.batch_size)
    history, epoch = History(), {"loss": 0.0, "correct": 0, "order": None}

    def loss(step: int) -> torch.Tensor:
        if step % per_epoch == 0:  # a new epoch: a new order
            epoch.update(loss=0.0, correct=0, order=torch.randperm(len(x_train), generator=generator))
        idx = epoch["order"][(step % per_epoch) * config.batch_size:][:config.batch_size]
        x, y = x_train[idx], y_train[idx]  # (b, C, H, W), (b,)
        if config.augment:
            x = random_affine(x, generator)
        logits = model(x)  # (b, K)
        value = F.cross_entropy(logits, y)
        epoch["loss"] += value.item() * len(idx)
        epoch["correct"] += (logits.argmax(-1) == y).sum().item()
        return value

    def end_of_epoch(step: int, net: nn.Module, run) -> dict:
        history.loss.append(epoch["loss"] / len(x_train))
        history.train_accuracy.append(epoch["correct"] / len(x_train))
        if x_test is not None:
            history.test_accuracy.append(evaluate(net, x_test, y_test))
        return {"loss": history.loss[-1], "train": history.train_accuracy[-1]} | (
            {"test": history.test_accuracy[-1]} if x_test is not None else {})

    run = fit(model, loss, config.epochs * per_epoch, lr=config.lr, weight_decay=config.weight_decay,
              warmup=config.warmup, schedule="one-cycle", every=per_epoch, evaluate=end_of_epoch,
              progress=progress, desc=desc)
    history.seconds = run.seconds
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

    def loss(step: int) -> torch.Tensor:
        data = make_shapes(config.batch_size, 32, seed=10_000 + config.seed * 100_000 + step, split="all")
        x = (data.images + config.noise * torch.randn_like(data.images)).clamp(0, 1)
        logits, targets = judge(x), attribute_labels(data)
        return sum(F.cross_entropy(logits[k], targets[k]) for k in HEADS)

    run = fit(judge, loss, config.steps, lr=config.lr, weight_decay=1e-4, warmup=0.1, schedule="one-cycle",
              progress=progress, desc="judge")
    test = make_shapes(2000, 32, seed=987_654, split="all")
    record = {"config": asdict(config), "seconds": round(run.seconds, 1),
              "accuracy_on_2000_real_images": accuracy(judge, test.images, test),
              "final_loss": round(sum(run.loss[-20:]) / 20, 4)}
    return judge, record
