"""Tests for course_utils.teaching.plotting: each helper draws what it is given and returns the axes."""
import matplotlib

matplotlib.use("Agg")  # no display: the same as MPLBACKEND=Agg

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from course_utils.teaching.plotting import attention_heatmap, attention_over_image, image_grid  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_image_grid_draws_a_batch_tensor():
    x = torch.rand(5, 3, 8, 8)
    axes = image_grid(x, titles=[f"#{i}" for i in range(5)], ncols=3)
    assert isinstance(axes, np.ndarray) and len(axes) == 6 and all(isinstance(a, Axes) for a in axes)
    for i in range(5):
        shown = axes[i].images[0].get_array()
        np.testing.assert_allclose(np.asarray(shown), x[i].permute(1, 2, 0).numpy())  # (H, W, 3)
        assert axes[i].get_title() == f"#{i}" and axes[i].title.get_fontsize() <= 10
        assert not axes[i].axison
    assert len(axes[5].images) == 0 and not axes[5].axison  # the spare cell stays empty


def test_image_grid_accepts_lists_grey_and_given_axes():
    hwc = np.random.rand(6, 7, 3)
    chw = torch.rand(3, 6, 7)
    grey = torch.rand(1, 6, 7)
    _, given = plt.subplots(1, 3)
    axes = image_grid([hwc, chw, grey], axes=given)
    assert list(axes) == list(given.ravel())
    assert axes[0].images[0].get_array().shape == (6, 7, 3)
    assert axes[1].images[0].get_array().shape == (6, 7, 3)
    assert axes[2].images[0].get_array().shape == (6, 7)
    assert axes[2].images[0].get_cmap().name == "gray" and axes[2].images[0].get_clim() == (0.0, 1.0)
    with pytest.raises(ValueError, match="titles"):
        image_grid(torch.rand(2, 1, 4, 4), titles=["only one"])


def test_attention_heatmap_puts_queries_on_y_and_keys_on_x():
    w = torch.softmax(torch.randn(3, 4), dim=-1)
    ax = attention_heatmap(w, x_labels=list("abcd"), y_labels=["q0", "q1", "q2"], title="head 0")
    assert isinstance(ax, Axes)
    assert ax.get_xlabel() == "key" and ax.get_ylabel() == "query" and ax.get_title() == "head 0"
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), w.numpy())  # row = query
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["q0", "q1", "q2"]
    assert len(ax.figure.axes) == 2  # the colour bar
    assert len(attention_heatmap(w, colorbar=False).figure.axes) == 1
    with pytest.raises(ValueError, match="queries, keys"):
        attention_heatmap(torch.rand(4))
    with pytest.raises(ValueError, match="x_labels"):
        attention_heatmap(w, x_labels=["a"])


def test_attention_over_image_overlays_patch_blocks():
    image = torch.rand(3, 32, 48)  # (3, H, W): 4 x 6 patches of 8
    w = torch.softmax(torch.randn(24), dim=0)
    ax = attention_over_image(image, w, patch_size=8, query=7)
    assert isinstance(ax, Axes) and len(ax.images) == 2
    overlay = ax.images[1]
    np.testing.assert_allclose(np.asarray(overlay.get_array()), w.view(4, 6).numpy())  # row-major patches
    assert overlay.get_extent() == [-0.5, 47.5, 31.5, -0.5] and overlay.get_alpha() == 0.6
    assert len(ax.lines) == (6 - 1) + (4 - 1)  # the patch grid's inner lines
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == 1 and boxes[0].get_xy() == (1 * 8 - 0.5, 1 * 8 - 0.5)  # patch 7 = row 1, col 1
    # (H/P, W/P) weights and (H, W, 3) images work too; no grid, no query box
    ax2 = attention_over_image(image.permute(1, 2, 0).numpy(), w.view(4, 6), 8, grid=False)
    assert len(ax2.lines) == 0 and len(ax2.patches) == 0


def test_attention_over_image_rejects_the_wrong_number_of_patches():
    image = torch.rand(3, 32, 32)  # 16 patches of 8
    with pytest.raises(ValueError, match=r"expected 16 patch weights.*got shape \(15,\)"):
        attention_over_image(image, torch.rand(15), patch_size=8)
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        attention_over_image(image, torch.rand(17), patch_size=8)  # the [CLS] weight left in
    with pytest.raises(ValueError, match="expected 16"):
        attention_over_image(image, torch.rand(2, 8), patch_size=8)
    with pytest.raises(ValueError, match="does not divide"):
        attention_over_image(image, torch.rand(16), patch_size=5)


def test_similarity_grid_draws_one_tile_per_patch():
    from course_utils.teaching.plotting import similarity_grid

    S = torch.eye(6)
    axes = similarity_grid(S, 2, 3)
    assert axes.shape == (2, 3)
    tile = axes[1, 2].images[0].get_array()
    assert tile.shape == (2, 3) and tile[1, 2] == 1 and tile.sum() == 1  # patch 5 is most similar to itself
    with pytest.raises(ValueError, match=r"\(6, 6\) similarity matrix for a 2 x 3"):
        similarity_grid(torch.eye(5), 2, 3)
    plt.close("all")
