"""The chapter 01 checks, both ways: every correct style passes with the very same printout, and
every classic mistake fails with a message that names it."""
import math
import re

import pytest
import torch
import torch.nn.functional as F
from check_helpers import fails, run
from einops import einsum, rearrange
from torch import nn

from course_utils.grading.checks.attention import check_multi_head_attention, check_scaled_dot_product_attention
from course_utils.models.attention import MultiHeadAttention as ReferenceMHA

# ------------------------------------------------------------- scaled dot-product attention, right

def sdpa_matmul(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def sdpa_einsum(q, k, v, mask=None):
    scores = einsum(q, k, "... i d, ... j d -> ... i j") * q.shape[-1] ** -0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(-1e9))
    weights = scores.softmax(-1)
    return einsum(weights, v, "... i j, ... j e -> ... i e"), weights


def sdpa_manual_softmax(q, k, v, mask=None):
    q = q / q.shape[-1] ** 0.5  # scale the queries first
    scores = torch.matmul(q, k.mT)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    weights = e / e.sum(dim=-1, keepdim=True)
    return torch.matmul(weights, v), weights


def sdpa_torch(q, k, v, mask=None):
    output = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + torch.zeros_like(scores).masked_fill(~mask, -1e4)  # additive mask
    return output, scores.softmax(dim=-1)


RIGHT_SDPA = [sdpa_matmul, sdpa_einsum, sdpa_manual_softmax, sdpa_torch]


def test_every_right_sdpa_prints_the_same():
    printed = [run(check_scaled_dot_product_attention, fn) for fn in RIGHT_SDPA]
    assert all(p == printed[0] for p in printed)
    assert printed[0].startswith("✓ returns (output, weights): output (2, 4, 5, 8) and weights (2, 4, 5, 6)")
    assert printed[0].count("✓") == 9 and printed[0].endswith("is correct.\n")
    assert not re.search(r"\d\.\d", printed[0])  # no raw floats


def test_checks_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    run(check_scaled_dot_product_attention, sdpa_matmul)
    run(check_multi_head_attention, ReferenceMHA)
    assert torch.equal(torch.get_rng_state(), before)


# ------------------------------------------------------------- scaled dot-product attention, wrong

def _planted(scale=None, softmax_dim=-1, fill="-inf", invert=False, after_softmax=False, nan_mask=False):
    def fn(q, k, v, mask=None):
        d = q.shape[-1]
        scores = q @ k.transpose(-2, -1) * (1 / math.sqrt(d) if scale is None else scale(q, k, v))
        if mask is not None and not after_softmax:
            m = mask if invert else ~mask
            if nan_mask:
                scores = scores * (~m) + m * float("-inf")
            elif fill is not None:
                scores = scores.masked_fill(m, float(fill))
        weights = scores.softmax(dim=softmax_dim)
        if mask is not None and after_softmax:
            weights = weights * mask
        return weights @ v, weights
    return fn


def _transposed_output(q, k, v, mask=None):
    out, w = sdpa_matmul(q, k, v, mask)
    return out.transpose(1, 2), w


def _hard_coded_dims(q, k, v, mask=None):
    scores = q @ k.transpose(2, 3) / math.sqrt(q.shape[3])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = scores.softmax(dim=3)
    return w @ v, w


def _in_place(q, k, v, mask=None):
    q /= math.sqrt(q.shape[-1])
    w = (q @ k.mT).softmax(-1) if mask is None else (q @ k.mT).masked_fill(~mask, -1e9).softmax(-1)
    return w @ v, w


def _detached(q, k, v, mask=None):
    out, w = sdpa_matmul(q, k, v, mask)
    return out.detach(), w.detach()


def _returns_scores(q, k, v, mask=None):
    scores = q @ k.mT / math.sqrt(q.shape[-1])
    return scores.softmax(-1) @ v, scores


def _crashes(q, k, v, mask=None):
    return (q @ k) @ v, None  # k not transposed


def _stub(q, k, v, mask=None):
    raise NotImplementedError()


SDPA_BUGS = {
    "transposed output": (_transposed_output, "expected output shape (2, 4, 5, 8), got (2, 5, 4, 8)"),
    "swapped return": (lambda q, k, v, mask=None: sdpa_matmul(q, k, v, mask)[::-1],
                       "returned (weights, output); expected (output, weights)"),
    "one tensor": (lambda q, k, v, mask=None: sdpa_matmul(q, k, v, mask)[0], "expected a pair (output, weights)"),
    "softmax over queries": (_planted(softmax_dim=-2),
                             "weights do not sum to 1 over the keys (did you take the softmax over the wrong dimension?)"),
    "softmax over heads": (_planted(softmax_dim=1), "did you take the softmax over the wrong dimension?"),
    "returns scores": (_returns_scores, "return the softmax of the scores, not the scores"),
    "no scaling": (_planted(scale=lambda q, k, v: 1.0), "scores are not divided by sqrt(d_k)"),
    "divided by d_k": (_planted(scale=lambda q, k, v: 1 / q.shape[-1]), "divided by d_k instead of sqrt(d_k)"),
    "times sqrt(d_k)": (_planted(scale=lambda q, k, v: math.sqrt(q.shape[-1])), "multiplied by sqrt(d_k)"),
    "sqrt of v's width": (_planted(scale=lambda q, k, v: 1 / math.sqrt(v.shape[-1])), "sqrt(8) = sqrt(v.shape[-1])"),
    "sqrt of the heads": (_planted(scale=lambda q, k, v: 1 / math.sqrt(q.shape[1])), "sqrt(4) = sqrt(q.shape[1])"),
    "hard-coded dimensions": (_hard_coded_dims, "your function raised IndexError for q of shape (5, 16)",
                              "index dimensions from the end"),
    "mask ignored": (_planted(fill=None),
                     "masked keys still receive weight: fill them with -inf (or a large negative) before the softmax"),
    "mask filled with 0": (_planted(fill="0"), "masked keys still receive weight"),
    "mask inverted": (_planted(invert=True), "the mask is inverted: True means the query MAY attend"),
    "mask inverted, large negative": (_planted(invert=True, fill="-1e9"), "the mask is inverted"),
    "mask after the softmax": (_planted(after_softmax=True), "apply the mask to the scores before the softmax"),
    "-inf times 0": (_planted(nan_mask=True), "weights contain NaN"),
    "in place": (_in_place, "changed its input q in place"),
    "detached": (_detached, "no gradient flows back to q"),
    "crashes": (_crashes, "your function raised RuntimeError"),
    "stub": (_stub, "not implemented yet"),
}


@pytest.mark.parametrize("bug", SDPA_BUGS)
def test_sdpa_bug_is_named(bug):
    fn, *fragments = SDPA_BUGS[bug]
    fails(check_scaled_dot_product_attention, fn, *fragments)


def test_not_callable():
    fails(check_scaled_dot_product_attention, sdpa_matmul(torch.ones(1, 2), torch.ones(1, 2), torch.ones(1, 2)),
          "pass the function itself")


# -------------------------------------------------------------------------- multi-head attention, right

class LoopMHA(nn.Module):
    """One head at a time, slicing the projections' outputs, with sdpa_matmul."""

    def __init__(self, dim, num_heads):
        super().__init__()
        if dim % num_heads:
            raise ValueError("dim must be divisible by num_heads")
        self.h, self.dk = num_heads, dim // num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, context=None, mask=None):
        context = x if context is None else context
        q, k, v = self.q_proj(x), self.k_proj(context), self.v_proj(context)
        B, N, M = x.shape[0], x.shape[1], context.shape[1]
        heads = []
        for i in range(self.h):
            s = slice(i * self.dk, (i + 1) * self.dk)
            m = None if mask is None else mask.expand(B, self.h, N, M)[:, i]
            heads.append(sdpa_einsum(q[..., s], k[..., s], v[..., s], m)[0])
        return self.out_proj(torch.cat(heads, dim=-1))


class ViewMHA(nn.Module):
    """view/transpose on PyTorch's fused kernel; returns (output, weights)-less output only."""

    def __init__(self, dim, num_heads):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} is not a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, context=None, mask=None):
        B, N, D = x.shape
        c = x if context is None else context
        M = c.shape[1]
        q = self.q_proj(x).view(B, N, self.num_heads, -1).transpose(1, 2)
        k = self.k_proj(c).view(B, M, self.num_heads, -1).transpose(1, 2)
        v = self.v_proj(c).view(B, M, self.num_heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(B, N, D))


class EinopsTupleMHA(ReferenceMHA):
    """The course's einops module, returning (output, weights) always."""

    def forward(self, x, context=None, mask=None):
        return super().forward(x, context, mask, return_weights=True)


RIGHT_MHA = [ReferenceMHA, LoopMHA, ViewMHA, EinopsTupleMHA]


def test_every_right_mha_prints_the_same():
    printed = [run(check_multi_head_attention, cls) for cls in RIGHT_MHA]
    assert all(p == printed[0] for p in printed)
    assert "✓ self-attention: x (2, 5, 32) -> (2, 5, 32)" in printed[0]
    assert printed[0].count("✓") == 10 and printed[0].endswith("is correct.\n")
    assert not re.search(r"\d\.\d", printed[0])


# -------------------------------------------------------------------------- multi-head attention, wrong

class Planted(ViewMHA):
    """ViewMHA with one mistake, chosen by the subclass's ``bug``."""
    bug = None

    def forward(self, x, context=None, mask=None):
        bug = self.bug
        B, N, D = x.shape
        H = self.num_heads
        c = x if (context is None or bug == "ignores context") else context
        if bug == "queries from context":
            x, c = c, x
            N = x.shape[1]
        if bug == "mask inverted" and mask is not None:
            mask = ~mask
        if bug == "mask ignored":
            mask = None
        q_proj, k_proj, v_proj = self.q_proj, self.k_proj, self.v_proj
        if bug == "kv swapped":
            k_proj, v_proj = v_proj, k_proj
        if bug == "qk swapped":
            q_proj, k_proj = k_proj, q_proj
        q, k, v = q_proj(x), k_proj(c), v_proj(c)
        if bug in ("one head", "one head, sqrt(d_k)"):
            H = 1
        if bug == "split without transpose":
            q, k, v = (t.reshape(B, H, t.shape[1], -1) for t in (q, k, v))
        elif bug == "split (d h)":
            q, k, v = (rearrange(t, "b l (d h) -> b h l d", h=H) for t in (q, k, v))
        else:
            q, k, v = (rearrange(t, "b l (h d) -> b h l d", h=H) for t in (q, k, v))
        scale = {"scaled by sqrt(dim)": D ** -0.5, "no scaling": 1.0, "divided by d_k": 1 / q.shape[-1],
                 "one head, sqrt(d_k)": (D // self.num_heads) ** -0.5}
        scores = q @ k.mT * scale.get(bug, q.shape[-1] ** -0.5)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        out = scores.softmax(-2 if bug == "softmax over queries" else -1) @ v
        if bug == "merge without transpose":
            out = out.reshape(B, N, D)
        else:
            out = rearrange(out, "b h n d -> b n (d h)" if bug == "split (d h)" else "b h n d -> b n (h d)")
        if bug == "detached":
            out = out.detach()
        return out if bug == "no out_proj" else self.out_proj(out)


def planted(name):
    return type(name.replace(" ", "_"), (Planted,), {"bug": name})


class NoCheck(ReferenceMHA):
    def __init__(self, dim, num_heads):
        nn.Module.__init__(self)
        self.dim, self.num_heads = dim, num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))


class AssertCheck(NoCheck):
    def __init__(self, dim, num_heads):
        assert dim % num_heads == 0
        super().__init__(dim, num_heads)


class NoBias(ReferenceMHA):
    def __init__(self, dim, num_heads):
        super().__init__(dim, num_heads)
        self.k_proj = nn.Linear(dim, dim, bias=False)


class OtherName(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(dim, dim) for _ in range(4))


class PerHeadProjections(ReferenceMHA):
    def __init__(self, dim, num_heads):
        super().__init__(dim, num_heads)
        self.q_proj = nn.Linear(dim, dim // num_heads)


class Stub(nn.Module):
    def __init__(self, dim, num_heads):
        raise NotImplementedError()


MHA_BUGS = {
    "scaled by sqrt(dim)": (planted("scaled by sqrt(dim)"), "scaled by sqrt(dim) instead of sqrt(dim / num_heads)"),
    "no scaling": (planted("no scaling"), "scores are not divided by sqrt(d_k)"),
    "one head": (planted("one head"), "single head"),
    "one head, sqrt(d_k)": (planted("one head, sqrt(d_k)"), "single head"),
    "divided by d_k": (planted("divided by d_k"), "divided by d_k instead of sqrt(d_k)"),
    "split without transpose": (planted("split without transpose"), "heads split incorrectly"),
    "split (d h)": (planted("split (d h)"), "heads split incorrectly"),
    "qk swapped": (planted("qk swapped"), "q_proj and k_proj are swapped"),
    "softmax over queries": (planted("softmax over queries"), "the softmax is taken over the queries"),
    "merge without transpose": (planted("merge without transpose"), "heads merged incorrectly"),
    "no out_proj": (planted("no out_proj"), "out_proj is never applied"),
    "kv swapped": (planted("kv swapped"), "k_proj and v_proj are swapped"),
    "ignores context": (planted("ignores context"), "keys and values must come from `context` when it is given"),
    "queries from context": (planted("queries from context"), "queries must come from x",
                             "expected output shape (2, 5, 32)"),
    "mask inverted": (planted("mask inverted"), "the mask is inverted: True means the query MAY attend"),
    "mask ignored": (planted("mask ignored"), "masked keys still receive weight"),
    "detached": (planted("detached"), "no gradient flows back to q_proj.weight"),
    "no ValueError": (NoCheck, "expected ValueError for dim=10, num_heads=3"),
    "AssertionError instead": (AssertCheck, "expected ValueError for dim=10, num_heads=3, got AssertionError"),
    "no bias": (NoBias, "k_proj must have a bias"),
    "other name": (OtherName, "has no attribute out_proj"),
    "per-head projection": (PerHeadProjections, "q_proj must be nn.Linear(32, 32)"),
    "stub": (Stub, "not implemented yet"),
    "not a module": (lambda dim, num_heads: object(), "must be a subclass of nn.Module"),
}


@pytest.mark.parametrize("bug", MHA_BUGS)
def test_mha_bug_is_named(bug):
    cls, *fragments = MHA_BUGS[bug]
    fails(check_multi_head_attention, cls, *fragments)


def test_the_planted_mistakes_are_told_apart():
    """Each mistake the MHA check knows gives an output unlike the right one and unlike the others."""
    from course_utils.grading.checks import close
    from course_utils.grading.checks.attention import _MHA_MISTAKES, _mha

    g = torch.Generator().manual_seed(0)
    P = {"num_heads": 4, **{name: (torch.randn(32, 32, generator=g) / 32 ** 0.5, torch.randn(32, generator=g) / 10)
                            for name in ("q_proj", "k_proj", "v_proj", "out_proj")}}
    x = torch.randn(2, 5, 32, generator=g)
    outputs = [("right", _mha(P, x))] + [(message, _mha(P, x, **mistake)) for message, mistake in _MHA_MISTAKES]
    for i, (message_i, out_i) in enumerate(outputs):
        for message_j, out_j in outputs[i + 1:]:
            assert message_i == message_j or not close(out_i, out_j), (message_i, message_j)
