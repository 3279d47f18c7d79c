"""Handwritten digits shipped inside scikit-learn, and how the course's classifiers see them.

- ``digits(size)``: the 1,797 8x8 handwritten digits of ``sklearn.datasets.load_digits`` (UCI "Optical
  Recognition of Handwritten Digits"), as (1797, 1, size, size) float32 in [0, 1] plus labels.
- ``digits_split(...)`` / ``train_test_split_tensors(...)``: a deterministic, stratified train/test ``Split``.
- ``normalize`` and ``digits_data``: what a ViT's image processor does to them ([-1, 1], grey repeated over RGB).

The photos are in ``photos.py``; the procedural captioned shapes in ``shapes.py``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from course_utils.data.photos import _resize

__all__ = ["digits", "Split", "train_test_split_tensors", "digits_split", "IMAGE_MEAN", "IMAGE_STD", "DIGITS_LABELS", "normalize", "digits_data"]


# Shape legend: N images, C channels, H height, W width.


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


def train_test_split_tensors(x: torch.Tensor, y: torch.Tensor, test_fraction: float = 0.2, seed: int = 0) -> Split:
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


IMAGE_MEAN = (0.5, 0.5, 0.5)  # pixels in [0, 1] are mapped to [-1, 1]: (x - mean) / std
IMAGE_STD = (0.5, 0.5, 0.5)


DIGITS_LABELS = {k: str(k) for k in range(10)}  # id2label of the digits classifier


def normalize(images: torch.Tensor, mean=IMAGE_MEAN, std=IMAGE_STD) -> torch.Tensor:
    """(x - mean) / std per channel, as ``ViTImageProcessor`` does: (B, C, H, W) -> (B, C, H, W)."""
    C = images.shape[1]
    mean, std = (torch.tensor(v[:C], dtype=images.dtype).view(1, C, 1, 1) for v in (mean, std))
    return (images - mean) / std


def digits_data(size: int = 16, channels: int = 3, seed: int = 0):
    """The scikit-learn digits as the ViT sees them: resized to ``size``, grey repeated over
    ``channels``, normalised to [-1, 1]. Returns the stratified 80/20 ``Split`` (1,438 / 359)."""
    split = digits_split(size=size, test_fraction=0.2, seed=seed)
    prep = lambda x: normalize(x.expand(-1, channels, -1, -1).contiguous())  # noqa: E731  (N, channels, size, size)
    return Split(prep(split.x_train), split.y_train, prep(split.x_test), split.y_test)
