"""Plot helpers: image grids, attention matrices, attention maps over an image's patches.

They compute nothing: each takes tensors, arrays or images, draws with matplotlib and returns the
axes, so a notebook can add a title or save the figure. Attention weights are those of
"Attention Is All You Need" (Vaswani et al., 2017); the patch grid is that of ViT, "An Image is
Worth 16x16 Words" (Dosovitskiy et al., 2021): an H x W image cut into (H/P) x (W/P) patches.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

# Shape legend: N images, C channels (1 or 3), H height, W width, P patch size, Lq queries, Lk keys.


def _numpy(x) -> np.ndarray:
    """A tensor (any device, with or without grad) or array-like as a float numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _hwc(image) -> np.ndarray:
    """One image, (C, H, W), (H, W, C) or (H, W), as (H, W, 3) or (H, W) for imshow, clipped to [0, 1]."""
    a = _numpy(image)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]  # (H, W, 1) -> (H, W)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3):
        return np.clip(a, 0.0, 1.0)
    raise ValueError(f"expected an image (C, H, W) or (H, W, C) with C = 1 or 3, or (H, W); got shape {tuple(a.shape)}")


def image_grid(images, titles=None, ncols=None, size=2.0, axes=None, cmap=None) -> np.ndarray:
    """Draw images in a grid; return the flat array of axes (one per grid cell, image ``i`` on ``axes[i]``).

    ``images``: a (N, C, H, W) tensor or array in [0, 1] (C = 1 or 3), or a list of (C, H, W), (H, W, C) or (H, W)
    images. One-channel images use ``cmap`` ("gray" unless given) on a fixed [0, 1] scale. ``titles``: one short string
    per image. ``size``: inches per cell. ``axes``: draw into these instead of a new figure.
    """
    if hasattr(images, "ndim") and images.ndim == 4:
        images = list(images)  # (N, C, H, W) -> N images (C, H, W)
    pictures = [_hwc(im) for im in images]
    n = len(pictures)
    if titles is not None and len(titles) != n:
        raise ValueError(f"expected {n} titles, one per image, got {len(titles)}")
    if axes is None:
        ncols = ncols or min(n, 8)
        nrows = max(1, math.ceil(n / ncols))
        _, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size), squeeze=False)
    axes = np.asarray(axes, dtype=object).ravel()
    if len(axes) < n:
        raise ValueError(f"{n} images need at least {n} axes, got {len(axes)}")
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(pictures[i], cmap=cmap or "gray", vmin=0.0, vmax=1.0, interpolation="nearest")  # RGB ignores cmap
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    return axes


def attention_heatmap(weights, x_labels=None, y_labels=None, ax=None, title=None, cmap="viridis", colorbar=True):
    """Draw an attention matrix (Lq, Lk): query ``i`` is row ``i`` (y axis), key ``j`` column ``j`` (x axis).

    ``x_labels`` / ``y_labels`` name the keys / queries (e.g. tokens). Returns the axes.
    """
    A = _numpy(weights)
    if A.ndim != 2:
        raise ValueError(f"expected attention weights of shape (queries, keys), got shape {tuple(A.shape)}")
    Lq, Lk = A.shape
    if x_labels is not None and len(x_labels) != Lk:
        raise ValueError(f"expected {Lk} x_labels (one per key), got {len(x_labels)}")
    if y_labels is not None and len(y_labels) != Lq:
        raise ValueError(f"expected {Lq} y_labels (one per query), got {len(y_labels)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.4 * max(Lk, 5), 0.4 * max(Lq, 5)))
    im = ax.imshow(A, cmap=cmap, interpolation="nearest")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if x_labels is not None:
        ax.set_xticks(range(Lk), [str(t) for t in x_labels], rotation=90)
    if y_labels is not None:
        ax.set_yticks(range(Lq), [str(t) for t in y_labels])
    if title is not None:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax)
    return ax


def attention_over_image(image, weights, patch_size, ax=None, alpha=0.6, cmap="inferno", grid=True, query=None):
    """Draw one attention distribution over an image's patches as a semi-transparent overlay.

    ``image``: (3, H, W) or (H, W, 3) in [0, 1]. ``weights``: the attention of one query over the (H/P) * (W/P) patches,
    shape (num_patches,) in row-major patch order or (H/P, W/P); drop the [CLS] key first (``weights[1:]``). Each weight
    fills its P x P patch (nearest upsampling). ``grid`` draws the patch borders; ``query`` (a patch index) outlines the
    query's own patch. Returns the axes.
    """
    img = _hwc(image)
    H, W = img.shape[:2]
    P = int(patch_size)
    if H % P or W % P:
        raise ValueError(f"patch_size {P} does not divide the image size {H} x {W}")
    gh, gw = H // P, W // P  # patches per column, per row
    A = _numpy(weights)
    if A.ndim == 1 and A.size == gh * gw:
        A = A.reshape(gh, gw)  # (num_patches,) -> (H/P, W/P), row-major
    elif A.shape != (gh, gw):
        hint = " (drop the [CLS] weight first: weights[1:])" if A.size == gh * gw + 1 else ""
        raise ValueError(
            f"expected {gh * gw} patch weights ((H/P) * (W/P) = {gh} * {gw} for a {H} x {W} image and "
            f"patch size {P}), shaped ({gh * gw},) or ({gh}, {gw}); got shape {tuple(A.shape)}{hint}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4 * H / W))
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0)
    extent = (-0.5, W - 0.5, H - 0.5, -0.5)  # the overlay covers the image pixel for pixel
    ax.imshow(A, cmap=cmap, alpha=alpha, extent=extent, interpolation="nearest")
    if grid:
        for k in range(1, gw):
            ax.axvline(k * P - 0.5, color="white", linewidth=0.5, alpha=0.5)
        for k in range(1, gh):
            ax.axhline(k * P - 0.5, color="white", linewidth=0.5, alpha=0.5)
    if query is not None:
        if not 0 <= int(query) < gh * gw:
            raise ValueError(f"query patch {query} out of range 0..{gh * gw - 1}")
        row, col = divmod(int(query), gw)
        ax.add_patch(Rectangle((col * P - 0.5, row * P - 0.5), P, P, fill=False, edgecolor="cyan", linewidth=2))
    ax.set(xlim=(-0.5, W - 0.5), ylim=(H - 0.5, -0.5))
    ax.axis("off")
    return ax


def similarity_grid(similarity, grid_h, grid_w, size=3.5, cmap="viridis", vmin=-1.0, vmax=1.0, title=None):
    """Draw a patch-to-patch similarity matrix as the ViT paper's Figure 7 draws position embeddings.

    ``similarity``: (N, N) with N = grid_h * grid_w patches in row-major order, e.g. the cosine similarity of position
    embeddings. Tile (r, c) of the figure shows row ``r * grid_w + c`` of the matrix, reshaped to the patch grid: how
    similar patch (r, c) is to every other patch. Returns the (grid_h, grid_w) array of axes.
    """
    S = _numpy(similarity)
    N = grid_h * grid_w
    if S.shape != (N, N):
        raise ValueError(f"expected a ({N}, {N}) similarity matrix for a {grid_h} x {grid_w} patch grid, "
                         f"got shape {tuple(S.shape)}")
    fig, axes = plt.subplots(grid_h, grid_w, figsize=(size, size * grid_h / grid_w), squeeze=False,
                             gridspec_kw=dict(wspace=0.08, hspace=0.08))
    for i, ax in enumerate(axes.ravel()):
        im = ax.imshow(S[i].reshape(grid_h, grid_w), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set(xticks=[], yticks=[])
    for r in range(grid_h):
        axes[r, 0].set_ylabel(str(r + 1), fontsize=7, rotation=0, labelpad=6, va="center")
    for c in range(grid_w):
        axes[-1, c].set_xlabel(str(c + 1), fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.6, label="cosine similarity")
    if title:
        fig.suptitle(title, fontsize=10)
    return axes


def pair_matrix(similarity, images, captions, ax=None, title=None, cmap="viridis", size=0.75):
    """Draw CLIP's N x N image-text matrix: row ``i`` is image ``i`` (drawn at the left), column ``j``
    caption ``j`` (written along the top); matching pairs lie on the diagonal (Radford et al., figure 1).

    ``similarity``: (N, N), e.g. cosine similarities or logits; ``images``: N images (C, H, W) in
    [0, 1]; ``captions``: N strings. ``size``: inches per cell. Returns the axes of the matrix.
    """
    S = _numpy(similarity)
    n = len(captions)
    if S.shape != (n, n) or len(images) != n:
        raise ValueError(f"expected an (N, N) matrix with N images and N captions; got a matrix of shape "
                         f"{tuple(S.shape)}, {len(images)} images and {n} captions")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.4 + n * size, 1.8 + n * size))
    ax.imshow(S, cmap=cmap)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{S[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if S[i, j] > (S.max() + S.min()) / 2 else "white")
        ax.imshow(_hwc(images[i]), extent=(-1.45, -0.55, i + 0.45, i - 0.45), interpolation="nearest")
    ax.set(xlim=(-1.5, n - 0.5), ylim=(n - 0.5, -0.5))
    ax.set_xticks(range(n), captions, rotation=40, ha="left", fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10, pad=12, loc="left", y=-0.08)
    return ax
