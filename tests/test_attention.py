"""course_utils.models.attention against PyTorch's own attention (float32, CPU)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from course_utils.models.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention


def _qkv(*lead, Lq=5, Lk=7, d=16, dv=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*lead, Lq, d, generator=g)
    k = torch.randn(*lead, Lk, d, generator=g)
    v = torch.randn(*lead, Lk, dv, generator=g)
    return q, k, v


@pytest.mark.parametrize("lead", [(), (3,), (2, 4)])
def test_sdpa_equals_pytorch(lead):
    q, k, v = _qkv(*lead)
    out, w = scaled_dot_product_attention(q, k, v)
    assert out.shape == (*lead, 5, 8) and w.shape == (*lead, 5, 7)
    assert_close(out, F.scaled_dot_product_attention(q, k, v))
    assert_close(w.sum(-1), torch.ones(*lead, 5))
    assert_close(out, w @ v)


def test_sdpa_with_masks_equals_pytorch():
    q, k, v = _qkv(2, 4, Lq=6, Lk=6)
    for mask in (causal_mask(6), padding_mask(torch.tensor([6, 3]), 6)):
        out, w = scaled_dot_product_attention(q, k, v, mask)
        assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        assert (w.masked_select(~mask.expand_as(w)) == 0).all()  # masked keys: exactly zero weight
        assert_close(w.sum(-1), torch.ones(2, 4, 6))


def test_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    m = padding_mask(torch.tensor([3, 1]), 4)
    assert m.shape == (2, 1, 1, 4) and m.dtype == torch.bool
    assert m[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False]]
    assert padding_mask([2], 3)[:, 0].shape == (1, 1, 3)  # (B, 1, L) for scores without heads


def _torch_mha(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """nn.MultiheadAttention holding the same weights (its in_proj stacks W^Q, W^K, W^V)."""
    ref = nn.MultiheadAttention(mha.dim, mha.num_heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
        ref.out_proj.weight.copy_(mha.out_proj.weight)
        ref.out_proj.bias.copy_(mha.out_proj.bias)
    return ref.eval()


def test_mha_equals_torch_multihead_attention():
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4)
    ref = _torch_mha(mha)
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    # self-attention, with every head's weights
    out, w = mha(x, return_weights=True)
    ref_out, ref_w = ref(x, x, x, average_attn_weights=False)
    assert out.shape == (2, 5, 32) and w.shape == (2, 4, 5, 5)
    assert_close(out, ref_out)
    assert_close(w, ref_w)
    # causal mask: nn.MultiheadAttention's boolean mask is True where attention is NOT allowed
    assert_close(mha(x, mask=causal_mask(5)), ref(x, x, x, attn_mask=~causal_mask(5))[0])
    # cross-attention with a padding mask over the context
    mask = padding_mask(torch.tensor([7, 4]), 7)
    out = mha(x, context=ctx, mask=mask)
    assert out.shape == (2, 5, 32)
    assert_close(out, ref(x, ctx, ctx, key_padding_mask=~mask[:, 0, 0])[0])


def test_mha_cross_attention_shapes_and_context():
    torch.manual_seed(0)
    mha = MultiHeadAttention(24, 3)
    x, ctx = torch.randn(2, 5, 24), torch.randn(2, 9, 24)
    out, w = mha(x, context=ctx, return_weights=True)
    assert out.shape == (2, 5, 24) and w.shape == (2, 3, 5, 9)
    assert not torch.allclose(out, mha(x))  # keys and values really come from the context


def test_mha_gradients_reach_every_projection():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2)
    mha(torch.randn(2, 3, 16), context=torch.randn(2, 4, 16)).square().sum().backward()
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert getattr(mha, name).weight.grad.abs().sum() > 0, name


def test_mha_rejects_indivisible_width():
    with pytest.raises(ValueError, match=r"dim \(10\) must be divisible by num_heads \(3\)"):
        MultiHeadAttention(10, 3)


def test_mha_cross_attention_to_a_context_of_another_width():
    torch.manual_seed(0)
    mha = MultiHeadAttention(dim=12, num_heads=3, context_dim=20)
    assert tuple(mha.k_proj.weight.shape) == (12, 20) and tuple(mha.v_proj.weight.shape) == (12, 20)
    assert "context_dim=20" in repr(mha)
    x, context = torch.randn(2, 5, 12), torch.randn(2, 7, 20)
    out, weights = mha(x, context=context, return_weights=True)
    q = mha.q_proj(x).view(2, 5, 3, 4).transpose(1, 2)  # (B, H, N, d_k)
    k = mha.k_proj(context).view(2, 7, 3, 4).transpose(1, 2)  # (B, H, M, d_k)
    v = mha.v_proj(context).view(2, 7, 3, 4).transpose(1, 2)
    want = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, 12)
    assert_close(out, mha.out_proj(want))
    assert weights.shape == (2, 3, 5, 7)
    with pytest.raises(RuntimeError):
        mha(x)  # self-attention needs a context as wide as x
