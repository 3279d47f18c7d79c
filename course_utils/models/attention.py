"""Scaled dot-product attention and multi-head attention: "Attention Is All You Need" (Vaswani et al., NeurIPS 2017).

The paper's equations, with the names this file uses:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                       (eq. 1)  scaled_dot_product_attention
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O                    (3.2.2)  MultiHeadAttention
        where head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

What is here, in order: the maths as plain functions (``scaled_dot_product_attention``, and the two
masks every transformer uses, ``causal_mask`` and ``padding_mask``), then the module
(``MultiHeadAttention``, self-attention or cross-attention).

Masks follow PyTorch's ``torch.nn.functional.scaled_dot_product_attention``: a boolean tensor that
is True where a query MAY attend to a key. (``torch.nn.MultiheadAttention``'s boolean masks mean
the opposite: True there marks a key to ignore.)
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

__all__ = ["scaled_dot_product_attention", "causal_mask", "padding_mask", "MultiHeadAttention"]

# Shape legend: ... any leading dimensions (batch, heads), Lq queries, Lk keys (= values),
# d = d_k the width of a query and a key, dv the width of a value;
# for the module: B batch, N tokens of x (the queries), M tokens of the context (keys, values),
# D model width (dim), H heads, d_k = D / H the width of one head.


# ---------------------------------------------------------------- the maths, as plain functions

def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k)) v, the paper's equation 1; returns ``(output, weights)``.

    ``q`` (..., Lq, d), ``k`` (..., Lk, d), ``v`` (..., Lk, dv) -> output (..., Lq, dv) and the
    attention weights (..., Lq, Lk), which sum to 1 over the keys (the last dimension).
    ``mask``: boolean, broadcastable to (..., Lq, Lk), True where a query may attend to a key.
    Masked scores are set to -inf before the softmax (the paper's "setting to -inf"), so masked
    keys get exactly zero weight. A query that may attend to no key at all gets NaN weights.
    """
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., Lq, Lk)   1. similarities, scaled
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # (..., Lq, Lk)   2. forbidden pairs
    weights = scores.softmax(dim=-1)  # (..., Lq, Lk)   3. a distribution over the keys
    output = weights @ v  # (..., Lq, dv)   4. the weighted average of the values
    return output, weights


def causal_mask(L: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The causal (look-ahead) mask: (L, L) boolean, True where key j <= query i.

    Token i may attend to itself and to the tokens before it, never to later ones (the
    decoder's masking in Vaswani et al., section 3.2.3). Broadcasts against (..., L, L).
    """
    i = torch.arange(L, device=device)
    return i[None, :] <= i[:, None]  # (L, L): row i (query), column j (key)


def padding_mask(lengths: torch.Tensor, L: int) -> torch.Tensor:
    """The padding mask of a batch of sequences padded to length L: (B, 1, 1, L) boolean.

    ``lengths`` (B,) holds each sequence's true length; key j of sequence b may be attended to
    when j < lengths[b]. The two singleton dimensions broadcast over heads and queries, so the
    mask fits scores of shape (B, H, Lq, L). For scores without a head dimension, (B, Lq, L),
    use ``padding_mask(lengths, L)[:, 0]``, shape (B, 1, L).
    """
    lengths = torch.as_tensor(lengths)
    j = torch.arange(L, device=lengths.device)
    return (j[None, :] < lengths[:, None])[:, None, None, :]  # (B, L) -> (B, 1, 1, L)


# ---------------------------------------------------------------------------------- the module

class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al., section 3.2.2) with H heads of width d_k = D / H.

    The four projections are ``nn.Linear(D, D)`` with bias: ``q_proj`` (W^Q), ``k_proj`` (W^K),
    ``v_proj`` (W^V) hold the H heads' matrices W_i side by side, and ``out_proj`` is W^O.
    Self-attention by default; cross-attention when ``context`` is given (queries from x, keys
    and values from the context, as in Stable Diffusion's UNet attending to the text). The context
    may be narrower or wider than x: ``context_dim`` (default ``dim``) is its width, and W^K, W^V
    map it to D.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads}): "
                             f"each of the {num_heads} heads gets dim / num_heads features")
        self.dim, self.num_heads = dim, num_heads
        self.context_dim = context_dim or dim
        self.q_proj = nn.Linear(dim, dim)  # W^Q
        self.k_proj = nn.Linear(self.context_dim, dim)  # W^K
        self.v_proj = nn.Linear(self.context_dim, dim)  # W^V
        self.out_proj = nn.Linear(dim, dim)  # W^O

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, return_weights: bool = False):
        """x (B, N, D), context (B, M, context_dim) or None (then M = N) -> (B, N, D).

        ``mask``: boolean, broadcastable to (B, H, N, M), True where a query may attend
        (``causal_mask(N)``, ``padding_mask(lengths, M)``). With ``return_weights=True`` returns
        ``(output, weights)``, the weights of every head, (B, H, N, M).
        """
        context = x if context is None else context  # (B, M, D)
        H = self.num_heads
        q = rearrange(self.q_proj(x), "b n (h d) -> b h n d", h=H)  # (B, H, N, d_k)   1. project, split heads
        k = rearrange(self.k_proj(context), "b m (h d) -> b h m d", h=H)  # (B, H, M, d_k)
        v = rearrange(self.v_proj(context), "b m (h d) -> b h m d", h=H)  # (B, H, M, d_k)
        heads, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, H, N, d_k), (B, H, N, M)   2. attend
        concat = rearrange(heads, "b h n d -> b n (h d)")  # (B, N, D)   3. Concat(head_1, ..., head_h)
        output = self.out_proj(concat)  # (B, N, D)   4. W^O
        return (output, weights) if return_weights else output

    def extra_repr(self) -> str:
        extra = f", context_dim={self.context_dim}" if self.context_dim != self.dim else ""
        return f"dim={self.dim}, num_heads={self.num_heads}{extra}"
