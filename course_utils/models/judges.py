"""Judges: small classifiers that read what a generated image shows, trained only on real images.

Generated images need a referee that did not take part in making them. The judge is a small CNN
trained only on real captioned shapes (``make_shapes``, all 25 colour-shape pairs, 32 px), never on
anything a generator drew. It answers four questions about an image, one head each: which colour,
which shape, which size, which position. On real images it is (close to) always right, so when it
disagrees with a prompt about a generated image, the generator is to blame.

``Judge`` reads the captioned shapes (chapter 07); ``digit_judge`` reads digits (chapter 06).
Their training is in ``course_utils.training.classifier``; the committed shapes judge loads with
``course_utils.weights.recipes.load_judge``; what they measure is in ``course_utils.eval.metrics``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.data.shapes import COLOURS, POSITIONS, SHAPES, SIZES

__all__ = ["HEADS", "Judge", "digit_judge"]


HEADS = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "position": POSITIONS}


# Shape legend: N images, C channels, H x W pixels.


class Judge(nn.Module):
    """Six conv layers (two of them strided), global average pooling, one linear head per attribute."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),  # edges and corners at full resolution
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),  # 32 -> 16
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.GELU(),  # 16 -> 8
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU(),
        )
        # position needs where, not only what: keep a coarse 4 x 4 map for it
        self.heads = nn.ModuleDict({name: nn.Linear(2 * width, len(names)) for name, names in HEADS.items()
                                    if name != "position"})
        self.where = nn.Linear(2 * width * 16, len(POSITIONS))
        self.width = width

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (N, 3, 32, 32) in [0, 1] -> logits per attribute, each (N, classes)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-2:] != (32, 32):
            images = F.interpolate(images, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
        h = self.features(images * 2 - 1)  # (N, 2w, 8, 8)
        logits = {name: head(h.mean(dim=(2, 3))) for name, head in self.heads.items()}
        logits["position"] = self.where(F.adaptive_avg_pool2d(h, 4).flatten(1))
        return logits

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """Predictions (N,) int64 per attribute, plus ``{name}_confidence`` (N,) the softmax maximum."""
        was_training = self.training
        self.eval()
        out: dict[str, list[torch.Tensor]] = {}
        device = next(self.parameters()).device
        for i in range(0, len(images), batch_size):
            logits = self(images[i:i + batch_size].float().clamp(0, 1).to(device))
            for name, z in logits.items():
                p = z.softmax(-1).cpu()
                out.setdefault(name, []).append(p.argmax(-1))
                out.setdefault(f"{name}_confidence", []).append(p.max(-1).values)
        self.train(was_training)
        return {k: torch.cat(v) for k, v in out.items()}


def digit_judge(image_size: int = 8) -> nn.Module:
    """A small CNN that reads digits in [-1, 1], (B, 1, H, W) -> (B, 10) logits, H = W = ``image_size``.

    It never sees a generated image: trained on real digits (``train_judge``), it judges samples
    the way a person would, by asking which digit each one is and how sure it is.
    """
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, H/2, W/2)
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, H/4, W/4)
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * (image_size // 4) ** 2, 10),  # (B, 10)
    )
