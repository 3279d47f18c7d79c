"""Checks for exercise 01, attention (Vaswani et al., "Attention Is All You Need", 2017).

    check_scaled_dot_product_attention(scaled_dot_product_attention)
    check_multi_head_attention(MultiHeadAttention)
    check_top_weight(top_weight)
    check_first_below(first_below)

The contract of the student's code:

(a) ``scaled_dot_product_attention(q, k, v, mask=None)`` returns ``(output, weights)``. q is
    (..., Lq, d), k is (..., Lk, d), v is (..., Lk, dv); output is (..., Lq, dv); weights is
    (..., Lq, Lk) and sums to 1 over the keys. ``mask`` is boolean, broadcastable to
    (..., Lq, Lk), True where a query may attend.
(b) ``class MultiHeadAttention(nn.Module)``: ``__init__(self, dim, num_heads)`` with four
    ``nn.Linear(dim, dim)`` (with bias) named q_proj, k_proj, v_proj, out_proj;
    ``forward(self, x, context=None, mask=None)`` returns (B, N, dim). Keys and values come from
    ``context`` (B, M, dim) when given, otherwise from x. ``mask`` follows (a) and is broadcastable
    to (B, num_heads, N, M). Head i uses features i*d_k .. (i+1)*d_k - 1 of each projection
    (d_k = dim / num_heads, the layout of ``torch.nn.MultiheadAttention``). A ``dim`` not
    divisible by ``num_heads`` raises ValueError. Returning ``(output, weights)`` is fine too.
(c) ``top_weight(lengths, d_k=64, n=512, seeds=(0, 1, 2))`` returns a (len(seeds), len(lengths)) table: for each seed,
    from ``torch.Generator().manual_seed(seed)``, and each length L, n queries and L keys with standard normal entries
    of width d_k, and the mean over the queries of each query's largest weight in softmax(q kᵀ / sqrt(d_k)).
(d) ``first_below(tops, lengths, share)`` returns the first length whose mean over the seeds (dim 0 of ``tops``) is
    strictly below ``share``, or None.

Any correct implementation passes (matmul or einsum, -inf or a large negative fill, loops over heads or reshapes);
the mistakes recognised are the message constants below. Rows with no allowed key are never tested: implementations
legitimately differ there (NaN or uniform weights).
"""
from __future__ import annotations

import functools
import itertools
import math
import statistics

import torch
from einops import rearrange
from torch import nn

from course_utils.grading.checks import (
    CheckFailed,
    answer_or_none,
    call,
    close,
    explain_answers,
    first_choice,
    first_match,
    fmt_shape,
    keep_rng,
    mean,
    passed,
    randn,
    require_callable,
    require_gradients,
    require_tensor,
    unchanged,
)
from course_utils.models.attention import causal_mask, padding_mask
from course_utils.models.attention import scaled_dot_product_attention as _reference

__all__ = ["check_scaled_dot_product_attention", "check_multi_head_attention", "check_top_weight", "check_first_below"]

# Shape legend: as in course_utils.models.attention. ... leading dimensions, Lq queries, Lk keys,
# d = d_k query/key width, dv value width; B batch, N tokens of x, M tokens of the context,
# D model width (dim), H heads.

# ------------------------------------------------------------------ what the mistakes are called
SWAPPED = "returned (weights, output); expected (output, weights)"
WRONG_SOFTMAX_DIM = "weights do not sum to 1 over the keys (did you take the softmax over the wrong dimension?)"
NO_SOFTMAX = "weights do not sum to 1 over the keys: return the softmax of the scores, not the scores"
NOT_NORMALISED = "weights do not sum to 1 over the keys: apply the softmax over the last dimension (the keys)"
NOT_SCALED = "scores are not divided by sqrt(d_k)"
BY_DK = "scores are divided by d_k instead of sqrt(d_k)"
TIMES_SQRT_DK = "scores are multiplied by sqrt(d_k) instead of divided by it"
WRONG_WEIGHTS = "weights differ from softmax(q kᵀ / sqrt(d_k)): check the scores, q @ k.transpose(-2, -1)"
WRONG_OUTPUT = "output differs from weights @ v: the output is the weights times the values"
LEADING_DIMS = ("index dimensions from the end (k.transpose(-2, -1), softmax(dim=-1), q.shape[-1]) "
                "so that any number of leading dimensions works")
MASKED_KEYS = "masked keys still receive weight: fill them with -inf (or a large negative) before the softmax"
INVERTED = "the mask is inverted: True means the query MAY attend"
MASK_AFTER_SOFTMAX = ("weights do not sum to 1 over the keys when a mask is given: apply the mask to the scores "
                      "before the softmax, not to the weights after it")
MASK_NAN = ("weights contain NaN although every query may attend to some key: fill masked scores with "
            "masked_fill or torch.where (-inf times 0 is NaN)")

SCALED_BY_DIM = "scores are scaled by sqrt(dim) instead of sqrt(dim / num_heads): d_k is the width of one head"
SPLIT = ("heads split incorrectly: (B, N, dim) -> (B, num_heads, N, dim / num_heads), head i taking features "
         "i*d_k to (i+1)*d_k - 1, e.g. rearrange(t, 'b n (h d) -> b h n d', h=num_heads)")
MERGE = ("heads merged incorrectly: (B, num_heads, N, d_k) -> (B, N, dim) must undo the split, "
         "e.g. rearrange(t, 'b h n d -> b n (h d)')")
ONE_HEAD = ("attention is computed as a single head over all dim features: split q, k and v into num_heads "
            "heads of dim / num_heads features each")
NO_OUT_PROJ = "out_proj is never applied: the merged heads go through out_proj (W^O)"
KV_SWAPPED = "k_proj and v_proj are swapped: keys come from k_proj, values from v_proj"
QK_SWAPPED = "q_proj and k_proj are swapped: queries come from q_proj applied to x, keys from k_proj"
SOFTMAX_OVER_QUERIES = "the softmax is taken over the queries: take it over the keys (the last dimension)"
CONTEXT_IGNORED = "keys and values must come from `context` when it is given"
QUERIES_FROM_CONTEXT = "queries must come from x, keys and values from `context`"
WRONG_MHA = ("output differs from multi-head attention with the same weights: check each step (project with "
             "q_proj, k_proj, v_proj; split into heads; attend; merge the heads; out_proj)")
NO_VALUE_ERROR = "expected ValueError for dim=10, num_heads=3"


# ---------------------------------------------------------------------- scaled dot-product attention

def _sdpa_call(fn, q, k, v, mask=None, context=""):
    """Call the student's function on copies of the inputs; check the pair, its shapes, no in-place edits."""
    given = [q.clone(), k.clone(), v.clone()] + ([] if mask is None else [mask.clone()])
    result = call(fn, *given, what="your function", where=context)
    where = f" {context}" if context else ""
    if isinstance(result, torch.Tensor):
        raise CheckFailed(f"expected a pair (output, weights), got one tensor of shape {fmt_shape(result)}: "
                          "return output, weights")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = (f"a {type(result).__name__} of length {len(result)}" if isinstance(result, (tuple, list))
               else type(result).__name__)
        raise CheckFailed(f"expected a pair (output, weights), got {got}")
    out, w = result
    for name, t in (("output", out), ("weights", w)):
        require_tensor(t, "expected {name} to be a tensor, got {kind}", name=name)
    want_out = (*q.shape[:-1], v.shape[-1])  # (..., Lq, dv)
    want_w = (*q.shape[:-1], k.shape[-2])  # (..., Lq, Lk)
    if tuple(out.shape) == want_w and tuple(w.shape) == want_out:
        raise CheckFailed(SWAPPED)
    for name, t, want in (("output", out, want_out), ("weights", w, want_w)):
        if tuple(t.shape) != want:
            raise CheckFailed(f"expected {name} shape {want}, got {fmt_shape(t)}{where}")
    names = ("q", "k", "v", "mask")[:len(given)]
    unchanged(dict(zip(names, given)), dict(zip(names, (q, k, v, mask))),
              hint="compute new tensors instead (masked_fill, not masked_fill_)")
    return out.detach().float(), w.detach().float()


def _diagnose_normalisation(w, q, k):
    """Weights that do not sum to 1 over the keys: which mistake is it?"""
    if not torch.isfinite(w).all():
        raise CheckFailed("weights contain NaN or inf: " + NOT_NORMALISED.split(": ")[1])
    for dim in range(w.dim() - 1):
        sums = w.sum(dim)
        if close(sums, torch.ones_like(sums)):
            raise CheckFailed(WRONG_SOFTMAX_DIM)
    scores = q @ k.transpose(-2, -1)  # (..., Lq, Lk)
    if close(w, scores) or close(w, scores / math.sqrt(q.shape[-1])):
        raise CheckFailed(NO_SOFTMAX)
    raise CheckFailed(NOT_NORMALISED)


def _diagnose_scale(w, q, k, v):
    """Weights that sum to 1 but differ from the reference: a known wrong scaling, or something else."""
    d = q.shape[-1]
    candidates = [(1.0, NOT_SCALED), (1.0 / d, BY_DK), (math.sqrt(d), TIMES_SQRT_DK)]  # scores (q kᵀ) * c, not / √d
    named = [("v.shape[-1]", v.shape[-1]), ("k.shape[-2]", k.shape[-2])]
    named += [(f"q.shape[{i}]", n) for i, n in enumerate(q.shape[:-1])]
    for label, n in named:
        if n != d:
            candidates.append((1.0 / math.sqrt(n), f"scores are divided by sqrt({n}) = sqrt({label}); d_k is the "
                                                   f"width of q and k, q.shape[-1] = {d}"))
    first_match(w, ((_reference(q * (c * math.sqrt(d)), k, v)[1], message) for c, message in candidates), WRONG_WEIGHTS)


def _check_masked(fn, q, k, v, mask, label):
    """Run with a mask that leaves every query at least one key; name the mistake if any."""
    out, w = _sdpa_call(fn, q, k, v, mask, context=f"with {label}")
    ref_out, ref_w = _reference(q, k, v, mask)
    if close(w, ref_w) and close(out, ref_out):
        return
    allowed = mask.expand(w.shape)  # (..., Lq, Lk)
    if not torch.isfinite(w).all():
        raise CheckFailed(MASK_NAN)
    if w[~allowed].abs().max() > 1e-6:  # weight where the mask forbids it
        if w[allowed].abs().max() <= 1e-6 or close(w, _reference(q, k, v, ~mask)[1]):
            raise CheckFailed(INVERTED)
        raise CheckFailed(MASKED_KEYS)
    if not close(w.sum(-1), torch.ones(w.shape[:-1])):
        raise CheckFailed(MASK_AFTER_SOFTMAX)
    if not close(w, ref_w):
        raise CheckFailed(f"with {label}, the weights of the allowed keys differ from the softmax over those keys")
    raise CheckFailed(f"with {label}, " + WRONG_OUTPUT)


def _mixed_mask(*shape, generator):
    """A random boolean mask in which every row allows at least one key and forbids at least one."""
    mask = torch.rand(*shape, generator=generator) < 0.5
    mask[..., 0], mask[..., 1] = True, False
    return mask


def check_scaled_dot_product_attention(fn) -> None:
    """Check a student's ``scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)``."""
    require_callable(fn, "scaled_dot_product_attention")
    g = torch.Generator().manual_seed(0)
    B, H, Lq, Lk, d, dv = 2, 4, 5, 6, 16, 8  # all different, so that no transpose goes unnoticed
    q, k, v = randn(B, H, Lq, d, generator=g), randn(B, H, Lk, d, generator=g), randn(B, H, Lk, dv, generator=g)
    with keep_rng():
        # 1. the pair and its shapes
        out, w = _sdpa_call(fn, q, k, v)
        passed(f"returns (output, weights): output {fmt_shape(out)} and weights {fmt_shape(w)} for "
               f"q {fmt_shape(q)}, k {fmt_shape(k)}, v {fmt_shape(v)}")
        # 2. a distribution over the keys
        if not (torch.isfinite(w).all() and close(w.sum(-1), torch.ones(w.shape[:-1]))):
            _diagnose_normalisation(w, q, k)
        passed("the weights sum to 1 over the keys")
        # 3. softmax(q kᵀ / sqrt(d_k)), then 4. weights @ v
        ref_out, ref_w = _reference(q, k, v)
        if not close(w, ref_w):
            _diagnose_scale(w, q, k, v)
        passed(f"weights = softmax(q kᵀ / √d_k) with d_k = {d}")
        if not close(out, ref_out):
            raise CheckFailed(WRONG_OUTPUT)
        passed("output = weights @ v")
        # 5. any number of leading dimensions
        shapes = []
        for lead in ((), (3,)):
            q2, k2, v2 = (randn(*lead, Lq, d, generator=g), randn(*lead, Lk, d, generator=g),
                          randn(*lead, Lk, dv, generator=g))
            try:
                out2, w2 = _sdpa_call(fn, q2, k2, v2, context=f"for q of shape {fmt_shape(q2)}")
            except CheckFailed as e:
                raise CheckFailed(f"{e}; {LEADING_DIMS}") from e
            if not (close(out2, _reference(q2, k2, v2)[0]) and close(w2, _reference(q2, k2, v2)[1])):
                raise CheckFailed(f"wrong result for q of shape {fmt_shape(q2)} (right for {fmt_shape(q)}): "
                                  + LEADING_DIMS)
            shapes.append(fmt_shape(q2))
        passed(f"any leading dimensions: q {shapes[0]} and {shapes[1]} work too")
        # 6. masks: an arbitrary one, a causal one, a padding one
        mask = _mixed_mask(B, H, Lq, Lk, generator=g)
        _check_masked(fn, q, k, v, mask, f"a mask of shape {fmt_shape(mask)}")
        passed(f"mask {fmt_shape(mask)}: masked keys get zero weight, the others share the softmax")
        qs, ks, vs = randn(B, H, Lk, d, generator=g), randn(B, H, Lk, d, generator=g), randn(B, H, Lk, dv, generator=g)
        causal = causal_mask(Lk)
        _check_masked(fn, qs, ks, vs, causal, f"a causal mask of shape {fmt_shape(causal)}")
        passed(f"causal mask {fmt_shape(causal)}, broadcast over batch and heads")
        padding = padding_mask(torch.tensor([Lk, 3]), Lk)
        _check_masked(fn, q, k, v, padding, f"a padding mask of shape {fmt_shape(padding)}")
        passed(f"padding mask {fmt_shape(padding)}, broadcast over heads and queries")
        # 7. gradients
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        result = call(fn, *leaves, what="your function")
        r = randn(*ref_out.shape, generator=g)
        require_gradients(result[0], r, zip("qkv", leaves), "your function", "q, k and v", finite=True)
        passed("gradients flow back to q, k and v")
    print("All checks passed: scaled_dot_product_attention is correct.")


# ------------------------------------------------------------------------------ multi-head attention

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _mha(P, x, context=None, mask=None, *, split="ok", merge="ok", scale="sqrt_width", heads=None,
         out_proj=True, swap=None, softmax_dim=-1, ignore_context=False, mask_bug=None):
    """Multi-head attention with the weights ``P`` (name -> (W, b)), or one of its classic mistakes.

    The defaults are the right thing; each keyword plants one mistake, so the checks can tell
    which one a student's output matches. ``scale`` names the divisor of the scores: "sqrt_width"
    (the width of the heads actually used), "sqrt_head" (sqrt(dim / num_heads)), "sqrt_dim",
    "dk" (the width, unrooted) or "none".
    """
    H = P["num_heads"] if heads is None else heads
    B, N, D = x.shape
    d_k = D // H  # the width of the heads used here
    ctx = x if (context is None or ignore_context) else context  # (B, M, D)
    swaps = {"kv": ("q_proj", "v_proj", "k_proj"), "qk": ("k_proj", "q_proj", "v_proj")}  # the projections of q, k, v
    q_name, k_name, v_name = swaps.get(swap, PROJECTIONS[:3])

    def lin(name, t):
        W, b = P[name]
        return t @ W.T + b  # (B, *, D)

    q, k, v = lin(q_name, x), lin(k_name, ctx), lin(v_name, ctx)  # (B, N, D), (B, M, D), (B, M, D)

    def split_heads(t):  # (B, L, D) -> (B, H, L, d_k), rightly or in one of the wrong ways
        if split == "dh":
            return rearrange(t, "b l (d h) -> b h l d", h=H)
        if split == "reshape":
            return t.reshape(t.shape[0], H, t.shape[1], d_k)
        if split == "no_transpose":
            return rearrange(t, "b l (h d) -> b l h d", h=H)  # attends over heads, not tokens
        return rearrange(t, "b l (h d) -> b h l d", h=H)

    q, k, v = split_heads(q), split_heads(k), split_heads(v)  # (B, H, N, d_k), (B, H, M, d_k), (B, H, M, d_k)
    divisor = {"sqrt_width": math.sqrt(d_k), "sqrt_head": math.sqrt(D // P["num_heads"]), "sqrt_dim": math.sqrt(D),
               "dk": d_k, "none": 1.0}[scale]
    q = q * (math.sqrt(d_k) / divisor)  # the reference divides by sqrt(d_k); this makes it divide by the divisor
    if mask is not None and mask_bug == "inverted":
        mask = ~mask
    if mask_bug == "ignored":
        mask = None
    if softmax_dim == -1:
        heads_out, _ = _reference(q, k, v, mask)  # (B, H, N, d_k)
    else:
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, N, M)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        heads_out = scores.softmax(dim=softmax_dim) @ v  # (B, H, N, d_k)
    if merge == "dh":
        concat = rearrange(heads_out, "b h n d -> b n (d h)")
    elif merge == "reshape":
        concat = heads_out.reshape(B, N, D)
    elif split == "no_transpose":
        concat = rearrange(heads_out, "b n h d -> b n (h d)")
    else:
        concat = rearrange(heads_out, "b h n d -> b n (h d)")  # (B, N, D)
    return lin("out_proj", concat) if out_proj else concat  # (B, N, D)


# (message, mistake) pairs tried, in order, when a student's output differs from the reference
_MHA_MISTAKES = [
    (SCALED_BY_DIM, dict(scale="sqrt_dim")),
    (NOT_SCALED, dict(scale="none")),
    (BY_DK, dict(scale="dk")),
    (ONE_HEAD, dict(heads=1, scale="sqrt_head")),
    (ONE_HEAD, dict(heads=1)),
    (SPLIT, dict(split="reshape", merge="reshape")),
    (SPLIT, dict(split="reshape")),
    (SPLIT, dict(split="dh", merge="dh")),
    (SPLIT, dict(split="dh")),
    (SPLIT, dict(split="no_transpose")),
    (MERGE, dict(merge="reshape")),
    (MERGE, dict(merge="dh")),
    (NO_OUT_PROJ, dict(out_proj=False)),
    (KV_SWAPPED, dict(swap="kv")),
    (QK_SWAPPED, dict(swap="qk")),
    (SOFTMAX_OVER_QUERIES, dict(softmax_dim=-2)),
]


def _mha_params(module, D, H, generator):
    """Give the student's projections fixed weights (whatever their init); return them as a dict."""
    P = {"num_heads": H}
    with torch.no_grad():
        for name in PROJECTIONS:
            P[name] = randn(D, D, generator=generator, scale=1 / math.sqrt(D)), randn(D, generator=generator, scale=0.1)
            getattr(module, name).weight.copy_(P[name][0])
            getattr(module, name).bias.copy_(P[name][1])
    return P


def _build(cls, D, H):
    module = call(cls, D, H, what=f"MultiHeadAttention({D}, {H})")
    if not isinstance(module, nn.Module):
        raise CheckFailed(f"MultiHeadAttention must be a subclass of nn.Module, got {type(module).__name__}")
    for name in PROJECTIONS:
        layer = getattr(module, name, None)
        if layer is None:
            raise CheckFailed(f"MultiHeadAttention({D}, {H}) has no attribute {name}: name the four projections "
                              "q_proj, k_proj, v_proj, out_proj")
        if not isinstance(layer, nn.Linear) or (layer.in_features, layer.out_features) != (D, D):
            raise CheckFailed(f"{name} must be nn.Linear({D}, {D}) (one projection for all heads), got {layer!r}")
        if layer.bias is None:
            raise CheckFailed(f"{name} must have a bias (nn.Linear's default, bias=True)")
    for a, b in itertools.combinations(PROJECTIONS, 2):
        if getattr(module, a) is getattr(module, b):
            raise CheckFailed(f"{a} and {b} are the same layer: create four separate nn.Linear")
    return module.eval()


def _forward(module, x, what, **kwargs):
    """The student's output (B, N, D); an extra return of the weights is allowed."""
    kwargs = {key: tensor.clone() for key, tensor in kwargs.items()}  # context, mask
    result = call(module, x.clone(), what="your forward", where=what, **kwargs)
    if isinstance(result, (tuple, list)) and result and isinstance(result[0], torch.Tensor):
        result = result[0]
    return require_tensor(result, "expected forward to return a tensor (B, N, dim), got {kind}")


def _expect_output(out, want, what):
    if tuple(out.shape) != want:
        raise CheckFailed(f"expected output shape {want}, got {fmt_shape(out)} {what}")


def _diagnose_mha(out, P, x, context=None, mask=None):
    """The output differs from the reference: name the mistake (a given mask's or context's first), or say so."""
    out = out.detach().float()
    extra = [(INVERTED, dict(mask_bug="inverted")), (MASKED_KEYS, dict(mask_bug="ignored"))] if mask is not None else []
    extra += [(CONTEXT_IGNORED, dict(ignore_context=True))] if context is not None else []
    for message, mistake in [*extra, *_MHA_MISTAKES]:
        try:
            candidate = _mha(P, x, context, mask, **mistake)
        except RuntimeError:  # this mistake cannot happen with these shapes
            continue
        if close(out, candidate):
            raise CheckFailed(message)
    if not torch.isfinite(out).all() and mask is not None:
        raise CheckFailed(MASK_NAN)
    raise CheckFailed(WRONG_MHA)


def _check_mha_case(module, P, x, context=None, mask=None, what=""):
    kwargs = {name: t for name, t in (("context", context), ("mask", mask)) if t is not None}
    out = _forward(module, x, what, **kwargs)
    _expect_output(out, tuple(x.shape), what)
    if not close(out, _mha(P, x, context, mask)):
        _diagnose_mha(out, P, x, context, mask)
    return out


def check_multi_head_attention(cls) -> None:
    """Check a student's ``MultiHeadAttention(dim, num_heads)`` module (see the module docstring)."""
    require_callable(cls, "MultiHeadAttention", kind="class")
    g = torch.Generator().manual_seed(1)
    B, N, M, D, H = 2, 5, 7, 32, 4
    with keep_rng():
        # 1. the four projections
        module = _build(cls, D, H)
        P = _mha_params(module, D, H, g)
        passed(f"MultiHeadAttention({D}, {H}) is an nn.Module with four nn.Linear({D}, {D}): "
               f"q_proj, k_proj, v_proj, out_proj")
        # 2. self-attention, against the reference with the same weights
        x, context = randn(B, N, D, generator=g), randn(B, M, D, generator=g)
        what = f"for x of shape {fmt_shape(x)}"
        out = _forward(module, x, what)
        _expect_output(out, (B, N, D), what)
        passed(f"self-attention: x {fmt_shape(x)} -> {fmt_shape(out)}")
        if not close(out, _mha(P, x)):
            _diagnose_mha(out, P, x)
        passed(f"equals multi-head attention with the same weights: {H} heads of d_k = {D // H}, "
               "concatenated, then out_proj")
        # 3. cross-attention
        what = f"for x of shape {fmt_shape(x)} and context of shape {fmt_shape(context)}"
        out = _forward(module, x, what, context=context)
        if tuple(out.shape) == (B, M, D):
            raise CheckFailed(f"{QUERIES_FROM_CONTEXT}: expected output shape {(B, N, D)} (one row per token of x), "
                              f"got {fmt_shape(out)}")
        _check_mha_case(module, P, x, context=context, what=what)
        passed(f"cross-attention: x {fmt_shape(x)}, context {fmt_shape(context)} -> {(B, N, D)}, "
               "keys and values from the context")
        # 4. masks: an arbitrary one, a causal one, a padding one
        mask = _mixed_mask(B, 1, N, M, generator=g)
        _check_mha_case(module, P, x, context=context, mask=mask, what=f"with a mask of shape {fmt_shape(mask)}")
        passed(f"mask {fmt_shape(mask)} with cross-attention, broadcast over the heads")
        causal = causal_mask(N)
        _check_mha_case(module, P, x, mask=causal, what=f"with a causal mask of shape {fmt_shape(causal)}")
        passed(f"causal mask {fmt_shape(causal)}")
        padding = padding_mask(torch.tensor([M, 4]), M)
        _check_mha_case(module, P, x, context=context, mask=padding,
                        what=f"with a padding mask of shape {fmt_shape(padding)}")
        passed(f"padding mask {fmt_shape(padding)} over the context")
        # 5. another width and number of heads
        D2, H2 = 24, 3
        module2 = _build(cls, D2, H2)
        P2 = _mha_params(module2, D2, H2, g)
        x2 = randn(B, N, D2, generator=g)
        _check_mha_case(module2, P2, x2, what=f"for MultiHeadAttention({D2}, {H2}) and x of shape {fmt_shape(x2)}")
        passed(f"MultiHeadAttention({D2}, {H2}) is right too")
        # 6. gradients
        out = _forward(module, x, "", context=context)
        r = randn(B, N, D, generator=g)
        module.zero_grad()
        require_gradients(out, r, ((f"{name}.weight", getattr(module, name).weight) for name in PROJECTIONS),
                          "your forward", "the projections")
        passed("gradients reach all four projections")
        # 7. a width the heads cannot share
        try:
            cls(10, 3)
        except ValueError:
            pass
        except Exception as e:  # noqa: BLE001 - the wrong kind of error
            raise CheckFailed(f"{NO_VALUE_ERROR}, got {type(e).__name__}") from e
        else:
            raise CheckFailed(f"{NO_VALUE_ERROR}: check in __init__ that dim is divisible by num_heads")
        passed("MultiHeadAttention(10, 3) raises ValueError")
    print("All checks passed: MultiHeadAttention is correct.")


# ------------------------------------------------------------- top_weight: an experiment on the number of keys
#
# Students draw in different orders, so no value of top_weight can be compared exactly: the check compares the mean over
# the seeds with the expectation, which it estimates once from _TOP_REPS draws, within TOP_NOISE of it. Measured over
# 200 seeds, one seed's value has a relative standard deviation of at most 2.9% at the check's points (4 to 256 keys at
# d_k = 64, 16 and 64 at d_k = 256); with 3 seeds, and the estimate's own error, the standard error is at most 1.7%, so
# 20% is more than eleven of them (300 simulated students, each with other seeds, were at most 6.8% off). Every named
# mistake is at least 40% off at some point; one is named when it is the closest and within TOP_MATCH (the noisiest, one
# largest weight of all queries and keys, came within 34% of its expectation; the closest pair, dividing by d_k and
# uniform draws, is told apart at d_k = 256, where they differ by a fifth to a quarter). Drawing each length's queries
# and keys from a fresh generator (the same first draws for every length) is allowed: a seed's numbers are still one
# random draw per length.

TOP_NOISE = 0.2
TOP_MATCH = 0.5
_TOP_CALLS = (([4, 16, 64, 256], {}), ([16, 64], {"d_k": 256, "seeds": (7, 3, 11)}))  # (lengths, keywords)
_TOP_REPS = 32  # draws of n queries and L keys behind each expectation

TOP_TRANSPOSED = "returns one row per length and one column per seed: return shape (len(seeds), len(lengths))"
TOP_SEED_MEAN = ("returns one value per length: keep one row per seed, shape (len(seeds), len(lengths)); the mean over "
                 "the seeds is taken afterwards")
TOP_SAME_SEEDS = ("every seed gives the same numbers: draw each seed's queries and keys from "
                  "torch.Generator().manual_seed(seed), with that seed")
TOP_NOT_REPRODUCIBLE = ("a second call gives other numbers: draw from a generator made for the seed, "
                        "g = torch.Generator().manual_seed(seed), passing generator=g to torch.randn")
TOP_OWN_GENERATOR = ("seed 3 alone gives other numbers than seed 3 among (7, 3, 11): make a new generator for "
                     "every seed, torch.Generator().manual_seed(seed), rather than one generator for all of them")
TOP_GLOBAL_RNG = ("changes torch's global random state (torch.manual_seed or an unseeded draw): draw from your own "
                  "generator, torch.randn(..., generator=g), and leave the notebook's random numbers alone")
TOP_N_IGNORED = ("with n=1 your values hardly differ from seed to seed, as if each were a mean over many queries: draw "
                 "n queries, the n you are given (not 512, nor d_k)")
TOP_ONE_QUERY = ("with n=512 your values differ from seed to seed as much as one query's would: take each query's "
                 "largest weight, then the mean over all n queries")
# The spread test: 12 seeds at 16 keys. One query's largest weight varies between seeds by 43% of its mean (measured),
# a mean over 512 by 3%; the check asks for more than 15% at n=1 and less than 10% at n=512.
_SPREAD_SEEDS, _SPREAD_ONE, _SPREAD_MANY = tuple(range(20, 32)), 0.15, 0.10
TOP_MISTAKES = [  # (the keywords of _top_draw that plant it, the message)
    ({"scale": "none"}, NOT_SCALED),
    ({"scale": "dk"}, BY_DK),
    ({"scale": "sqrt_L"}, "scores are divided by sqrt(L), the number of keys: d_k is the width of a query and a key"),
    ({"scale": "sqrt_64"}, "the scale ignores the d_k it is given (sqrt(64) at d_k = 256): divide by sqrt(d_k)"),
    ({"softmax_over": "queries"},
     "the softmax is taken over the queries: each query's weights must sum to 1 over the keys"),
    ({"largest_over": "queries"},
     "takes each key's largest weight over the queries: take each query's largest weight (over the keys), then "
     "average over the queries"),
    ({"largest_over": "all"},
     "takes the one largest weight of all queries and keys: take each query's largest weight, then average over the "
     "queries"),
    ({"largest_over": "mean"}, "averages each query's weights (always 1/L) instead of taking the largest"),
    ({"softmax_over": "none"}, "takes the largest score, not the largest weight: apply the softmax to the scaled scores"),
    ({"draw": "uniform"}, "draws uniform numbers in [0, 1) (torch.rand): the entries must have mean 0 and variance 1, "
                          "torch.randn"),
]


def _top_draw(q, k, d_k, *, scale="sqrt_dk", softmax_over="keys", largest_over="keys", draw="normal"):
    """The mean over the queries of each query's largest weight, for queries q (n, d_k) and keys k (L, d_k), or one of
    the classic mistakes (a keyword of TOP_MISTAKES; ``draw`` is only read by _top_expected)."""
    L = k.shape[0]
    divisor = {"sqrt_dk": math.sqrt(d_k), "none": 1.0, "dk": d_k, "sqrt_L": math.sqrt(L), "sqrt_64": 8.0}[scale]
    scores = q @ k.T / divisor  # (n, L)
    weights = scores if softmax_over == "none" else scores.softmax(dim=-1 if softmax_over == "keys" else 0)  # (n, L)
    if largest_over == "keys":
        return weights.amax(dim=-1).mean().item()  # each query's largest, averaged over the queries
    if largest_over == "queries":
        return weights.amax(dim=0).mean().item()  # (L,) each key's largest, averaged over the keys
    return (weights.mean() if largest_over == "mean" else weights.max()).item()


@functools.cache
def _top_expected(L: int, d_k: int, n: int = 512) -> tuple[float, ...]:
    """The expected mean largest weight for L keys, right and for each of TOP_MISTAKES (in order), over _TOP_REPS draws."""
    g = torch.Generator().manual_seed(2017)
    plans = [{}] + [keywords for keywords, _ in TOP_MISTAKES]
    sums = [0.0] * len(plans)
    for _ in range(_TOP_REPS):
        normal = randn(n, d_k, generator=g), randn(L, d_k, generator=g)  # q (n, d_k), k (L, d_k)
        uniform = torch.rand(n, d_k, generator=g), torch.rand(L, d_k, generator=g)
        for i, keywords in enumerate(plans):
            q, k = uniform if keywords.get("draw") == "uniform" else normal
            sums[i] += _top_draw(q, k, d_k, **keywords)
    return tuple(s / _TOP_REPS for s in sums)


def _top_table(result, seeds, lengths, where):
    """The student's result as a float64 tensor of shape (len(seeds), len(lengths)), or CheckFailed naming the shape."""
    try:
        table = torch.as_tensor(result.detach() if isinstance(result, torch.Tensor) else result, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        try:
            table = torch.stack([torch.as_tensor(row, dtype=torch.float64) for row in result])
        except (TypeError, ValueError, RuntimeError):
            raise CheckFailed(f"expected a tensor of shape (len(seeds), len(lengths)), got {type(result).__name__}"
                              ) from None
    want = (len(seeds), len(lengths))
    if tuple(table.shape) == want:
        return table.cpu()
    if tuple(table.shape) == want[::-1]:
        raise CheckFailed(f"{TOP_TRANSPOSED} (got {fmt_shape(table)} {where})")
    if tuple(table.shape) in ((len(lengths),), (1, len(lengths))):
        raise CheckFailed(f"{TOP_SEED_MEAN} (got {fmt_shape(table)} {where})")
    raise CheckFailed(f"expected shape {want}, one row per seed and one column per length, got {fmt_shape(table)} {where}")


def _top_call(fn, lengths, keywords, moved):
    """The student's table for a copy of ``lengths``; ``moved`` gets whether the call moved torch's global state."""
    seeds = keywords.get("seeds", (0, 1, 2))
    where = f"for lengths {lengths}" + "".join(f", {name}={value}" for name, value in keywords.items())
    given = list(lengths)
    before = torch.get_rng_state()
    result = call(fn, given, **keywords, what="your top_weight", where=where)
    moved.append(not torch.equal(torch.get_rng_state(), before))
    if given != lengths:
        raise CheckFailed("your top_weight changed its input `lengths` in place: read it, and compute new lists")
    return _top_table(result, seeds, lengths, where)


def _top_diagnose(got, points):
    """The student's means (one per point) are off: name the closest mistake within TOP_MATCH, else say where."""
    distance = lambda expected: max(abs(math.log(max(g, 1e-12) / e)) for g, e in zip(got, expected))  # noqa: E731
    candidates = [(distance([_top_expected(L, d)[i + 1] for L, d in points]), message)
                  for i, (_, message) in enumerate(TOP_MISTAKES)]
    best, message = min(candidates, key=lambda c: c[0])
    if best < math.log(1 + TOP_MATCH):
        raise CheckFailed(f"your mean largest weights are those of this mistake: {message}")
    (L, d), g = next(((point, g) for point, g in zip(points, got)
                      if not abs(g / _top_expected(*point)[0] - 1) <= TOP_NOISE))
    raise CheckFailed(f"with {L} keys and d_k = {d}, the mean over the seeds of each query's largest weight is {g:.3g}; "
                      f"expected about {_top_expected(L, d)[0]:.3g} (sampling noise stays well within "
                      f"{TOP_NOISE:.0%}): draw q (n, d_k) and k (L, d_k) with torch.randn, softmax(q kᵀ / √d_k) over "
                      "the keys, each query's largest weight, averaged over the queries")


@keep_rng()
def check_top_weight(top_weight) -> None:
    """Check ``top_weight(lengths, d_k=64, n=512, seeds=(0, 1, 2))`` -> (len(seeds), len(lengths)): for each seed and
    length L, the mean over n random queries of their largest scaled-attention weight over L random keys. The values
    are compared with their expectation within sampling noise (see TOP_NOISE); the seeds exactly."""
    require_callable(top_weight, "top_weight")
    moved = []
    tables = [_top_call(top_weight, lengths, keywords, moved) for lengths, keywords in _TOP_CALLS]
    (lengths, _), (other, keywords) = _TOP_CALLS
    passed(f"one row per seed and one column per length: {fmt_shape(tables[0])} for the default seeds and "
           f"{len(lengths)} lengths, {fmt_shape(tables[1])} for seeds {keywords['seeds']} and {len(other)} lengths")
    points = [(L, keywords.get("d_k", 64)) for lengths, keywords in _TOP_CALLS for L in lengths]
    got = [v for table in tables for v in table.mean(dim=0).tolist()]  # the mean over the seeds, per point
    if not all(math.isfinite(g) for g in got):
        raise CheckFailed("your top_weight returns NaN or inf: each value is a mean of softmax weights, between 0 and 1")
    if not all(abs(g / _top_expected(*point)[0] - 1) <= TOP_NOISE for g, point in zip(got, points)):
        _top_diagnose(got, points)
    passed(f"the mean over the seeds is the expected one, within sampling noise, for {lengths[0]} to {lengths[-1]} "
           f"keys at d_k = 64 and for {other[0]} and {other[1]} keys at d_k = {keywords['d_k']}")
    if any(torch.equal(table[0], row) for table in tables for row in table[1:]):
        raise CheckFailed(TOP_SAME_SEEDS)
    if not close(_top_call(top_weight, *_TOP_CALLS[0], moved), tables[0], rtol=1e-5, atol=1e-7):
        raise CheckFailed(TOP_NOT_REPRODUCIBLE)
    alone = _top_call(top_weight, other, {**keywords, "seeds": (3,)}, moved)
    if not close(alone[0], tables[1][keywords["seeds"].index(3)], rtol=1e-5, atol=1e-7):
        raise CheckFailed(TOP_OWN_GENERATOR)
    spread = {}
    for n in (1, 512):
        values = _top_call(top_weight, [16], {"n": n, "seeds": _SPREAD_SEEDS}, moved)[:, 0]
        spread[n] = (values.std() / values.mean()).item()
    if not spread[1] > _SPREAD_ONE:
        raise CheckFailed(TOP_N_IGNORED)
    if not spread[512] < _SPREAD_MANY:
        raise CheckFailed(TOP_ONE_QUERY)
    passed("each seed has its own draws: another seed, other numbers; a second call, or one seed alone, the same; "
           "n queries per seed")
    if any(moved):
        raise CheckFailed(TOP_GLOBAL_RNG)
    passed("torch's global random state is left alone")


# ------------------------------------------------------------------------ first_below: reading the experiment

def _below(tops, lengths, share, *, over_seeds=mean, strict=True, above=False, per_seed=False, **slips):
    """The contract's answer (the first length whose mean over the seeds is below ``share``), and, through the
    keywords (``slips`` those of ``first_choice``), the answers of the classic mistakes."""
    columns = tops.tolist() if per_seed else tops.T.tolist()  # per_seed: the mean over the lengths, the wrong axis
    values = [over_seeds(column) for column in columns][:len(lengths)]
    hits = [i for i, v in enumerate(values) if (v > share if above else v < share if strict else v <= share)]
    return first_choice(hits, lengths, **slips)


def _rows(*rows):
    return torch.tensor(rows, dtype=torch.float32)  # (seeds, lengths)


_BELOW_LENGTHS = [16, 49, 196, 576, 4096]
_TYPICAL = _rows([0.25, 0.13, 0.052, 0.025, 0.006], [0.24, 0.12, 0.051, 0.024, 0.006], [0.25, 0.13, 0.05, 0.025, 0.006])
_BELOW_CASES = [  # (what the record is about, tops (seeds, lengths), share)
    ("a typical run, share 0.1", _TYPICAL, 0.1),
    ("a typical run, share 0.02", _TYPICAL, 0.02),
    ("never below", _TYPICAL, 0.005),
    ("exactly `share` is not below", _rows(*[[0.5, 0.25, 0.125, 0.0625, 0.03125]] * 3), 0.125),
    ("the first seed alone misleads", _rows([0.3, 0.08, 0.05, 0.02, 0.01], [0.3, 0.2, 0.05, 0.02, 0.01],
                                            [0.3, 0.2, 0.05, 0.02, 0.01]), 0.1),
    ("one seed dips below", _rows([0.3, 0.2, 0.05, 0.02, 0.01], [0.3, 0.2, 0.05, 0.02, 0.01],
                                  [0.3, 0.05, 0.05, 0.02, 0.01]), 0.1),
    ("one seed stays above", _rows([0.3, 0.2, 0.02, 0.01, 0.01], [0.3, 0.2, 0.02, 0.01, 0.01],
                                   [0.3, 0.2, 0.2, 0.05, 0.01]), 0.1),
    ("a skewed seed", _rows([0.3, 0.05, 0.05, 0.02, 0.01], [0.3, 0.05, 0.05, 0.02, 0.01],
                            [0.3, 0.35, 0.05, 0.02, 0.01]), 0.1),
    ("below, then above again", _rows([0.3, 0.08, 0.12, 0.05, 0.01], [0.3, 0.08, 0.12, 0.05, 0.01],
                                      [0.3, 0.08, 0.12, 0.05, 0.01]), 0.1),
    ("below from the first length on", _TYPICAL, 0.3),
]
BELOW_MISTAKES = [  # (the mistake's answer on one record, the message)
    (lambda t, L, s: _below(t, L, s, index=True), "returns the position in `lengths`, not the length: return lengths[i]"),
    (lambda t, L, s: _below(t, L, s, strict=False), "a mean exactly equal to `share` is not below it: use <, not <="),
    (lambda t, L, s: _below(t, L, s, above=True), "returns the first length above `share`: the question is below"),
    (lambda t, L, s: _below(t, L, s, over_seeds=lambda seeds: seeds[0]),
     "uses one seed (the first): average over the seeds, then compare the mean with `share`"),
    (lambda t, L, s: _below(t, L, s, over_seeds=min),
     "counts a length as soon as one seed is below: average over the seeds, then compare the mean"),
    (lambda t, L, s: _below(t, L, s, over_seeds=max),
     "waits until every seed is below: average over the seeds, then compare the mean"),
    (lambda t, L, s: _below(t, L, s, over_seeds=statistics.median),
     "takes the median over the seeds: the contract asks for the mean"),
    (lambda t, L, s: _below(t, L, s, per_seed=True),
     "averages over the lengths (dim 1): tops is (seeds, lengths), so the mean over the seeds is over dim 0"),
    (lambda t, L, s: _below(t, L, s, largest=True),
     "returns the last length below `share`: the first one, going up, is the answer"),
    (lambda t, L, s: _below(t, L, s, last_if_never=True), "when no mean falls below `share`, return None, not the "
                                                          "last length"),
    (lambda t, L, s: _below(t, L, 0.1), "uses a fixed share of 0.1: use the `share` you are given"),
]


def check_first_below(first_below) -> None:
    """Check ``first_below(tops, lengths, share)`` -> the first length whose mean over the seeds (``tops`` is
    (seeds, lengths), as top_weight returns it) is strictly below ``share``, or None, on ten made-up tables; a mistake is
    named only when it gives every answer the student gave."""
    require_callable(first_below, "first_below")
    answers = []
    for case, tops, share in _BELOW_CASES:
        given, lengths = tops.clone(), list(_BELOW_LENGTHS)
        got = call(first_below, given, lengths, share, what="your first_below", where=f"on the table '{case}'")
        if not torch.equal(given, tops) or lengths != _BELOW_LENGTHS:
            raise CheckFailed("your first_below changed its input in place (tops or lengths): read them, and compute "
                              "new tensors or lists")
        answer_or_none(got, "first_below")
        answers.append(got)
    explain_answers(answers, [_below(t, _BELOW_LENGTHS, s) for _, t, s in _BELOW_CASES], [c for c, *_ in _BELOW_CASES],
                    [([mistake(t, list(_BELOW_LENGTHS), s) for _, t, s in _BELOW_CASES], message)
                     for mistake, message in BELOW_MISTAKES],
                    "the first length whose mean over the seeds (dim 0 of tops) is strictly below `share` (None if "
                    "none)")
    passed(f"the first length whose mean over the seeds is below the share, on {len(_BELOW_CASES)} made-up tables "
           "(a tie is not below, None when never)")
