"""Captioned shapes: a procedural image-text data set for CLIP and text-to-image diffusion on a CPU.

Each image is one coloured shape on a plain dark-grey background, with a caption such as
"a small red circle on the left". Nothing is downloaded: ``make_shapes(n, size, seed, split)``
draws the images from a seed, so every run of the course sees the same data.

Attributes (the index of each name in ``COLOURS``, ``SHAPES``, ``SIZES``, ``POSITIONS`` is its integer label)
-------------------------------------------------------------------------------------------------------------
- Shapes, in units of the radius r around the centre (y down): circle of radius 1; square of half-side 0.85;
  triangle with apex (0, -1) and base y = 1 from x = -1.15 to 1.15; diamond |x| + |y| <= 1.15; cross of two
  bars 2 long and 0.68 wide. Areas: 2.26 r^2 (cross) to 3.14 r^2 (circle); all fit within 1.15 r of the centre.
- Sizes: r is ``SIZE_RADIUS`` of the image side times a seeded jitter in [0.9, 1.1]; at 32 px a small shape is
  about 8 px across, a large one about 12 px.
- Positions: the centre is ``POSITION_XY`` (fractions of the side, origin top left) plus a seeded jitter of at most
  0.025 in x and y; a shape stays at least 0.03 of the side from the border, and nominal centres lie 0.2 apart.
- Background: a uniform grey drawn from [0.10, 0.30] per image; ``COLOUR_RGB`` is not jittered. ``Shapes.centre``
  and ``Shapes.radius`` keep the exact geometry of each sample.

Rendering is anti-aliased: each image is drawn at 4x the resolution as a 0/1 mask, then averaged
over 4x4 blocks, so an edge pixel holds the fraction of it the shape covers.

Captions: one of ``TEMPLATES`` per sample, chosen by the seed. Every template names the colour and the shape; four of
six also name the size and four the position (as a phrase, ``POSITION_PHRASES``). ``caption(...)`` fills a template;
``class_prompts(template)`` gives the 25 colour-shape prompts in ``PAIRS`` order, and ``pair_index(colour, shape)``
maps a pair to 0..24, for zero-shot classification.

The held-out set: ``split="train"`` never contains the four pairs of ``HELD_OUT``. No two of them share a colour or
a shape, so every colour and every shape still appears in training with four (or five) partners: a model that has
learnt "red" and "triangle" separately can recognise, or draw, a red triangle it has never seen. ``split="heldout"``
contains only those four pairs (to measure that zero-shot generalisation); ``split="all"`` draws from all 25.
Pairs are drawn uniformly from the split's allowed pairs; size, position and template uniformly.

Determinism: all random numbers come from ``numpy.random.default_rng`` seeded with ``(seed, split)``; the same call
gives identical tensors and captions, and ``make_shapes(100)`` is the first 100 samples of ``make_shapes(1000)``.
The attributes and captions do not depend on ``size``: the 64 px images show the same scenes as the 32 px ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Shape legend: N images (n in a chunk), Sy x Sx a supersampled window (SUPERSAMPLE x its pixels), 3 RGB channels.

COLOURS = ("red", "green", "blue", "yellow", "purple")
COLOUR_RGB = {"red": (0.90, 0.12, 0.12), "green": (0.15, 0.75, 0.20), "blue": (0.20, 0.40, 1.00),
              "yellow": (0.95, 0.85, 0.15), "purple": (0.70, 0.25, 0.90)}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
SIZES = ("small", "large")
SIZE_RADIUS = {"small": 0.12, "large": 0.19}  # fraction of the image side, before jitter
POSITIONS = ("left", "right", "top", "bottom", "centre")
# centre of the shape, fraction of the image side, origin top left, y down
POSITION_XY = {"left": (0.30, 0.50), "right": (0.70, 0.50), "top": (0.50, 0.30), "bottom": (0.50, 0.70),
               "centre": (0.50, 0.50)}
POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
                    "centre": "in the centre"}
TEMPLATES = (
    "a {size} {colour} {shape} {position}",
    "a {colour} {shape} {position}",
    "a {size} {colour} {shape}",
    "a {colour} {shape}",
    "a picture of a {size} {colour} {shape} {position}",
    "there is a {size} {colour} {shape} {position}",
)
PAIRS = tuple((c, s) for c in COLOURS for s in SHAPES)  # pair_index(c, s) is the position in PAIRS
HELD_OUT = (("red", "triangle"), ("green", "circle"), ("blue", "cross"), ("yellow", "square"))
SPLITS = ("train", "heldout", "all")

SIZE_JITTER = 0.10  # radius times a factor in [1 - 0.10, 1 + 0.10]
POSITION_JITTER = 0.025  # centre moved by at most this in x and in y
BACKGROUND = (0.10, 0.30)  # grey level range of the background
SUPERSAMPLE = 4  # render at 4x, then average 4x4 blocks (anti-aliasing)
_CHUNK = 512  # images rendered at once: bounds memory at about 512 * Sy * Sx floats
# How far a shape can reach from its position's nominal centre: 1.15 r at the largest radius, plus the jitter.
_REACH = 1.15 * max(SIZE_RADIUS.values()) * (1 + SIZE_JITTER) + POSITION_JITTER


def _index(value, names: tuple[str, ...], what: str) -> int:
    """Index of ``value`` (a name or an integer index) in ``names``."""
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(names)}")
        return names.index(value)
    i = int(value)
    if not 0 <= i < len(names):
        raise ValueError(f"{what} index {i} out of range 0..{len(names) - 1}")
    return i


def pair_index(colour, shape):
    """Index 0..24 of a colour-shape pair: ``COLOURS.index(colour) * 5 + SHAPES.index(shape)``.

    Takes names or integer indices; integer tensors work element-wise, so
    ``pair_index(data.colour, data.shape)`` gives the 25-way labels of a whole data set.
    """
    if isinstance(colour, torch.Tensor) or isinstance(shape, torch.Tensor):
        return torch.as_tensor(colour) * len(SHAPES) + torch.as_tensor(shape)
    return _index(colour, COLOURS, "colour") * len(SHAPES) + _index(shape, SHAPES, "shape")


def caption(colour, shape, size=None, position=None, template: int | str = 0) -> str:
    """Fill a caption template: ``caption("red", "circle", "small", "left")`` -> "a small red circle on the left".

    Attributes are names or integer indices. ``template`` is an index into ``TEMPLATES`` or any
    format string with ``{colour}``, ``{shape}``, ``{size}`` and ``{position}`` fields, e.g.
    ``caption("red", "circle", template="a photo of a {colour} {shape}")``. ``size`` and
    ``position`` may be left out when the template does not use them.
    """
    text = template if isinstance(template, str) else TEMPLATES[int(template)]
    fields = {"colour": COLOURS[_index(colour, COLOURS, "colour")], "shape": SHAPES[_index(shape, SHAPES, "shape")]}
    if size is not None:
        fields["size"] = SIZES[_index(size, SIZES, "size")]
    if position is not None:
        fields["position"] = POSITION_PHRASES[POSITIONS[_index(position, POSITIONS, "position")]]
    try:
        return text.format_map(fields)
    except KeyError as missing:
        raise ValueError(f"template {text!r} needs {missing.args[0]!r}, which was not given") from None


def class_prompts(template: str = "a {colour} {shape}") -> list[str]:
    """The 25 colour-shape prompts in ``PAIRS`` order (prompt ``i`` is pair ``i``), for zero-shot classification."""
    return [caption(c, s, template=template) for c, s in PAIRS]


@dataclass(frozen=True, eq=False)
class Shapes:
    """A batch of captioned shapes; the integer labels index ``COLOURS``, ``SHAPES``, ``SIZES``, ``POSITIONS``."""

    images: torch.Tensor  # (N, 3, size, size) float32 in [0, 1]
    captions: list[str]  # N captions
    colour: torch.Tensor  # (N,) int64
    shape: torch.Tensor  # (N,) int64
    size_id: torch.Tensor  # (N,) int64, 0 small, 1 large
    position: torch.Tensor  # (N,) int64
    template: torch.Tensor  # (N,) int64, the caption template used
    centre: torch.Tensor  # (N, 2) float32, (x, y) of the shape's centre, fraction of the side, y down
    radius: torch.Tensor  # (N,) float32, the shape's radius r, fraction of the side

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def pair(self) -> torch.Tensor:
        """(N,) colour-shape pair labels 0..24, the classes of ``class_prompts()``."""
        return pair_index(self.colour, self.shape)

    @property
    def heldout(self) -> torch.Tensor:
        """(N,) bool: whether each sample's colour-shape pair is in ``HELD_OUT``."""
        return torch.isin(self.pair, torch.tensor([pair_index(c, s) for c, s in HELD_OUT]))


# Each shape as an inside test on unit coordinates u = (x - cx) / r, v = (y - cy) / r (y down).
# u has shape (n, 1, Sx) (varies along x), v has shape (n, Sy, 1) (varies along y): the masks
# broadcast to (n, Sy, Sx) with one or two whole-image operations each.
def _circle(u, v):
    return u * u + v * v <= 1.0


def _square(u, v):
    return (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)


def _triangle(u, v):  # apex (0, -1), base from (-1.15, 1) to (1.15, 1)
    return (v <= 1.0) & (v >= -1.0 + (2.0 / 1.15) * np.abs(u))


def _diamond(u, v):
    return np.abs(u) + np.abs(v) <= 1.15


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.34) & (av <= 1.0)) | ((av <= 0.34) & (au <= 1.0))


_MASKS = (_circle, _square, _triangle, _diamond, _cross)  # in SHAPES order


def _coverage(shape, position, cx, cy, r, size: int) -> np.ndarray:
    """Fraction of each pixel covered by each image's shape: (N, size, size) float32 in [0, 1].

    Only a window around each position is rendered (a shape never reaches further than
    ``_REACH`` from its position's nominal centre), which saves about two thirds of the work.
    """
    cover = np.zeros((len(shape), size, size), dtype=np.float32)
    for p, (px, py) in enumerate(POSITION_XY[name] for name in POSITIONS):
        x0, x1 = max(0, int(np.floor((px - _REACH) * size))), min(size, int(np.ceil((px + _REACH) * size)))
        y0, y1 = max(0, int(np.floor((py - _REACH) * size))), min(size, int(np.ceil((py + _REACH) * size)))
        tx = (np.arange(x0 * SUPERSAMPLE, x1 * SUPERSAMPLE, dtype=np.float32) + 0.5) / (size * SUPERSAMPLE)  # (Sx,)
        ty = (np.arange(y0 * SUPERSAMPLE, y1 * SUPERSAMPLE, dtype=np.float32) + 0.5) / (size * SUPERSAMPLE)  # (Sy,)
        for k, inside in enumerate(_MASKS):
            idx = np.flatnonzero((position == p) & (shape == k))
            for start in range(0, len(idx), _CHUNK):
                j = idx[start : start + _CHUNK]
                u = (tx[None, None, :] - cx[j, None, None]) / r[j, None, None]  # (n, 1, Sx) along x
                v = (ty[None, :, None] - cy[j, None, None]) / r[j, None, None]  # (n, Sy, 1) along y
                mask = inside(u, v)  # (n, Sy, Sx) bool
                blocks = mask.reshape(len(j), y1 - y0, SUPERSAMPLE, x1 - x0, SUPERSAMPLE)
                cover[j, y0:y1, x0:x1] = blocks.sum(axis=(2, 4), dtype=np.float32) / SUPERSAMPLE**2
    return cover


def make_shapes(n: int, size: int = 32, seed: int = 0, split: str = "train") -> Shapes:
    """Draw ``n`` captioned shapes at ``size`` x ``size`` pixels; see the module docstring for the design.

    ``split`` is "train" (never a pair of ``HELD_OUT``), "heldout" (only those pairs) or "all".
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    held = [pair_index(c, s) for c, s in HELD_OUT]
    allowed = {"train": [i for i in range(len(PAIRS)) if i not in held], "heldout": held,
               "all": list(range(len(PAIRS)))}[split]

    # One (n, 8) block of uniforms, one row per sample, so a smaller n gives a prefix of a larger one.
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    U = rng.random((n, 8))  # (N, 8) in [0, 1)
    pair = np.asarray(allowed)[(U[:, 0] * len(allowed)).astype(np.int64)]  # (N,)
    colour, shape = pair // len(SHAPES), pair % len(SHAPES)
    size_id = (U[:, 1] * len(SIZES)).astype(np.int64)
    position = (U[:, 2] * len(POSITIONS)).astype(np.int64)
    template = (U[:, 3] * len(TEMPLATES)).astype(np.int64)

    radius = np.array([SIZE_RADIUS[s] for s in SIZES])[size_id] * (1 + SIZE_JITTER * (2 * U[:, 4] - 1))  # (N,)
    xy = np.array([POSITION_XY[p] for p in POSITIONS])[position]  # (N, 2)
    centre = xy + POSITION_JITTER * (2 * U[:, 5:7] - 1)  # (N, 2): x, y
    centre, radius = centre.astype(np.float32), radius.astype(np.float32)  # the geometry as drawn and as kept
    grey = BACKGROUND[0] + (BACKGROUND[1] - BACKGROUND[0]) * U[:, 7]  # (N,)

    alpha = torch.from_numpy(_coverage(shape, position, *centre.T, radius, size))[:, None]  # (N, 1, size, size)
    rgb = torch.tensor([COLOUR_RGB[c] for c in COLOURS], dtype=torch.float32)[torch.from_numpy(colour)]  # (N, 3)
    bg = torch.from_numpy(grey.astype(np.float32))[:, None, None, None]  # (N, 1, 1, 1)
    images = bg * (1 - alpha) + rgb[:, :, None, None] * alpha  # (N, 3, size, size)

    attributes = zip(colour.tolist(), shape.tolist(), size_id.tolist(), position.tolist(), template.tolist())
    captions = [caption(c, s, z, p, template=t) for c, s, z, p, t in attributes]
    labels = (torch.as_tensor(a, dtype=torch.int64) for a in (colour, shape, size_id, position, template))
    return Shapes(images.contiguous(), captions, *labels, centre=torch.from_numpy(centre),
                  radius=torch.from_numpy(radius))
