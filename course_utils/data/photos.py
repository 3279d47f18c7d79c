"""Photos shipped inside scikit-image: a cat, an astronaut, a cup of coffee, a rocket, a cameraman.

``photo(name, size)`` returns one as a float32 tensor (3, H, W) in [0, 1], channels first, the layout of
every image model in the course; with ``size`` the centre square is cropped and resized.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PHOTOS", "photo"]


PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "camera")


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
