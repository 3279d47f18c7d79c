"""The Vision Transformer, from scratch: "An Image is Worth 16x16 Words" (Dosovitskiy et al., ICLR 2021).

The paper's equations 1-4, with the names this file uses:

    z_0 = [x_cls; x_p^1 E; ...; x_p^N E] + E_pos        (1)  ViTEmbedding: patchify, proj, cls_token, pos_embedding
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                 (2)  TransformerEncoderBlock(pre_norm=True), l = 1..L
    z_l  = MLP(LN(z'_l)) + z'_l                       (3)
    y    = LN(z_L^0)                                  (4)  ViT.norm, then ViT.head (a linear classifier)

What is here: the maths as plain functions (``patchify``, ``sincos_2d_embedding``, ``attention_rollout``,
``count_parameters``) and the modules (``ViTEmbedding``, ``ConvStem`` for the hybrid, ``ViTConfig``, ``ViT``).
Training is in ``course_utils.training.classifier``; the bridge to Hugging Face in ``course_utils.interop.hf_vit``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from course_utils.models.transformer import TransformerEncoderBlock

__all__ = ["patchify", "sincos_2d_embedding", "attention_rollout", "count_parameters", "ViTEmbedding", "ConvStem", "ViTConfig", "ViT"]


# Shape legend: B batch, C channels, H height, W width, P patch size, N = HW/P^2 patches,
# D width (hidden size), L layers, Hd heads, M MLP width, K classes.


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping P x P patches and flatten each: (B, C, H, W) -> (B, N, P*P*C).

    Patches are numbered row by row (row-major, as one reads), N = H*W / P^2. Each patch is
    flattened in (row, column, channel) order: element ``(i, j, c)`` of a patch lands at
    ``(i * P + j) * C + c``. Raises ValueError when P does not divide H and W.
    """
    B, C, H, W = images.shape
    P = int(patch_size)
    if H % P or W % P:
        raise ValueError(f"patch size {P} must divide the image height and width, got {H} x {W}")
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=P, p2=P)  # (B, N, P*P*C)


def sincos_2d_embedding(grid_h: int, grid_w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2D sine-cosine position embeddings for a grid_h x grid_w patch grid: (N, D), row-major.

    A quarter of the D channels encodes the row y, a quarter its cosine twin, the same for the
    column x, at frequencies omega_k = 1 / temperature^(k / (D/4)) ("Attention Is All You Need"'s
    sinusoids, applied per axis; the form MAE and "Better plain ViT baselines" use). D must be a
    multiple of 4. Nothing is learned: the grid's geometry is built in.
    """
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4 for 2D sin-cos embeddings, got {dim}")
    y, x = torch.meshgrid(torch.arange(grid_h, dtype=torch.float32),
                          torch.arange(grid_w, dtype=torch.float32), indexing="ij")  # (gh, gw) each
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))  # (D/4,)
    y = y.flatten()[:, None] * omega[None, :]  # (N, D/4)
    x = x.flatten()[:, None] * omega[None, :]  # (N, D/4)
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=1)  # (N, D)


def attention_rollout(attentions: list[torch.Tensor], residual: float = 0.5) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020).

    ``attentions``: one (B, Hd, T, T) tensor per layer, first layer first (T = N + 1 tokens).
    Each layer's heads are averaged, the residual connection is added as ``residual * I`` and the
    rows renormalised: A_hat = (1 - r) A + r I. The rollout is the product A_hat_L ... A_hat_1:
    how much each input token flows into each output token through all layers. Returns (B, T, T);
    row 0, columns 1: is the [CLS] token's map over the N patches.
    """
    rollout = None
    for A in attentions:
        A = A.mean(dim=1)  # (B, T, T): heads fused by their mean
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)  # (T, T)
        A_hat = (1 - residual) * A + residual * eye  # (B, T, T)
        A_hat = A_hat / A_hat.sum(dim=-1, keepdim=True)  # rows sum to 1 again
        rollout = A_hat if rollout is None else A_hat @ rollout  # (B, T, T): later layers on the left
    if rollout is None:
        raise ValueError("attention_rollout needs at least one layer's attention")
    return rollout


def count_parameters(image_size: int, patch_size: int, in_channels: int, dim: int, depth: int,
                     mlp_dim: int, num_classes: int) -> int:
    """The number of parameters of a ViT (and of transformers' ViTForImageClassification), by formula.

    Every Linear and LayerNorm has a bias; the attention projections W^Q, W^K, W^V, W^O are D x D.
    """
    N = (image_size // patch_size) ** 2
    embedding = (patch_size * patch_size * in_channels) * dim + dim  # E and its bias
    embedding += dim + (N + 1) * dim  # x_cls and E_pos
    attention = 4 * (dim * dim + dim)  # W^Q, W^K, W^V, W^O
    mlp = (dim * mlp_dim + mlp_dim) + (mlp_dim * dim + dim)  # two Linear layers
    norms = 2 * (2 * dim)  # two LayerNorms (gain and bias) per block
    block = attention + mlp + norms
    head = 2 * dim + (dim * num_classes + num_classes)  # final LayerNorm, then the classifier
    return embedding + depth * block + head


class ViTEmbedding(nn.Module):
    """Equation 1: z_0 = [x_cls; x_p^1 E; ...; x_p^N E] + E_pos, shape (B, N+1, D).

    ``proj`` is E (a Linear on flattened patches, the same function as a Conv2d with kernel and
    stride P), ``cls_token`` the learnable x_cls (1, 1, D), ``pos_embedding`` the learned E_pos
    (1, N+1, D): one vector per position, the [CLS] position first.
    """

    def __init__(self, image_size: int, patch_size: int, in_channels: int, dim: int):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch size {patch_size} must divide the image size {image_size}")
        self.patch_size = patch_size
        self.num_patches = (image_size // patch_size) ** 2  # N
        self.proj = nn.Linear(patch_size * patch_size * in_channels, dim)  # E: (P*P*C) -> D
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))  # x_cls
        self.pos_embedding = nn.Parameter(torch.zeros(1, self.num_patches + 1, dim))  # E_pos
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embedding, std=0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.proj(patchify(images, self.patch_size))  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        return torch.cat([cls, x], dim=1) + self.pos_embedding  # (B, N+1, D)


class ConvStem(nn.Module):
    """The hybrid's stem: two 3x3 convolutions (same size, GELU) before patchify, (B, C, H, W) -> (B, C', H, W).

    The ViT paper's hybrid feeds a ResNet's feature map to the patch embedding; this is its
    smallest version: a little locality and translation equivariance, the CNN's inductive bias.
    """

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(images))  # (B, C', H, W)
        return F.gelu(self.conv2(x))  # (B, C', H, W)


@dataclass(frozen=True)
class ViTConfig:
    """A ViT's shape. ``ViTConfig.tiny()`` trains on a laptop CPU; ``ViTConfig.base()`` is ViT-B/16."""

    image_size: int = 16      # H = W, pixels
    patch_size: int = 4       # P: patches are P x P pixels, N = (image_size / P)^2 of them
    in_channels: int = 3      # C: 3 for RGB (grey digits are repeated over 3 channels)
    dim: int = 64             # D: the width of every token
    depth: int = 4            # L: encoder blocks
    num_heads: int = 4        # heads per attention layer; D must be a multiple of it
    mlp_dim: int = 128        # M: hidden width of each block's MLP (4D in the paper, 2D here)
    num_classes: int = 10     # K: outputs of the classification head
    stem_channels: int = 0    # 0: the plain ViT; > 0: a ConvStem of that width first (the hybrid)

    @classmethod
    def tiny(cls) -> ViTConfig:
        """4 layers, 64 wide, 4 heads, patch 4 on 16 x 16 RGB: 139k parameters, about 20 s of CPU on digits."""
        return cls(image_size=16, patch_size=4, in_channels=3, dim=64, depth=4, num_heads=4, mlp_dim=128,
                   num_classes=10, stem_channels=0)

    @classmethod
    def base(cls, num_classes: int = 1000) -> ViTConfig:
        """ViT-B/16 at 224 px, the shape of google/vit-base-patch16-224 (about 86 M parameters)."""
        return cls(image_size=224, patch_size=16, in_channels=3, dim=768, depth=12, num_heads=12,
                   mlp_dim=3072, num_classes=num_classes)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class ViT(nn.Module):
    """The Vision Transformer: embedding (eq. 1), L pre-norm blocks (eqs. 2-3), LayerNorm (eq. 4), head."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        c = config
        self.stem = ConvStem(c.in_channels, c.stem_channels) if c.stem_channels else nn.Identity()
        embed_channels = c.stem_channels or c.in_channels
        self.embedding = ViTEmbedding(c.image_size, c.patch_size, embed_channels, c.dim)
        self.blocks = nn.ModuleList(
            [TransformerEncoderBlock(c.dim, c.num_heads, c.mlp_dim, pre_norm=True) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Every token's final representation LN(z_L): (B, C, H, W) -> (B, N+1, D)."""
        z = self.embedding(self.stem(images))  # z_0: (B, N+1, D)
        for block in self.blocks:
            z = block(z)  # z_l: (B, N+1, D)
        return self.norm(z)  # (B, N+1, D)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits from the [CLS] token: (B, C, H, W) -> (B, K)."""
        return self.head(self.encode(images)[:, 0])  # y = head(LN(z_L^0)): (B, K)

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Each block's attention weights, first block first: a list of L tensors (B, Hd, N+1, N+1)."""
        z = self.embedding(self.stem(images))  # (B, N+1, D)
        maps = []
        for block in self.blocks:
            _, weights = block.attn(block.norm1(z), return_weights=True)  # (B, Hd, N+1, N+1)
            maps.append(weights)
            z = block(z)  # (B, N+1, D)
        return maps
