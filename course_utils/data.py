"""Data that needs no download: photos shipped inside scikit-image, digits shipped inside scikit-learn.

Everything comes back as float32 torch tensors in [0, 1], channels first, the layout a ViT's
patch embedding expects:

- ``photo(name, size)``: one of the test photos in ``skimage.data`` (``PHOTOS``), as (3, H, W).
- ``digits(size)``: the 1,797 8x8 handwritten digits of ``sklearn.datasets.load_digits``
  (UCI "Optical Recognition of Handwritten Digits"), as (1797, 1, size, size) plus labels.
- ``digits_split(...)`` / ``train_test_split_tensors(...)``: a deterministic, stratified
  train/test ``Split``.

The procedural captioned shapes (for CLIP and text-to-image diffusion) live in ``shapes.py``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

# Shape legend: N images, C channels, H height, W width.

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "camera")
"""Photos shipped inside scikit-image: a cat, an astronaut, a cup of coffee, a rocket, a cameraman (grey)."""


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) to (N, C, size, size); antialiased when shrinking."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def photo(name: str = "chelsea", size: int | None = None) -> torch.Tensor:
    """One of the photos in ``skimage.data`` as a float32 tensor (3, H, W) in [0, 1].

    ``size=None`` keeps the photo's own resolution (chelsea is 300 x 451). ``size=224`` crops the
    centre square and resizes it (antialiased) to 224 x 224, the input of ViT-B/16.
    The grey ``camera`` photo is repeated over 3 channels so every photo has the same layout.
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    from skimage import data as skdata  # imported here: only this function needs it

    a = np.asarray(getattr(skdata, name)())  # (H, W, 3) or (H, W), uint8
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)  # (H, W, 3)
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 255.0  # (3, H, W)
    if size is None:
        return x
    _, h, w = x.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = x[:, top : top + s, left : left + s]  # (3, s, s)
    return _resize(x[None], size)[0]  # (3, size, size)


def digits(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The scikit-learn handwritten digits: images (1797, 1, size, size) float32 in [0, 1], labels (1797,) int64.

    The raw pixels are counts 0..16 (ink in a 4x4 block of the original 32x32 scan); they are
    divided by 16. With ``size != 8`` the images are resized bilinearly (e.g. 16 for patch size 4).
    """
    from sklearn.datasets import load_digits  # imported here: only this function needs it

    d = load_digits()
    x = torch.from_numpy(d.images).float().div(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(d.target).long()  # (N,)
    if size != 8:
        x = _resize(x, size)  # (N, 1, size, size)
    return x.contiguous(), y


class Split(NamedTuple):
    """A train/test split of tensors: ``x_train, y_train, x_test, y_test = split``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def train_test_split_tensors(
    x: torch.Tensor, y: torch.Tensor, test_fraction: float = 0.2, seed: int = 0
) -> Split:
    """Split ``x, y`` into train and test, stratified by label and deterministic by ``seed``.

    Each class sends ``round(test_fraction * count)`` of its samples to the test set, so the
    class proportions match in both halves. Samples keep their original order within each half.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_test = int(round(test_fraction * len(idx)))
        is_test[rng.permutation(idx)[:n_test]] = True
    test = torch.from_numpy(np.flatnonzero(is_test))
    train = torch.from_numpy(np.flatnonzero(~is_test))
    return Split(x[train], y[train], x[test], y[test])


def digits_split(size: int = 8, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """``digits(size)`` split into train and test (stratified, deterministic): 1,438 / 359 at 0.2."""
    x, y = digits(size)
    return train_test_split_tensors(x, y, test_fraction=test_fraction, seed=seed)
