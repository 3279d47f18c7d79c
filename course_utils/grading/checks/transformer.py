"""Checks for exercise 02, the transformer encoder block: "Attention Is All You Need" (Vaswani et al.,
NeurIPS 2017, section 3.1) and the pre-norm order of the Vision Transformer (Dosovitskiy et al., ICLR
2021, equations 2-3).

    check_layer_norm(layer_norm)
    check_transformer_block(TransformerEncoderBlock)
    check_largest_lr(largest_lr)

The contract of the student's code:

(a) ``layer_norm(x, weight, bias, eps=1e-5)``: x (..., D), weight and bias (D,) -> (..., D),
    (x - mean) / sqrt(var + eps) * weight + bias, with the mean and the biased variance (divide
    by D) taken over the last dimension: ``torch.nn.functional.layer_norm(x, (D,), weight, bias, eps)``.
(b) ``class TransformerEncoderBlock(nn.Module)``: ``__init__(self, dim, num_heads, mlp_dim,
    pre_norm=False)`` with ``attn`` = ``MultiHeadAttention(dim, num_heads)`` (course_utils.models.attention),
    ``norm1`` and ``norm2`` = ``nn.LayerNorm(dim)``, ``mlp`` = ``nn.Sequential(nn.Linear(dim, mlp_dim),
    nn.GELU(), nn.Linear(mlp_dim, dim))``; ``forward(self, x, mask=None)``: (B, N, dim) -> (B, N, dim),
    pre-norm (ViT)  x = x + attn(norm1(x)); x = x + mlp(norm2(x))   when pre_norm is True,
    post-norm       x = norm1(x + attn(x)); x = norm2(x + mlp(x))   when it is False,
    with ``mask`` passed on to ``attn`` (True where a token may attend).
(c) ``largest_lr(accuracy, lrs, order, warmup, target=0.9)``: ``accuracy[order][warmup]`` holds one list of
    per-seed test accuracies per learning rate of ``lrs`` (increasing), as in the record ``norm-warmup``; the
    answer is the largest learning rate at which every seed reaches ``target`` (>=), or None.

Any correct implementation passes (mean and variance by hand, ``x.var``, ``torch.var_mean`` or einsum; an if/else
or helper sub-layers); the mistakes recognised are the message constants below, each a planted buggy variant. The
block is compared with ``course_utils.models.transformer.TransformerEncoderBlock`` given the same weights, which
equals ``torch.nn.TransformerEncoderLayer`` (``to_torch_layer``).
"""
from __future__ import annotations

import math
import statistics

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.grading.checks import (
    NO_GRAD,
    CheckFailed,
    answers_on_records,
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
from course_utils.interop.torch_nn import to_torch_layer
from course_utils.models.attention import causal_mask, padding_mask
from course_utils.models.transformer import TransformerEncoderBlock as _Reference

__all__ = ["check_largest_lr", "check_layer_norm", "check_transformer_block"]

# Shape legend: ... any leading dimensions, D features (the width); B batch, N tokens, M hidden
# width of the feed-forward network (mlp_dim).

# ------------------------------------------------------------------ what the mistakes are called
RIGHT_LN = "(x - mean) / sqrt(var + eps) * weight + bias"
WRONG_DIM = ("the mean and variance are taken over {what}: LayerNorm normalises each token over its own "
             "features, the last dimension: x.mean(dim=-1, keepdim=True)")
UNBIASED = ("the variance is unbiased (it divides by D - 1, torch.var's default): LayerNorm divides by D, "
            "x.var(dim=-1, unbiased=False, keepdim=True)")
BY_VARIANCE = "divided by the variance instead of the standard deviation: divide by sqrt(var + eps)"
NOT_CENTRED = "the mean is not subtracted: x̂ = (x - mean) / sqrt(var + eps)"
RMS = ("x is divided by its root mean square without subtracting the mean (that is RMSNorm): "
       "LayerNorm centres first, (x - mean) / sqrt(var + eps)")
NO_WEIGHT = f"weight is never applied: {RIGHT_LN}"
NO_BIAS = f"bias is never added: {RIGHT_LN}"
NO_AFFINE = f"weight and bias are never applied: {RIGHT_LN}"
AFFINE_SWAPPED = f"weight and bias are swapped: multiply by weight, then add bias, {RIGHT_LN}"
AFFINE_BEFORE = "weight and bias are applied before normalising: normalise first, then x̂ * weight + bias"
EPS_OUTSIDE = ("eps is added outside the square root, (x - mean) / (sqrt(var) + eps): add it to the variance, "
               "(x - mean) / sqrt(var + eps)")
EPS_IGNORED = "eps is not used: divide by sqrt(var + eps), which keeps a nearly constant token finite"
EPS_FIXED = "the eps argument is ignored (a fixed 1e-5 is used): use the eps the caller passes"
DEFAULT_EPS = "the default eps must be 1e-5 (PyTorch's): def layer_norm(x, weight, bias, eps=1e-5)"
KEEPDIM = "keep the reduced dimension, x.mean(dim=-1, keepdim=True), so that mean and var broadcast against x"
LEADING_DIMS = "index the features from the end (dim=-1) so that any number of leading dimensions works"
WRONG_LN = f"output differs from LayerNorm over the last dimension, {RIGHT_LN}"
GRAD_DIFFERS = ("the gradient with respect to {name} is wrong although the output is right: "
                "do not .detach() the mean or the variance")

# the block: {attn} and {mlp} are the order's two lines (FORMULAS)
FORMULAS = {"pre": ("x = x + attn(norm1(x))", "x = x + mlp(norm2(x))"),
            "post": ("x = norm1(x + attn(x))", "x = norm2(x + mlp(x))")}
POST_WHEN_PRE = ("pre_norm=True computed the post-norm order (LayerNorm after each addition): ViT's pre-norm "
                 "order is {attn}; {mlp}")
PRE_WHEN_POST = ("pre_norm=False computed the pre-norm order (is the pre_norm flag used?): the original "
                 "post-norm order is {attn}; {mlp}")
NO_RESIDUALS = "neither sub-layer has a residual connection: {attn}; {mlp}"
NO_RESIDUAL_ATTN = "the attention sub-layer has no residual connection: {attn}"
NO_RESIDUAL_MLP = "the feed-forward sub-layer has no residual connection: {mlp}"
NORM_ON_BRANCH = ("LayerNorm is applied to the sub-layer's output only, x + norm(attn(x)) (norm in the wrong "
                  "place): {attn}; {mlp}")
NO_NORMS = "no LayerNorm is applied: {attn}; {mlp}"
ATTN_UNNORMED = "in pre-norm, attention reads the normalised x, not x itself: {attn}"
MLP_UNNORMED = "in pre-norm, the feed-forward network reads the normalised x, not x itself: {mlp}"
NORMED_RESIDUAL = ("the residual adds the normalised x: keep the un-normalised x on the skip path, {attn} "
                   "(not h = norm1(x); x = h + attn(h))")
PARALLEL = ("the feed-forward sub-layer reads the block's input, not the attention sub-layer's output: "
            "{attn}, then {mlp} on that new x")
SKIPS_ATTN = ("the second residual adds the block's input, dropping the attention sub-layer's output: "
              "{attn}, then {mlp} on that new x")
NORMS_SWAPPED = "norm1 and norm2 are swapped: norm1 goes with the attention, norm2 with the feed-forward network"
SAME_NORM = ("{name} is used for both sub-layers: norm1 goes with the attention, norm2 with the feed-forward "
             "network")
RELU = ("the feed-forward network uses ReLU (the original transformer's): this block uses GELU, as ViT and "
        "BERT do, nn.GELU()")
MASK_NOT_PASSED = "the mask is not passed on to the attention: self.attn(h, mask=mask)"
MASK_POSITIONAL = ("pass the mask by keyword, self.attn(h, mask=mask): the second argument of "
                   "MultiHeadAttention.forward is context")
WRONG_BLOCK = "output differs from the {order} block with the same weights: check each step, {attn}; {mlp}"
DEFAULT_PRE = ("pre_norm must default to False (the original order): "
               "def __init__(self, dim, num_heads, mlp_dim, pre_norm=False)")
SHARED_NORM = "norm1 and norm2 are the same layer: create two separate nn.LayerNorm(dim)"
GELU_TANH = "mlp[1] is GELU(approximate='tanh'): use the exact GELU, nn.GELU()"
NOT_RETURNED = "expected {what} to return a tensor, got {kind}"


# ---------------------------------------------------------------------------------- layer_norm

def _ln(x, weight, bias, eps=1e-5, *, dims=(-1,), correction=0, eps_at="inside", by="std", centre="mean",
        affine="ok"):
    """LayerNorm in float64, or one of its classic mistakes (each keyword plants one; the defaults are right)."""
    x, w, b = (t.double() for t in (x, weight, bias))
    if affine == "before":
        x = x * w + b
    mean = x.mean(dims, keepdim=True)  # (..., 1)
    if centre == "rms":
        var = x.pow(2).mean(dims, keepdim=True)  # (..., 1)   the mean square, about 0
    else:
        var = x.var(dims, correction=correction, keepdim=True)  # (..., 1)
    numerator = x - mean if centre == "mean" else x  # (..., D)
    denominator = {"inside": (var + eps).sqrt(), "outside": var.sqrt() + eps, "none": var.sqrt(),
                   "fixed": (var + 1e-5).sqrt()}[eps_at]
    if by == "var":
        denominator = var + eps
    x_hat = numerator / denominator  # (..., D)
    return {"ok": x_hat * w + b, "no_weight": x_hat + b, "no_bias": x_hat * w, "none": x_hat,
            "swapped": x_hat * b + w, "before": x_hat}[affine]


# (message, mistake) pairs tried, in order, when the output for x (B, N, D) differs from LayerNorm
_WRONG_DIMS = [("dimension 0 (the batch)", (0,)), ("dimension 1 (the tokens)", (1,)),
               ("all the elements of x", (0, 1, 2)), ("the last two dimensions (tokens and features)", (1, 2))]
_LN_MISTAKES = [
    *[(WRONG_DIM.format(what=what), dict(dims=dims, correction=c)) for what, dims in _WRONG_DIMS for c in (0, 1)],
    (UNBIASED, dict(correction=1)),
    (BY_VARIANCE, dict(by="var")),
    (BY_VARIANCE, dict(by="var", correction=1)),
    (NOT_CENTRED, dict(centre="none")),
    (NOT_CENTRED, dict(centre="none", correction=1)),
    (RMS, dict(centre="rms")),
    (NO_WEIGHT, dict(affine="no_weight")),
    (NO_BIAS, dict(affine="no_bias")),
    (NO_AFFINE, dict(affine="none")),
    (AFFINE_SWAPPED, dict(affine="swapped")),
    (AFFINE_BEFORE, dict(affine="before")),
]
# ... and when only eps makes the difference: nearly constant tokens (variance below eps) show
# where eps goes; eps = 0.1 then shows whether it is the eps passed (a fixed 1e-5 passes the former)
_FLAT_MISTAKES = [(EPS_OUTSIDE, dict(eps_at="outside")), (EPS_IGNORED, dict(eps_at="none"))]
_EPS_MISTAKES = [(EPS_FIXED, dict(eps_at="fixed")), (EPS_OUTSIDE, dict(eps_at="outside"))]


def _ln_call(fn, x, weight, bias, where, **eps):
    """The student's layer_norm on copies of the inputs; checks the shape and that the inputs are untouched."""
    given = [x.clone(), weight.clone(), bias.clone()]
    try:
        out = call(fn, *given, what="your layer_norm", where=where, **eps)
    except CheckFailed as e:
        if "must match the size of tensor" in str(e):
            raise CheckFailed(f"{e}; {KEEPDIM}") from e
        raise
    out = require_tensor(out, NOT_RETURNED, what="layer_norm")
    unchanged(dict(zip(("x", "weight", "bias"), given)), {"x": x, "weight": weight, "bias": bias},
              what="your layer_norm", hint="compute new tensors (x - mean, not x -= mean)")
    if out.shape != x.shape:
        raise CheckFailed(f"expected shape {fmt_shape(x)} (the shape of x), got {fmt_shape(out)} {where}")
    return out.detach().float()


def _diagnose_ln(out, x, weight, bias, mistakes, **eps):
    for message, mistake in mistakes:
        if close(out, _ln(x, weight, bias, **eps, **mistake)):
            raise CheckFailed(message)


def _ln_params(D, generator):
    """A weight about 1 and a bias about 0, neither trivial, so that forgetting or swapping them shows."""
    return 1 + 0.5 * randn(D, generator=generator), 0.5 * randn(D, generator=generator)


def check_layer_norm(fn) -> None:
    """Check a student's ``layer_norm(x, weight, bias, eps=1e-5)`` (see the module docstring)."""
    require_callable(fn, "layer_norm")
    g = torch.Generator().manual_seed(2)
    B, N, D = 2, 3, 6  # D small, so that dividing by D - 1 instead of D shows
    with keep_rng():
        x = randn(B, N, D, generator=g, scale=2) + randn(B, N, 1, generator=g)  # tokens with their own means
        weight, bias = _ln_params(D, g)
        # 1. the shape, and the inputs left alone
        where = f"for x of shape {fmt_shape(x)}"
        out = _ln_call(fn, x, weight, bias, where, eps=1e-5)
        passed(f"returns shape {fmt_shape(out)} for x {fmt_shape(x)}, weight and bias ({D},), and leaves "
               "its inputs unchanged")
        # 2. normalised over the last dimension, then 3. scaled and shifted
        if not close(out, _ln(x, weight, bias)):
            _diagnose_ln(out, x, weight, bias, _LN_MISTAKES)
            raise CheckFailed(WRONG_LN)
        passed(f"each token is normalised over its own D = {D} features (the last dimension), with the "
               "biased variance (divide by D)")
        passed("then scaled by weight and shifted by bias: x̂ * weight + bias")
        # 4. eps: inside the square root (nearly constant tokens, whose variance is below eps), 1e-5 by
        # default, and the eps passed (0.1: an eps fixed at 1e-5 differs only here)
        flat = randn(B, N, D, generator=g, scale=1e-3)  # var about 1e-6
        where_flat = f"for nearly constant tokens, x of shape {fmt_shape(flat)}"
        out = _ln_call(fn, flat, weight, bias, where_flat)
        if not close(out, _ln(flat, weight, bias)):
            _diagnose_ln(out, flat, weight, bias, _FLAT_MISTAKES)
            if close(_ln_call(fn, flat, weight, bias, where_flat, eps=1e-5), _ln(flat, weight, bias)):
                raise CheckFailed(DEFAULT_EPS)
            raise CheckFailed(f"for nearly constant tokens, {WRONG_LN}")
        out = _ln_call(fn, x, weight, bias, f"{where} and eps=0.1", eps=0.1)
        if not close(out, _ln(x, weight, bias, eps=0.1)):
            _diagnose_ln(out, x, weight, bias, _EPS_MISTAKES, eps=0.1)
            raise CheckFailed(f"with eps=0.1, {WRONG_LN}")
        passed("eps is added to the variance, inside the square root: nearly constant tokens and eps = 0.1 work")
        # 5. any leading dimensions
        shapes = []
        for shape in ((5, 4), (8,)):
            x2 = randn(*shape, generator=g)
            w2, b2 = _ln_params(shape[-1], g)
            try:
                out2 = _ln_call(fn, x2, w2, b2, f"for x of shape {fmt_shape(x2)}")
            except CheckFailed as e:
                raise CheckFailed(f"{e}; {LEADING_DIMS}") from e
            if not close(out2, _ln(x2, w2, b2)):
                raise CheckFailed(f"wrong result for x of shape {fmt_shape(x2)} (right for {fmt_shape(x)}): "
                                  + LEADING_DIMS)
            shapes.append(fmt_shape(x2))
        passed(f"any leading dimensions: x {shapes[0]} and {shapes[1]} work too")
        # 6. gradients, equal to LayerNorm's
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
        refs = [t.clone().requires_grad_() for t in (x, weight, bias)]
        result = require_tensor(call(fn, *leaves, what="your layer_norm"), NOT_RETURNED, what="layer_norm")
        r = randn(B, N, D, generator=g)
        require_gradients(result, r, (), "your layer_norm", "x, weight and bias")
        (F.layer_norm(refs[0], (D,), refs[1], refs[2]) * r).sum().backward()
        for name, t, ref in zip(("x", "weight", "bias"), leaves, refs):
            if t.grad is None or not t.grad.abs().sum() > 0 or not torch.isfinite(t.grad).all():
                raise CheckFailed(NO_GRAD.format(name=name))
            if not close(t.grad, ref.grad, rtol=1e-3, atol=1e-4):
                raise CheckFailed(GRAD_DIFFERS.format(name=name))
        passed("gradients flow back to x, weight and bias, and equal LayerNorm's")
    print("All checks passed: layer_norm is correct.")


# -------------------------------------------------------------------------- the encoder block

# How one sub-layer S (attention or feed-forward, with its LayerNorm n) updates the stream t,
# rightly or wrongly; x0 is the block's input. A block is two rules: (attention, feed-forward).
_RULES = {
    "pre": lambda t, S, n, x0: t + S(n(t)),
    "post": lambda t, S, n, x0: n(t + S(t)),
    "pre_no_residual": lambda t, S, n, x0: S(n(t)),
    "post_no_residual": lambda t, S, n, x0: n(S(t)),
    "norm_on_branch": lambda t, S, n, x0: t + n(S(t)),
    "no_norm": lambda t, S, n, x0: t + S(t),
    "normed_residual": lambda t, S, n, x0: n(t) + S(n(t)),
    "pre_parallel": lambda t, S, n, x0: t + S(n(x0)),
    "post_parallel": lambda t, S, n, x0: n(t + S(x0)),
    "pre_skip": lambda t, S, n, x0: x0 + S(n(t)),
    "post_skip": lambda t, S, n, x0: n(x0 + S(t)),
}


def _block(ref, x, mask=None, *, rules, norms=("norm1", "norm2"), act="gelu", pass_mask=True):
    """The block with ``ref``'s weights, wired by ``rules`` (see _RULES), or with another planted mistake."""
    n1, n2 = (getattr(ref, name) for name in norms)
    fc1, fc2 = ref.mlp[0], ref.mlp[2]
    activation = F.gelu if act == "gelu" else F.relu

    def attn(h):
        return ref.attn(h, mask=mask if pass_mask else None)  # (B, N, D)

    def mlp(h):
        return fc2(activation(fc1(h)))  # (B, N, D) -> (B, N, M) -> (B, N, D)

    rule1, rule2 = (_RULES[name] for name in rules)
    h = rule1(x, attn, n1, x)  # (B, N, D)   the attention sub-layer
    return rule2(h, mlp, n2, x)  # (B, N, D)   the feed-forward sub-layer


# (message, mistake) pairs tried, in order, when the student's block differs from the reference
_COMMON_MISTAKES = [
    (NORMS_SWAPPED, dict(norms=("norm2", "norm1"))),
    (SAME_NORM.format(name="norm1"), dict(norms=("norm1", "norm1"))),
    (SAME_NORM.format(name="norm2"), dict(norms=("norm2", "norm2"))),
    (RELU, dict(act="relu")),
]


def _order_mistakes(o: str) -> list[tuple[str, tuple[str, str]]]:
    """(message, the rules of the two sub-layers) for the ``o`` order ("pre" or "post"), in the order they are tried;
    pre-norm adds five: a sub-layer reading x itself, or a residual adding the normalised x."""
    other, bare, normed = {"pre": "post", "post": "pre"}[o], f"{o}_no_residual", "normed_residual"
    pre_only = [(ATTN_UNNORMED, ("no_norm", "pre")), (MLP_UNNORMED, ("pre", "no_norm")),
                *[(NORMED_RESIDUAL, rules) for rules in ((normed, normed), (normed, "pre"), ("pre", normed))]]
    return [(POST_WHEN_PRE if o == "pre" else PRE_WHEN_POST, (other, other)),
            (NO_RESIDUALS, (bare, bare)), (NO_RESIDUAL_ATTN, (bare, o)), (NO_RESIDUAL_MLP, (o, bare)),
            (NORM_ON_BRANCH, ("norm_on_branch", "norm_on_branch")), (NORM_ON_BRANCH, ("norm_on_branch", o)),
            (NORM_ON_BRANCH, (o, "norm_on_branch")), (NO_NORMS, ("no_norm", "no_norm")),
            *(pre_only if o == "pre" else []), (PARALLEL, (o, f"{o}_parallel")), (SKIPS_ATTN, (o, f"{o}_skip"))]


def block_mistakes(order: str) -> list[tuple[str, dict]]:
    """The (message, keywords of _block) pairs for the ``order`` ("pre" or "post"), messages filled in."""
    attn, mlp = FORMULAS[order]
    right = dict(rules=(order, order))
    mistakes = [(message, dict(rules=rules)) for message, rules in _order_mistakes(order)]
    mistakes += [(message, {**right, **mistake}) for message, mistake in _COMMON_MISTAKES]
    return [(message.format(attn=attn, mlp=mlp), mistake) for message, mistake in mistakes]


LINEAR_PATHS = ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.0", "mlp.2")
NORM_PATHS = ("norm1", "norm2")


def _describe(layer) -> str:
    """A one-line description of a layer: nn.Linear(32, 64), nn.Sequential(...), its class otherwise."""
    if isinstance(layer, nn.Linear):
        return f"nn.Linear({layer.in_features}, {layer.out_features})"
    if isinstance(layer, nn.LayerNorm):
        return f"nn.LayerNorm({', '.join(str(n) for n in layer.normalized_shape)})"
    if isinstance(layer, nn.Sequential):
        return f"nn.Sequential({', '.join(_describe(child) for child in layer)})"
    return type(layer).__name__ if isinstance(layer, nn.Module) else f"a {type(layer).__name__}"


def _check_attn(attn, D, H):
    want = f"attn must be MultiHeadAttention({D}, {H}) from course_utils.models.attention"
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        layer = getattr(attn, name, None)
        if not isinstance(layer, nn.Linear) or (layer.in_features, layer.out_features) != (D, D):
            raise CheckFailed(f"{want}, got {_describe(attn)}")
    if getattr(attn, "num_heads", H) != H:
        raise CheckFailed(f"{want} ({H} heads), got {attn.num_heads} heads")


def _check_mlp(mlp, D, M):
    want = f"nn.Sequential(nn.Linear({D}, {M}), nn.GELU(), nn.Linear({M}, {D}))"
    if not isinstance(mlp, nn.Sequential) or len(mlp) != 3:
        raise CheckFailed(f"mlp must be {want}, got {_describe(mlp)}")
    fc1, act, fc2 = mlp
    for layer, size in ((fc1, (D, M)), (fc2, (M, D))):
        if not isinstance(layer, nn.Linear) or (layer.in_features, layer.out_features) != size:
            raise CheckFailed(f"mlp must be {want}, got {_describe(mlp)}")
        if layer.bias is None:
            raise CheckFailed("the linear layers of mlp must have a bias (nn.Linear's default, bias=True)")
    if isinstance(act, nn.ReLU):
        raise CheckFailed(RELU)
    if not isinstance(act, nn.GELU):
        raise CheckFailed(f"mlp[1] must be nn.GELU(), got {_describe(act)}")
    if act.approximate != "none":
        raise CheckFailed(GELU_TANH)


def _build_block(cls, D, H, M, **pre_norm):
    """The student's block, after checking its sub-layers (CheckFailed naming the first one that is wrong)."""
    args = ", ".join([str(D), str(H), str(M)] + [f"pre_norm={v}" for v in pre_norm.values()])
    block = call(cls, D, H, M, what=f"TransformerEncoderBlock({args})", **pre_norm)
    if not isinstance(block, nn.Module):
        raise CheckFailed(f"TransformerEncoderBlock must be a subclass of nn.Module, got {type(block).__name__}")
    for name in ("attn", "norm1", "mlp", "norm2"):
        if not isinstance(getattr(block, name, None), nn.Module):
            raise CheckFailed(f"TransformerEncoderBlock({args}) has no sub-layer {name}: name them attn, norm1, "
                              "mlp, norm2")
    _check_attn(block.attn, D, H)
    for name in NORM_PATHS:
        norm = getattr(block, name)
        if (not isinstance(norm, nn.LayerNorm) or tuple(norm.normalized_shape) != (D,) or norm.weight is None
                or norm.bias is None):
            raise CheckFailed(f"{name} must be nn.LayerNorm({D}) (with its weight and bias), got {_describe(norm)}")
    if block.norm1 is block.norm2:
        raise CheckFailed(SHARED_NORM)
    _check_mlp(block.mlp, D, M)
    return block.eval()


def _block_weights(D, M, generator):
    """Fixed weights for every sub-layer, {path: (weight, bias)}; LayerNorms far from (1, 0), so that they show."""
    weights = {}
    for path in LINEAR_PATHS:
        fan_in, fan_out = (D, M) if path == "mlp.0" else (M, D) if path == "mlp.2" else (D, D)
        weights[path] = (randn(fan_out, fan_in, generator=generator, scale=1 / math.sqrt(fan_in)),
                         randn(fan_out, generator=generator, scale=0.1))
    for path in NORM_PATHS:
        weights[path] = _ln_params(D, generator)
    return weights


def _load(block, weights):
    with torch.no_grad():
        for path, (W, b) in weights.items():
            layer = block.get_submodule(path)
            layer.weight.copy_(W)
            layer.bias.copy_(b)
    return block


def _block_forward(block, x, what, mask=None):
    """The student's output for x (B, N, D): a tensor of x's shape, x left unchanged."""
    given = x.clone()
    kwargs = {} if mask is None else {"mask": mask.clone()}
    try:
        out = call(block, given, what="your forward", where=what, **kwargs)
    except CheckFailed as e:
        if mask is not None and "Bool" in str(e):  # the mask went to attn as its context
            raise CheckFailed(f"{e}; {MASK_POSITIONAL}") from e
        raise
    out = require_tensor(out, NOT_RETURNED, what="forward")
    unchanged({"x": given}, {"x": x}, what="your forward", hint="compute new tensors (x = x + attn(...), not x += attn(...))")
    if out.shape != x.shape:
        raise CheckFailed(f"expected shape {fmt_shape(x)}, got {fmt_shape(out)}" + (f" {what}" if what else ""))
    return out


def _compare_block(out, ref, x, mask, order):
    """CheckFailed naming the mistake when the student's output differs from the reference's."""
    with torch.no_grad():
        if close(out, ref(x, mask=mask)):
            return
        mistakes = block_mistakes(order)
        if mask is not None:
            mistakes = [(MASK_NOT_PASSED, dict(rules=(order, order), pass_mask=False)), *mistakes]
        first_match(out, ((_block(ref, x, mask, **mistake), message) for message, mistake in mistakes),
                    _wrong_block(order))


def _wrong_block(order) -> str:
    attn, mlp = FORMULAS[order]
    return WRONG_BLOCK.format(order=f"{order}-norm", attn=attn, mlp=mlp)


def check_transformer_block(cls) -> None:
    """Check a student's ``TransformerEncoderBlock(dim, num_heads, mlp_dim, pre_norm=False)`` (see the docstring)."""
    require_callable(cls, "TransformerEncoderBlock", kind="class")
    g = torch.Generator().manual_seed(3)
    B, N, D, H, M = 2, 5, 32, 4, 64  # M is not 4 * D, so that a hard-coded width shows
    with keep_rng():
        # 1. the sub-layers
        weights = _block_weights(D, M, g)
        pre = _load(_build_block(cls, D, H, M, pre_norm=True), weights)
        ref = {order: _load(_Reference(D, H, M, pre_norm=(order == "pre")), weights).eval() for order in FORMULAS}
        passed(f"TransformerEncoderBlock({D}, {H}, {M}) has attn = MultiHeadAttention({D}, {H}), "
               f"norm1 and norm2 = nn.LayerNorm({D}), mlp = Linear({D}, {M}), GELU, Linear({M}, {D})")
        # 2. the shape
        x = randn(B, N, D, generator=g)
        what = f"for x of shape {fmt_shape(x)}"
        out = _block_forward(pre, x, what)
        passed(f"forward: x {fmt_shape(x)} -> {fmt_shape(out)}, x left unchanged")
        # 3. post-norm, the default
        post = _load(_build_block(cls, D, H, M, pre_norm=False), weights)
        post_out = _block_forward(post, x, f"{what} and pre_norm=False")
        _compare_block(post_out, ref["post"], x, None, "post")
        default = _load(_build_block(cls, D, H, M), weights)
        if not close(_block_forward(default, x, what), post_out):
            raise CheckFailed(DEFAULT_PRE)
        passed("pre_norm=False (the default), the original order: x = norm1(x + attn(x)); x = norm2(x + mlp(x))")
        # 4. pre-norm
        _compare_block(out, ref["pre"], x, None, "pre")
        passed("pre_norm=True, ViT's order: x = x + attn(norm1(x)); x = x + mlp(norm2(x))")
        # 5. masks reach the attention, in both orders
        causal = causal_mask(N)
        padding = padding_mask(torch.tensor([N, 3]), N)
        for block, mask, order, label in ((pre, causal, "pre", "a causal mask"),
                                          (post, padding, "post", "a padding mask")):
            what = f"with {label} of shape {fmt_shape(mask)}"
            _compare_block(_block_forward(block, x, what, mask), ref[order], x, mask, order)
        passed(f"the mask reaches the attention: causal mask {fmt_shape(causal)} and padding mask "
               f"{fmt_shape(padding)}")
        # 6. gradients reach every parameter
        r = randn(B, N, D, generator=g)
        for block in (pre, post):
            block.zero_grad()
            out = _block_forward(block, x, what="")
            require_gradients(out, r, block.named_parameters(), "your forward", "the block's parameters")
        passed("gradients reach every parameter: attn, norm1, mlp, norm2")
        # 7. the same function as PyTorch's own layer
        with torch.no_grad():
            for block, order in ((pre, "pre"), (post, "post")):
                if not close(_block_forward(block, x, what=""), to_torch_layer(ref[order])(x)):
                    raise CheckFailed(_wrong_block(order))
        passed(f"equals torch.nn.TransformerEncoderLayer({D}, {H}, {M}, activation='gelu', norm_first=True "
               "or False) with the same weights")
    print("All checks passed: TransformerEncoderBlock is correct.")


# ------------------------------------------------------------------ largest_lr: an experiment on warm-up

def _largest(accuracy, lrs, order, warmup, target, *, seeds=min, inclusive=True, stop_at_failure=False,
             first_failure=False, **slips):
    """The contract's answer, and (through the keywords, ``slips`` those of ``first_choice``) the answers of the
    classic mistakes: ``seeds`` sums up a learning rate's seeds (the right one, min: every seed reaches the target)."""
    hits = []
    for i, runs in enumerate(accuracy[order][warmup]):
        value = seeds(runs)
        if value >= target if inclusive else value > target:
            hits.append(i)
        elif first_failure:
            return lrs[i]
        elif stop_at_failure:
            break
    if first_failure:
        return None
    return first_choice(hits, lrs, largest=not slips.pop("smallest", False), **slips)


def _lr_record(post_none, post_warm, pre_none, pre_warm):
    """A made-up record in the JSON's layout: one list per order and warm-up, one entry per learning rate, each a
    list of three seeds' accuracies (a single number stands for three equal seeds)."""
    seeds = lambda entries: [list(e) if isinstance(e, (list, tuple)) else [e] * 3 for e in entries]
    return {"post-norm": {"no warm-up": seeds(post_none), "warm-up": seeds(post_warm)},
            "pre-norm": {"no warm-up": seeds(pre_none), "warm-up": seeds(pre_warm)}}


_LRS = [1e-3, 3e-3, 1e-2, 3e-2]
_TYPICAL = _lr_record([0.95, [0.93, 0.94, 0.92], 0.10, 0.10], [0.96, 0.96, [0.95, 0.93, 0.94], 0.10],
                      [0.95, 0.95, [0.94, 0.92, 0.93], 0.30], [0.96, 0.96, 0.95, [0.91, 0.92, 0.93]])
_LR_CASES = [  # (what the case is about, accuracy, order, warmup, target)
    ("post-norm without warm-up", _TYPICAL, "post-norm", "no warm-up", 0.9),
    ("post-norm with warm-up", _TYPICAL, "post-norm", "warm-up", 0.9),
    ("pre-norm without warm-up", _TYPICAL, "pre-norm", "no warm-up", 0.9),
    ("one seed diverges", _lr_record([0.95, [0.97, 0.85, 0.97], 0.10, 0.10], [0.96] * 4, [0.96] * 4, [0.96] * 4),
     "post-norm", "no warm-up", 0.9),
    ("only the first seed trains", _lr_record([0.95] * 4, [0.96] * 4, [0.96] * 4,
                                              [0.95, 0.95, [0.95, 0.40, 0.50], 0.10]), "pre-norm", "warm-up", 0.9),
    ("only the last seed trains", _lr_record([0.95] * 4, [0.96, [0.10, 0.50, 0.96], 0.10, 0.10], [0.96] * 4,
                                             [0.96] * 4), "post-norm", "warm-up", 0.9),
    ("one seed far behind", _lr_record([0.96] * 4, [0.96] * 4, [0.95, 0.95, [0.95, 0.95, 0.60], 0.10], [0.96] * 4),
     "pre-norm", "no warm-up", 0.9),
    ("a seed exactly at the target", _lr_record([0.5] * 4, [0.5] * 4, [0.875, [0.75, 0.875, 0.8125], 0.625, 0.25],
                                                [0.5] * 4), "pre-norm", "no warm-up", 0.75),
    ("never reaches the target", _lr_record([0.85, 0.80, 0.10, 0.10], [0.96] * 4, [0.96] * 4, [0.96] * 4),
     "post-norm", "no warm-up", 0.9),
    ("the smallest learning rate falls short", _lr_record([0.96] * 4, [0.96] * 4, [0.96] * 4,
                                                         [[0.85, 0.95, 0.95], 0.95, 0.94, 0.10]),
     "pre-norm", "warm-up", 0.9),
    ("a lower target (0.5)", _lr_record([0.95, 0.80, 0.70, 0.10], [0.96] * 4, [0.96] * 4, [0.96] * 4),
     "post-norm", "no warm-up", 0.5),
    ("a seed just below the target", _lr_record([0.96] * 4, [0.96, 0.95, [0.95, 0.895, 0.96], 0.10], [0.96] * 4,
                                                [0.96] * 4), "post-norm", "warm-up", 0.9),
]
_LR_MISTAKES = [  # (the mistake's answer on one case, the message)
    (lambda *case: _largest(*case, index=True),
     "returns the position in `lrs`, not the learning rate: return lrs[i]"),
    (lambda *case: _largest(*case, seeds=mean),
     "compares the mean over the seeds with the target: every seed must reach it (one diverged seed is a failure)"),
    (lambda *case: _largest(*case, seeds=max),
     "counts a learning rate when any seed reaches the target (the best seed): every seed must reach it"),
    (lambda *case: _largest(*case, seeds=lambda runs: runs[0]),
     "uses one seed (the first): every seed must reach the target"),
    (lambda *case: _largest(*case, seeds=statistics.median),
     "compares the median over the seeds with the target: every seed must reach it"),
    (lambda *case: _largest(*case, inclusive=False),
     "a seed exactly at the target has reached it: use >=, not >"),
    (lambda *case: _largest(*case, seeds=lambda runs: min(round(a, 2) for a in runs)),
     "rounds the accuracies before comparing them: a seed at 0.895 has not reached 0.9"),
    (lambda *case: _largest(*case, last_if_never=True),
     "when no learning rate qualifies, return None, not the last learning rate"),
    (lambda *case: _largest(*case, smallest=True),
     "returns the smallest learning rate at which every seed reaches the target: the largest is the answer"),
    (lambda *case: _largest(*case, stop_at_failure=True),
     "stops at the first learning rate that falls short: the answer is the largest that qualifies, even if a "
     "smaller one does not"),
    (lambda *case: _largest(*case, first_failure=True),
     "returns the first learning rate that falls short: return the largest at which every seed reaches the target"),
    (lambda a, lrs, order, warmup, target: _largest(a, lrs, order, warmup, 0.9),
     "uses a fixed target of 0.9: use the `target` you are given"),
    (lambda a, lrs, order, warmup, target: _largest(a, lrs, "post-norm", warmup, target),
     "always reads the post-norm runs: read accuracy[order]"),
    (lambda a, lrs, order, warmup, target: _largest(a, lrs, order, "no warm-up", target),
     "always reads the runs without warm-up: read accuracy[order][warmup]"),
]


def check_largest_lr(largest_lr) -> None:
    """Check ``largest_lr(accuracy, lrs, order, warmup, target=0.9)`` -> the largest learning rate at which every
    seed of ``accuracy[order][warmup]`` reaches ``target``, or None, on twelve made-up records (nested lists, as in
    the JSON record); a mistake is named only when it gives every answer the student gave."""
    require_callable(largest_lr, "largest_lr")
    answers = answers_on_records(largest_lr, "largest_lr",
                                 [(case, (accuracy, _LRS, order, warmup, target))
                                  for case, accuracy, order, warmup, target in _LR_CASES],
                                 "the accuracy record or the learning rates")
    explain_answers(answers, [_largest(a, _LRS, o, w, t) for _, a, o, w, t in _LR_CASES],
                    [case for case, *_ in _LR_CASES],
                    [([mistake(a, list(_LRS), o, w, t) for _, a, o, w, t in _LR_CASES], message)
                     for mistake, message in _LR_MISTAKES],
                    "the largest learning rate at which every seed of accuracy[order][warmup] reaches `target` "
                    "(None if none does)")
    passed(f"the largest learning rate at which every seed reaches the target, on {len(_LR_CASES)} made-up records "
           "(every seed, ties count, None when none does)")
