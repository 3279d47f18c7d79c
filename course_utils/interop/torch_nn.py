"""The course's ``TransformerEncoderBlock`` as PyTorch's own ``nn.TransformerEncoderLayer``."""
from __future__ import annotations

import torch
from torch import nn

from course_utils.models.transformer import TransformerEncoderBlock

__all__ = ["to_torch_layer"]


@torch.no_grad()
def to_torch_layer(block: TransformerEncoderBlock) -> nn.TransformerEncoderLayer:
    """The ``torch.nn.TransformerEncoderLayer`` computing the same function as ``block`` (eval mode).

    PyTorch keeps W^Q, W^K, W^V stacked in one ``in_proj_weight`` (3D, D) with the heads side by
    side, the layout of ``MultiHeadAttention``; ``norm_first`` is the pre-norm switch; dropout is 0.
    """
    attn, fc1, fc2 = block.attn, block.mlp[0], block.mlp[2]
    layer = nn.TransformerEncoderLayer(
        d_model=attn.dim, nhead=attn.num_heads, dim_feedforward=fc1.out_features, dropout=0.0,
        activation="gelu", layer_norm_eps=block.norm1.eps, batch_first=True, norm_first=block.pre_norm)
    sa = layer.self_attn
    sa.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))  # (3D, D)
    sa.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))  # (3D,)
    for dst, src in [(sa.out_proj, attn.out_proj), (layer.linear1, fc1), (layer.linear2, fc2),
                     (layer.norm1, block.norm1), (layer.norm2, block.norm2)]:
        dst.weight.copy_(src.weight)
        dst.bias.copy_(src.bias)
    return layer.eval()
