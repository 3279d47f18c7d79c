"""Checks for the debugging exercise (``solutions/03_debug_vit.ipynb``): a small ViT with three planted mistakes.

The student is given ``TinyViT``, which runs and trains, and fixes it. The check loads one set of random weights into
the student's model and into a reference written from the equations (Dosovitskiy et al. 2021, equations 1 to 4;
Vaswani et al. 2017, equation 1), then compares the student's logits with the reference computed with every
combination of the three mistakes left in. The combination that matches says which mistakes are fixed and which
remain; an output that matches none means something else changed. Any correct fix passes: the reference only
compares outputs (``F.scaled_dot_product_attention``, einsum or the given matmuls all agree).
"""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from course_utils.grading.checks import CheckFailed, call, close, fmt_shape, keep_rng, passed, require_callable

__all__ = ["MISTAKES", "check_debugged_vit", "reference_logits"]

# Shape legend: B batch, T = N + 1 tokens, D width, h heads, d = D / h per head, K classes.

MISTAKES = {  # name -> (what it is about, what the check says while it is still there)
    "scale": ("the attention scores' scale", "the attention scores' scale (Vaswani et al. 2017, equation 1)"),
    "heads": ("the split into heads", "the split into heads (each head sees every token, with its own slice of "
              "the width)"),
    "readout": ("the token the classifier reads", "the token the classifier reads (chapter 03, section 4)"),
}
SIZES = {"image_size": 8, "patch_size": 2, "channels": 1, "dim": 32, "depth": 2, "heads": 4, "classes": 10}


def _expected_parameters(s=SIZES) -> dict[str, tuple[int, ...]]:
    D, P, C, N = s["dim"], s["patch_size"], s["channels"], (s["image_size"] // s["patch_size"]) ** 2
    shapes = {"cls_token": (1, 1, D), "pos_embedding": (1, N + 1, D), "patch_embed.weight": (D, C, P, P),
              "patch_embed.bias": (D,), "norm.weight": (D,), "norm.bias": (D,), "head.weight": (s["classes"], D),
              "head.bias": (s["classes"],)}
    block = {"norm1.weight": (D,), "norm1.bias": (D,), "qkv.weight": (3 * D, D), "qkv.bias": (3 * D,),
             "proj.weight": (D, D), "proj.bias": (D,), "norm2.weight": (D,), "norm2.bias": (D,),
             "mlp.0.weight": (4 * D, D), "mlp.0.bias": (4 * D,), "mlp.2.weight": (D, 4 * D), "mlp.2.bias": (D,)}
    return shapes | {f"blocks.{i}.{name}": shape for i in range(s["depth"]) for name, shape in block.items()}


def reference_logits(state: dict[str, torch.Tensor], images: torch.Tensor, mistakes=(), heads: int = SIZES["heads"],
                     scale: float | None = None):
    """TinyViT's logits (B, K) for ``images`` (B, C, H, W) with the weights ``state``, the named mistakes left in
    (``scale``: the scores' factor where the "scale" fix went wrong; by default 1/sqrt(d))."""
    P = state["patch_embed.weight"].shape[-1]
    x = F.conv2d(images, state["patch_embed.weight"], state["patch_embed.bias"], stride=P)  # (B, D, H/P, W/P)
    x = x.flatten(2).transpose(1, 2)  # (B, N, D), patches in reading order
    B, _, D = x.shape
    x = torch.cat([state["cls_token"].expand(B, -1, -1), x], dim=1) + state["pos_embedding"]  # (B, T, D)
    T, d = x.shape[1], D // heads
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for i in range(depth):
        w = {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"blocks.{i}.")}
        y = F.layer_norm(x, (D,), w["norm1.weight"], w["norm1.bias"])
        q, k, v = F.linear(y, w["qkv.weight"], w["qkv.bias"]).chunk(3, dim=-1)  # 3 x (B, T, D)
        if "heads" in mistakes:
            q, k, v = (t.reshape(B, heads, T, d) for t in (q, k, v))
        else:
            q, k, v = (t.reshape(B, T, heads, d).transpose(1, 2) for t in (q, k, v))  # (B, h, T, d)
        scores = q @ k.transpose(-2, -1)  # (B, h, T, T)
        if "scale" not in mistakes:
            scores = scores * (scale if scale is not None else 1 / math.sqrt(d))
        out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(out, w["proj.weight"], w["proj.bias"])
        y = F.layer_norm(x, (D,), w["norm2.weight"], w["norm2.bias"])
        x = x + F.linear(F.gelu(F.linear(y, w["mlp.0.weight"], w["mlp.0.bias"])), w["mlp.2.weight"], w["mlp.2.bias"])
    x = F.layer_norm(x, (D,), state["norm.weight"], state["norm.bias"])
    token = x[:, -1] if "readout" in mistakes else x[:, 0]  # (B, D)
    return F.linear(token, state["head.weight"], state["head.bias"])  # (B, K)


@keep_rng()
def check_debugged_vit(TinyViT) -> None:
    """Check the student's ``TinyViT``: which of the three planted mistakes are fixed, which remain."""
    require_callable(TinyViT, "TinyViT", "class")
    if not isinstance(TinyViT, type):
        raise CheckFailed(f"expected the class TinyViT, got an instance of {type(TinyViT).__name__}: pass the class "
                          "itself, check_debugged_vit(TinyViT)")
    torch.manual_seed(0)
    model = call(TinyViT, what="your TinyViT()")
    expected = _expected_parameters()
    try:
        got = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    except AttributeError as e:
        raise CheckFailed(f"TinyViT() should be an nn.Module, got {type(model).__name__}") from e
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        reshaped = sorted(n for n in set(got) & set(expected) if got[n] != expected[n])
        raise CheckFailed("keep the given parameters (the check loads its own weights into them): "
                          + "; ".join(part for part in [
                              f"missing {', '.join(missing)}" if missing else "",
                              f"new {', '.join(extra)}" if extra else "",
                              f"shape changed: {', '.join(f'{n} {got[n]} (given {expected[n]})' for n in reshaped)}"
                              if reshaped else ""] if part))
    passed("the given parameters, names and shapes unchanged")

    generator = torch.Generator().manual_seed(3)
    state = {name: torch.randn(shape, generator=generator) * (0.02 if name.endswith("bias") else 0.5)
             for name, shape in expected.items()}
    for name in state:
        if "norm" in name and name.endswith("weight"):
            state[name] = 1 + 0.1 * state[name] / 0.5
    model.load_state_dict(state)
    model.eval()
    images = torch.rand(5, SIZES["channels"], SIZES["image_size"], SIZES["image_size"], generator=generator)
    with torch.no_grad():
        logits = call(model, images.clone(), what="your TinyViT's forward", where=f"for images {fmt_shape(images)}")
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (5, SIZES["classes"]):
        raise CheckFailed(f"TinyViT should return logits (B, classes) = (5, 10), got "
                          f"{fmt_shape(logits) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    passed("logits (B, classes) = (5, 10)")
    for left in (r for n in range(len(MISTAKES) + 1) for r in itertools.combinations(MISTAKES, n)):
        if close(logits, reference_logits(state, images, left), rtol=1e-4, atol=1e-4):
            break
    else:
        D, d = SIZES["dim"], SIZES["dim"] // SIZES["heads"]
        for wrong, name in [(1 / math.sqrt(D), "1/sqrt(D), the model's width"), (1 / d, "1/d"), (math.sqrt(d), "sqrt(d)")]:
            for left in (r for n in range(3) for r in itertools.combinations(("heads", "readout"), n)):
                if close(logits, reference_logits(state, images, left, scale=wrong), rtol=1e-4, atol=1e-4):
                    raise CheckFailed(f"the attention scores are now scaled by {name}: equation 1 divides them "
                                      "by sqrt(d_k), d_k the width of one head")
        raise CheckFailed("your TinyViT's output matches neither the fixed model nor any mix of the three planted "
                          "mistakes: something else changed. Compare your edits with the given code; a fix changes "
                          "only what is wrong")
    for name in MISTAKES:
        if name not in left:
            passed(f"fixed: {MISTAKES[name][0]}")
    if left:
        raise CheckFailed(f"{len(MISTAKES) - len(left)} of {len(MISTAKES)} mistakes fixed; still there: "
                          + "; ".join(MISTAKES[name][1] for name in left))
