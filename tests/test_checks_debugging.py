"""The debugging exercise's check, both ways: every fix however written passes, each planted mistake left in is
named, and anything else a student might change is caught."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from check_helpers import fails, run
from torch import nn

from course_utils.grading.checks import CheckFailed
from course_utils.grading.checks.debugging import MISTAKES, check_debugged_vit


def tiny_vit(left=(), style="given", softmax_dim=-1, rename=False, raises=False, scale=None):
    """A TinyViT with the named mistakes left in; ``style`` "sdpa" is a correct fix written another way."""

    class TinyViT(nn.Module):
        def __init__(self, image_size=8, patch_size=2, channels=1, dim=32, depth=2, heads=4, classes=10):
            super().__init__()
            self.heads = heads
            n = (image_size // patch_size) ** 2
            self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)
            self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.pos_embedding = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
            self.blocks = nn.ModuleList(nn.ModuleDict({
                "norm1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(dim, dim),
                "norm2": nn.LayerNorm(dim),
                "mlp": nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)),
            }) for _ in range(depth))
            self.norm = nn.LayerNorm(dim)
            if rename:
                self.classifier = nn.Linear(dim, classes)
            else:
                self.head = nn.Linear(dim, classes)

        def attention(self, block, x):
            B, T, D = x.shape
            h, d = self.heads, D // self.heads
            if style == "sdpa":  # a correct fix in another style: einsum-free, PyTorch's fused attention
                qkv = block["qkv"](x).unflatten(-1, (3, h, d)).permute(2, 0, 3, 1, 4)  # (3, B, h, T, d)
                out = F.scaled_dot_product_attention(*qkv)
                return block["proj"](out.transpose(1, 2).flatten(2))
            q, k, v = block["qkv"](x).chunk(3, dim=-1)
            if "heads" in left:
                q, k, v = (t.reshape(B, h, T, d) for t in (q, k, v))
            else:
                q, k, v = (t.reshape(B, T, h, d).transpose(1, 2) for t in (q, k, v))
            scores = torch.einsum("bhid,bhjd->bhij", q, k)
            if "scale" not in left:
                scores = scores * (d ** -0.5 if scale is None else scale)
            out = (scores.softmax(dim=softmax_dim) @ v).transpose(1, 2).reshape(B, T, D)
            return block["proj"](out)

        def forward(self, images):
            if raises:
                raise IndexError("tuple index out of range")
            x = self.patch_embed(images).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
            for block in self.blocks:
                x = x + self.attention(block, block["norm1"](x))
                x = x + block["mlp"](block["norm2"](x))
            x = self.norm(x)
            return self.head(x[:, -1] if "readout" in left else x[:, 0])

    return TinyViT


@pytest.mark.parametrize("style", ["given", "sdpa"])
def test_every_correct_fix_passes(style):
    out = run(check_debugged_vit, tiny_vit(style=style))
    assert out.count("✓ fixed:") == 3, out


@pytest.mark.parametrize("left", [c for n in (1, 2, 3) for c in itertools.combinations(MISTAKES, n)],
                         ids=lambda c: "+".join(c))
def test_the_check_names_what_is_fixed_and_what_remains(left, capsys):
    with pytest.raises(CheckFailed, match=f"{3 - len(left)} of 3 mistakes fixed; still there:") as info:
        check_debugged_vit(tiny_vit(left))
    message, printed = str(info.value), capsys.readouterr().out
    for name, (label, hint) in MISTAKES.items():
        assert (f"✓ fixed: {label}" in printed) == (name not in left), printed
        assert (hint in message) == (name in left), message


def test_a_new_mistake_is_caught_whoever_made_it():
    fails(check_debugged_vit, tiny_vit(softmax_dim=-2), "matches neither the fixed model nor any mix")


def test_the_given_parameters_must_stay():
    fails(check_debugged_vit, tiny_vit(rename=True), "keep the given parameters", "missing head.bias, head.weight",
          "new classifier.bias, classifier.weight")


def test_errors_in_the_students_code_are_named():
    fails(check_debugged_vit, tiny_vit(raises=True), "your TinyViT's forward raised IndexError")
    fails(check_debugged_vit, tiny_vit()(), "expected the class TinyViT")


def test_the_check_leaves_the_global_random_state_alone():
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    run(check_debugged_vit, tiny_vit())
    assert torch.equal(torch.rand(1), before)
    assert math.isfinite(before.item())


@pytest.mark.parametrize("scale, name", [(32 ** -0.5, "1/sqrt(D)"), (1 / 8, "1/d")])
def test_a_wrong_scale_is_named(scale, name):
    fails(check_debugged_vit, tiny_vit(scale=scale), f"now scaled by {name}")
    fails(check_debugged_vit, tiny_vit(("heads",), scale=scale), f"now scaled by {name}")
