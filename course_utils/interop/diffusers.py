"""Diffusers' attention layers through the course's own ``MultiHeadAttention``: the same weights, the same outputs.

``course_attention(attn)`` copies one diffusers ``Attention`` layer's weights into a ``MultiHeadAttention``;
``CourseCrossAttention.install(unet)`` runs every cross-attention layer of a UNet through one and keeps
its attention maps (chapter 07 draws them).
"""
from __future__ import annotations

import torch

from course_utils.models.attention import MultiHeadAttention

__all__ = ["course_attention", "CourseCrossAttention"]


def course_attention(attn) -> torch.nn.Module:
    """The course's ``MultiHeadAttention`` holding the weights of one diffusers ``Attention`` layer.

    diffusers' layer has ``to_q``, ``to_k``, ``to_v`` (no bias) and ``to_out[0]`` (with bias); the
    course's has ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` with biases, which are set to zero.
    """
    dim, context_dim = attn.to_q.out_features, attn.to_k.in_features
    mha = MultiHeadAttention(dim, attn.heads, context_dim=context_dim)
    with torch.no_grad():
        for mine, theirs in [(mha.q_proj, attn.to_q), (mha.k_proj, attn.to_k), (mha.v_proj, attn.to_v),
                             (mha.out_proj, attn.to_out[0])]:
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias if theirs.bias is not None else torch.zeros_like(mine.bias))
    return mha.to(attn.to_q.weight.device).eval()


class CourseCrossAttention:
    """A diffusers attention processor that runs every cross-attention layer (``attn2``) through the
    course's ``MultiHeadAttention(context=...)`` and keeps its attention weights.

        recorder = CourseCrossAttention.install(unet)
        ... run the UNet ...
        recorder.maps   # list of (layer name, weights (B, H, N, M)) in call order
        recorder.remove()  # diffusers' own processors back

    Queries come from the N image positions, keys and values from the M prompt tokens.
    """

    def __init__(self, name: str, attn, store: list):
        self.name, self.mha, self.store = name, course_attention(attn), store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if encoder_hidden_states is None or attention_mask is not None or hidden_states.ndim != 3:
            raise NotImplementedError("CourseCrossAttention handles plain cross-attention only (3-D input, no mask)")
        out, weights = self.mha(hidden_states, context=encoder_hidden_states, return_weights=True)
        self.store.append((self.name, weights.detach()))
        return attn.to_out[1](out)  # the layer's dropout (identity in eval mode), as diffusers applies it

    @staticmethod
    def install(unet) -> _Recorder:
        return _Recorder(unet)


class _Recorder:
    def __init__(self, unet):
        self.unet, self.maps = unet, []
        self.original = dict(unet.attn_processors)
        cross = {name: CourseCrossAttention(name, unet.get_submodule(name.removesuffix(".processor")), self.maps)
                 for name in self.original if name.endswith("attn2.processor")}  # attn1: self-attention over positions
        unet.set_attn_processor(self.original | cross)

    def remove(self):
        self.unet.set_attn_processor(self.original)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
