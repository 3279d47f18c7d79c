"""The encoder block (course_utils.models.transformer): both norm orders equal PyTorch's own layer."""
import pytest
import torch

from course_utils.interop.torch_nn import to_torch_layer
from course_utils.models.attention import causal_mask, padding_mask
from course_utils.models.transformer import TransformerEncoderBlock


def _block(pre_norm: bool, seed: int = 0) -> TransformerEncoderBlock:
    """A block whose every parameter is random (LayerNorm gains and biases too), so no step hides."""
    torch.manual_seed(seed)
    block = TransformerEncoderBlock(dim=32, num_heads=4, mlp_dim=48, pre_norm=pre_norm).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.3)
    return block


@pytest.mark.parametrize("pre_norm", [False, True], ids=["post-norm", "pre-norm"])
def test_block_equals_torch_transformer_encoder_layer(pre_norm):
    block = _block(pre_norm)
    layer = to_torch_layer(block)
    assert layer.norm_first is pre_norm
    x = torch.randn(3, 7, 32)
    torch.testing.assert_close(block(x), layer(x), rtol=1e-4, atol=1e-5)
    mask = causal_mask(7)  # True = may attend; PyTorch's layer takes True = masked out
    torch.testing.assert_close(block(x, mask=mask), layer(x, src_mask=~mask), rtol=1e-4, atol=1e-5)


def test_padding_mask_matches_torch_key_padding_mask():
    block = _block(pre_norm=True)
    layer = to_torch_layer(block)
    x, lengths = torch.randn(2, 6, 32), torch.tensor([6, 4])
    ours = block(x, mask=padding_mask(lengths, 6))
    theirs = layer(x, src_key_padding_mask=~padding_mask(lengths, 6)[:, 0, 0])
    torch.testing.assert_close(ours[1, :4], theirs[1, :4], rtol=1e-4, atol=1e-5)  # real tokens agree
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-4, atol=1e-5)


def test_the_two_orders_differ_with_the_same_weights():
    post, pre = _block(False), _block(True)
    pre.load_state_dict(post.state_dict())
    x = torch.randn(2, 5, 32)
    assert not torch.allclose(post(x), pre(x), atol=1e-3)
    # post-norm ends with a LayerNorm: each token has (gain-weighted) zero mean per feature vector
    y = post(x)
    w, b = post.norm2.weight, post.norm2.bias
    normalised = (y - b) / w  # undo the final affine map
    torch.testing.assert_close(normalised.mean(-1), torch.zeros(2, 5), atol=1e-4, rtol=0)


def test_block_is_permutation_equivariant_without_positions():
    block = _block(pre_norm=True)
    x = torch.randn(2, 9, 32)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(block(x[:, perm]), block(x)[:, perm], rtol=1e-4, atol=1e-5)


def test_block_shapes_and_gradients():
    block = TransformerEncoderBlock(dim=16, num_heads=2, mlp_dim=24)
    x = torch.randn(4, 3, 16, requires_grad=True)
    out = block(x)
    assert out.shape == (4, 3, 16)
    out.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoderBlock(dim=10, num_heads=3, mlp_dim=20)
