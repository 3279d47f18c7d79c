"""The transformer encoder block: "Attention Is All You Need" (Vaswani et al., NeurIPS 2017), section 3.1.

Four steps, in the paper's order (post-norm, the original transformer):

    1. multi-head self-attention           a = MHSA(x)
    2. Add & LayerNorm                     x = LN(x + a)
    3. feed-forward network                f = W_2 GELU(W_1 x + b_1) + b_2   (the paper used ReLU; ViT, BERT: GELU)
    4. Add & LayerNorm                     x = LN(x + f)

and the pre-norm order the Vision Transformer uses (Dosovitskiy et al., ICLR 2021, equations 2-3;
analysed by Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020):

    z' = MHSA(LN(z)) + z                                               (ViT eq. 2)
    z  = MLP(LN(z')) + z'                                              (ViT eq. 3)

Pre-norm keeps an identity path from the block's input to its output, so gradients reach early
layers of a deep stack undiminished; chapter 02 measures it.

What is here: ``TransformerEncoderBlock`` (both orders, one parameter); ``course_utils.interop.torch_nn.to_torch_layer``
builds the ``torch.nn.TransformerEncoderLayer`` computing the same function.
"""
from __future__ import annotations

import torch
from torch import nn

from course_utils.models.attention import MultiHeadAttention

__all__ = ["TransformerEncoderBlock"]

# Shape legend: B batch, N tokens, D width (dim), M hidden width of the feed-forward network (mlp_dim).


class TransformerEncoderBlock(nn.Module):
    """One encoder block: self-attention and a GELU feed-forward network, each with a residual and a LayerNorm.

    ``pre_norm=False`` (the default) is the original order (LayerNorm after each residual addition);
    ``pre_norm=True`` is ViT's (LayerNorm on the input of each sub-layer). Same parameters either way:
    ``attn`` (``MultiHeadAttention``), ``norm1``, ``mlp`` (Linear(D, M), GELU, Linear(M, D)), ``norm2``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, pre_norm: bool = False):
        super().__init__()
        self.pre_norm = pre_norm
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))  # FFN: D -> M -> D
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D). ``mask``: boolean, True where a token may attend (see attention.py)."""
        if self.pre_norm:
            x = x + self.attn(self.norm1(x), mask=mask)  # (B, N, D)   ViT eq. 2: z' = MSA(LN(z)) + z
            x = x + self.mlp(self.norm2(x))  # (B, N, D)   ViT eq. 3: z = MLP(LN(z')) + z'
        else:
            x = self.norm1(x + self.attn(x, mask=mask))  # (B, N, D)   steps 1-2: MHSA, Add & LayerNorm
            x = self.norm2(x + self.mlp(x))  # (B, N, D)   steps 3-4: FFN, Add & LayerNorm
        return x

    def extra_repr(self) -> str:
        return f"pre_norm={self.pre_norm}"
