"""Tests for course_utils.data (photos, digits) and course_utils.data.shapes (captioned shapes)."""
import math
import re

import numpy as np
import pytest
import torch

from course_utils.data import shapes as S
from course_utils.data.digits import Split, digits, digits_split, train_test_split_tensors
from course_utils.data.photos import PHOTOS, photo

# ---------------------------------------------------------------------------------------------
# photos and digits


@pytest.mark.parametrize("name", PHOTOS)
def test_photo_is_float_rgb_in_unit_range(name):
    x = photo(name)
    assert x.dtype == torch.float32 and x.ndim == 3 and x.shape[0] == 3
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.max() > 0.5  # scaled by 255, not left in 0..1/255 or 0..255


def test_photo_camera_grey_becomes_three_equal_channels():
    x = photo("camera")
    assert x.shape == (3, 512, 512)
    torch.testing.assert_close(x[0], x[1])
    torch.testing.assert_close(x[0], x[2])


def test_photo_size_crops_the_centre_square_and_resizes():
    full = photo("chelsea")  # (3, 300, 451)
    assert full.shape == (3, 300, 451)
    small = photo("chelsea", size=32)
    assert small.shape == (3, 32, 32) and small.dtype == torch.float32
    assert 0.0 <= small.min() and small.max() <= 1.0
    left = (451 - 300) // 2
    crop = full[:, :, left : left + 300]
    # an antialiased resize keeps each channel's mean; a crop of another region would not
    torch.testing.assert_close(small.mean(dim=(1, 2)), crop.mean(dim=(1, 2)), atol=0.01, rtol=0)
    assert (small.mean(dim=(1, 2)) - full[:, :, :100].mean(dim=(1, 2))).abs().max() > 0.02


def test_photo_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError) as err:
        photo("dog")
    assert "dog" in str(err.value)
    for name in PHOTOS:
        assert name in str(err.value)


def test_digits_scaled_to_unit_range():
    x, y = digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert x.min() == 0.0 and x.max() == 1.0  # raw 0..16 divided by 16
    assert set(y.tolist()) == set(range(10))


def test_digits_upsampled():
    x8, _ = digits(8)
    x16, y16 = digits(16)
    assert x16.shape == (1797, 1, 16, 16) and x16.dtype == torch.float32 and y16.shape == (1797,)
    assert 0.0 <= x16.min() and x16.max() <= 1.0
    # bilinear upsampling keeps the picture: the mean ink per image barely changes
    torch.testing.assert_close(x16.mean(dim=(1, 2, 3)), x8.mean(dim=(1, 2, 3)), atol=0.03, rtol=0)


def test_digits_split_is_stratified_disjoint_and_deterministic():
    a = digits_split(size=8, test_fraction=0.2, seed=0)
    assert isinstance(a, Split)
    assert len(a.x_train) + len(a.x_test) == 1797 and len(a.x_train) == len(a.y_train)
    assert abs(len(a.x_test) - 0.2 * 1797) < 6
    for c in range(10):  # every class split 80/20, to within rounding
        n_test, n_all = (a.y_test == c).sum().item(), (a.y_train == c).sum().item() + (a.y_test == c).sum().item()
        assert abs(n_test - 0.2 * n_all) <= 0.5 + 1e-9
    # train and test hold different images: together they are the whole set
    x, _ = digits()
    rows = lambda t: {tuple(r) for r in t.flatten(1).tolist()}  # noqa: E731
    assert rows(a.x_train) | rows(a.x_test) == rows(x)
    b = digits_split(seed=0)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    c = digits_split(seed=1)
    assert not torch.equal(a.x_test, c.x_test)


def test_train_test_split_tensors_checks_its_arguments():
    x, y = torch.zeros(10, 2), torch.arange(10) % 2
    with pytest.raises(ValueError):
        train_test_split_tensors(x, y, test_fraction=1.0)
    with pytest.raises(ValueError):
        train_test_split_tensors(x, y[:5])
    s = train_test_split_tensors(x, y, test_fraction=0.4, seed=0)
    assert len(s.x_test) == 4 and sorted(s.y_test.tolist()) == [0, 0, 1, 1]


# ---------------------------------------------------------------------------------------------
# captioned shapes: the design


def test_attribute_sets():
    assert len(S.COLOURS) == len(S.SHAPES) == 5 and S.SIZES == ("small", "large") and len(S.POSITIONS) == 5
    assert set(S.COLOUR_RGB) == set(S.COLOURS) and set(S.POSITION_XY) == set(S.POSITIONS)
    assert set(S.POSITION_PHRASES) == set(S.POSITIONS)
    rgb = np.array([S.COLOUR_RGB[c] for c in S.COLOURS])
    gaps = [np.abs(rgb[i] - rgb[j]).max() for i in range(5) for j in range(i)]
    assert min(gaps) > 0.25  # colours far apart in RGB


def test_held_out_pairs_are_well_chosen():
    assert len(S.HELD_OUT) == 4
    colours = [c for c, _ in S.HELD_OUT]
    shapes = [s for _, s in S.HELD_OUT]
    assert len(set(colours)) == 4 and len(set(shapes)) == 4  # no shared colour or shape
    assert set(colours) <= set(S.COLOURS) and set(shapes) <= set(S.SHAPES)
    seen = [p for p in S.PAIRS if p not in S.HELD_OUT]
    assert {c for c, _ in seen} == set(S.COLOURS) and {s for _, s in seen} == set(S.SHAPES)


def test_pair_index_and_class_prompts():
    assert len(S.PAIRS) == 25
    for i, (c, s) in enumerate(S.PAIRS):
        assert S.pair_index(c, s) == i == S.pair_index(S.COLOURS.index(c), S.SHAPES.index(s))
    prompts = S.class_prompts()
    assert len(prompts) == 25 and len(set(prompts)) == 25
    assert prompts[S.pair_index("blue", "triangle")] == "a blue triangle"
    photo_prompts = S.class_prompts("a photo of a {colour} {shape}")
    assert photo_prompts[S.pair_index("red", "cross")] == "a photo of a red cross"
    labels = S.pair_index(torch.tensor([0, 4]), torch.tensor([1, 3]))
    assert labels.tolist() == [1, 23]
    with pytest.raises(ValueError):
        S.pair_index("pink", "circle")


def test_caption_fills_templates():
    assert S.caption("red", "circle", "small", "left") == "a small red circle on the left"
    assert S.caption(2, 1, 1, 2) == "a large blue square at the top"
    assert S.caption("green", "triangle", template=3) == "a green triangle"
    assert S.caption("yellow", "cross", "large", "centre", template=1) == "a yellow cross in the centre"
    assert S.caption("red", "diamond", template="a photo of a {colour} {shape}") == (
        "a photo of a red diamond"
    )
    with pytest.raises(ValueError, match="size"):
        S.caption("red", "circle", template=0)  # the template needs a size
    with pytest.raises(ValueError, match="colour"):
        S.caption("pink", "circle", "small", "left")
    for t in S.TEMPLATES:
        assert "{colour}" in t and "{shape}" in t
    assert sum("{size}" in t for t in S.TEMPLATES) > len(S.TEMPLATES) / 2  # most name the size
    assert sum("{position}" in t for t in S.TEMPLATES) > len(S.TEMPLATES) / 2  # and the position


# ---------------------------------------------------------------------------------------------
# captioned shapes: the data


@pytest.mark.parametrize("size", [32, 64])
def test_make_shapes_types_shapes_and_ranges(size):
    d = S.make_shapes(50, size=size, seed=0)
    assert isinstance(d, S.Shapes) and len(d) == 50
    assert d.images.shape == (50, 3, size, size) and d.images.dtype == torch.float32
    assert 0.0 <= d.images.min() and d.images.max() <= 1.0
    assert len(d.captions) == 50 and all(isinstance(c, str) for c in d.captions)
    for t, n in [(d.colour, 5), (d.shape, 5), (d.size_id, 2), (d.position, 5), (d.template, len(S.TEMPLATES))]:
        assert t.shape == (50,) and t.dtype == torch.int64 and 0 <= t.min() and t.max() < n
    assert d.centre.shape == (50, 2) and d.radius.shape == (50,)


def test_make_shapes_is_deterministic_by_seed():
    a, b = S.make_shapes(64, seed=5), S.make_shapes(64, seed=5)
    assert torch.equal(a.images, b.images) and a.captions == b.captions and torch.equal(a.colour, b.colour)
    c = S.make_shapes(64, seed=6)
    assert not torch.equal(a.images, c.images) and a.captions != c.captions


def test_make_shapes_prefix_and_resolution_independence():
    small, big = S.make_shapes(20, seed=3), S.make_shapes(200, seed=3)
    assert torch.equal(small.images, big.images[:20]) and small.captions == big.captions[:20]
    hi = S.make_shapes(20, size=64, seed=3)
    assert hi.captions == small.captions and torch.equal(hi.position, small.position)
    # the 64 px image, average-pooled to 32 px, is the 32 px image (both are exact coverage at 4x)
    pooled = torch.nn.functional.avg_pool2d(hi.images, 2)
    assert (pooled - small.images).abs().mean() < 0.01


def test_train_never_holds_out_pairs_and_heldout_only_holds_them():
    held = torch.tensor([S.pair_index(c, s) for c, s in S.HELD_OUT])
    train = S.make_shapes(2000, seed=0, split="train")
    assert not torch.isin(train.pair, held).any() and not train.heldout.any()
    assert set(train.colour.tolist()) == set(range(5)) and set(train.shape.tolist()) == set(range(5))
    assert len(set(train.pair.tolist())) == 21  # all seen pairs occur
    assert set(train.size_id.tolist()) == {0, 1} and set(train.position.tolist()) == set(range(5))
    assert set(train.template.tolist()) == set(range(len(S.TEMPLATES)))
    heldout = S.make_shapes(400, seed=0, split="heldout")
    assert set(heldout.pair.tolist()) == set(held.tolist()) and heldout.heldout.all()
    everything = S.make_shapes(2000, seed=0, split="all")
    assert len(set(everything.pair.tolist())) == 25
    with pytest.raises(ValueError, match="split"):
        S.make_shapes(4, split="test")
    with pytest.raises(ValueError):
        S.make_shapes(4, size=8)


def test_captions_name_the_right_attributes():
    d = S.make_shapes(600, seed=1, split="all")
    for i, text in enumerate(d.captions):
        c, s, z, p, t = (int(v[i]) for v in (d.colour, d.shape, d.size_id, d.position, d.template))
        words = set(re.findall(r"[a-z]+", text))
        assert words & set(S.COLOURS) == {S.COLOURS[c]}, text
        assert words & set(S.SHAPES) == {S.SHAPES[s]}, text
        if "{size}" in S.TEMPLATES[t]:
            assert words & set(S.SIZES) == {S.SIZES[z]}, text
        if "{position}" in S.TEMPLATES[t]:
            assert text.endswith(S.POSITION_PHRASES[S.POSITIONS[p]]), text
        assert text == S.caption(c, s, z, p, template=t)


def _alpha(d):
    """Per-pixel shape coverage recovered from the images: (N, H, W)."""
    rgb = torch.tensor([S.COLOUR_RGB[c] for c in S.COLOURS])[d.colour]  # (N, 3)
    bg = d.images[:, :, 0, 0]  # (N, 3) the corners are always background
    k = (rgb - bg).abs().argmax(dim=1)  # the channel where colour and background differ most
    i = torch.arange(len(d))
    return (d.images[i, k] - bg[i, k, None, None]) / (rgb[i, k] - bg[i, k])[:, None, None]


@pytest.mark.parametrize("size", [32, 64])
def test_images_show_their_labels(size):
    d = S.make_shapes(500, size=size, seed=2, split="all")
    rgb = torch.tensor([S.COLOUR_RGB[c] for c in S.COLOURS])[d.colour]  # (N, 3)
    # colour: every shape has fully covered pixels of exactly its colour
    exact = ((d.images - rgb[:, :, None, None]).abs().amax(dim=1) < 1e-5).flatten(1).any(dim=1)
    assert exact.all()
    a = _alpha(d)  # (N, H, W)
    # the shape never touches the border pixels, so it is never cut off
    border = torch.cat([a[:, 0], a[:, -1], a[:, :, 0], a[:, :, -1]], dim=1)
    assert border.abs().max() < 1e-5
    # size: the covered area matches the shape's analytic area, and small and large never overlap
    unit_area = torch.tensor([math.pi, 4 * 0.85**2, 2.3, 2 * 1.15**2, 4 * 0.68 - 0.68**2])[d.shape]
    area = a.sum(dim=(1, 2)) / size**2
    # (a 4x supersampled edge is off by up to half a subpixel: a few percent at 32 px)
    torch.testing.assert_close(area, unit_area * d.radius**2, rtol=2.5 / size, atol=0)
    assert area[d.size_id == 0].max() < area[d.size_id == 1].min()
    # position: the covered region's bounding box is centred nearest its labelled position
    ys, xs = torch.arange(size).view(1, -1, 1), torch.arange(size).view(1, 1, -1)
    on = a > 0.5
    big = torch.iinfo(torch.int64).max
    x0 = torch.where(on, xs, big).flatten(1).amin(1)
    x1 = torch.where(on, xs, -1).flatten(1).amax(1)
    y0 = torch.where(on, ys, big).flatten(1).amin(1)
    y1 = torch.where(on, ys, -1).flatten(1).amax(1)
    centre = torch.stack([(x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2], dim=1) / size  # (N, 2)
    nominal = torch.tensor([S.POSITION_XY[p] for p in S.POSITIONS])  # (5, 2)
    nearest = torch.cdist(centre, nominal).argmin(dim=1)
    assert torch.equal(nearest, d.position)


