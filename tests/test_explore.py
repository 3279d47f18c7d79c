"""The explorers: every control redraws the figure, and a viewer without widgets gets a picture."""
import base64

import pytest
import torch

from course_utils.models.diffusion import alphas_cumprod, build_denoiser, cosine_betas
from course_utils.teaching.explore import attention_explorer, diffusion_explorer, guidance_explorer

PNG = b"\x89PNG\r\n\x1a\n"


def uniform_maps(layers=2, heads=3, n=17):
    torch.manual_seed(0)
    return [torch.rand(heads, n, n).softmax(-1) for _ in range(layers)]


def assert_static_fallback(explorer, words):
    bundle = explorer._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]).startswith(PNG), "no PNG for viewers without widgets"
    assert base64.b64decode(bundle["image/png"]) == explorer.png(), "the PNG must be the current figure"
    assert "application/vnd.jupyter.widget-view+json" in bundle, "no widget for JupyterLab"
    for word in words:
        assert word in bundle["text/plain"], f"{word!r} missing from {bundle['text/plain']!r}"
    assert "course-explorer" in explorer.widget._dom_classes
    assert "course-explorer-figure" in explorer.figure._dom_classes


def test_attention_explorer_redraws_on_every_control():
    image = torch.rand(1, 16, 16)
    explorer = attention_explorer(image, uniform_maps(), patch_size=4, cls_token=True, layer=1, query=5)
    assert explorer.values == {"layer": 1, "head": 0, "query": 5}
    assert_static_fallback(explorer, ["2 x 3 maps of 17 tokens", "): layer 1, head 0", "patch 4 (row 1, column 0)"])
    assert explorer.controls["layer"].description == "layer"
    seen = {explorer.png()}
    for move in [{"head": 2}, {"layer": 0}, {"query": 0}, {"query": 16}]:
        explorer.set(**move)
        assert explorer.png() not in seen, f"{move} did not change the figure"
        seen.add(explorer.png())
    assert explorer.redraws == 5
    assert "[CLS]" in repr(explorer.set(query=0))


def test_attention_explorer_names_bad_input():
    image = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="has 16 plus \\[CLS\\] = 17"):
        attention_explorer(image, uniform_maps(n=16), patch_size=4, cls_token=True)
    with pytest.raises(ValueError, match="one per layer"):
        attention_explorer(image, [torch.rand(17, 17)], patch_size=4, cls_token=True)
    with pytest.raises(ValueError, match="expected 3 head names"):
        attention_explorer(image, uniform_maps(), patch_size=4, cls_token=True, head_names=["a", "b"])
    with pytest.raises(ValueError, match="expected \\(3, H, W\\)"):
        attention_explorer(torch.rand(16, 16), uniform_maps(), patch_size=4, cls_token=True)
    explorer = attention_explorer(image, uniform_maps(), patch_size=4, cls_token=True)
    with pytest.raises(TypeError, match="unknown control"):
        explorer.set(timestep=3)


def test_diffusion_explorer_moves_along_one_trajectory():
    torch.manual_seed(0)
    model = build_denoiser(image_size=8, channels=1, widths=(8, 16)).eval()
    abar = alphas_cumprod(cosine_betas(100))
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1
    explorer = diffusion_explorer(model, x0, abar, t=50, step=5)
    assert_static_fallback(explorer, ["t = 50", "T = 100"])
    start = explorer.png()
    explorer.set(t=95)
    assert explorer.png() != start
    explorer.set(t=50)
    assert explorer.png() == start, "the same t must give the same picture: the noise is drawn once"


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_guidance_explorer_redraws_on_prompt_and_scale():
    from course_utils.weights.recipes import load_judge, load_sd

    explorer = guidance_explorer(load_sd(), prompt="a red circle", n=2, steps=3, judge=load_judge())
    assert_static_fallback(explorer, ['"a red circle"', "guidance 3"])
    start = explorer.png()
    explorer.set(guidance_scale=7.5)
    after_scale = explorer.png()
    explorer.set(prompt="a blue square")
    assert len({start, after_scale, explorer.png()}) == 3, "prompt and scale must each change the picture"
