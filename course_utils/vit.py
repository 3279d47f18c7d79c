"""The Vision Transformer, from scratch: "An Image is Worth 16x16 Words" (Dosovitskiy et al., ICLR 2021).

The paper's equations 1-4, with the names this file uses:

    z_0 = [x_cls; x_p^1 E; ...; x_p^N E] + E_pos        (1)  ViTEmbedding: patchify, proj, cls_token, pos_embedding
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                 (2)  TransformerEncoderBlock(pre_norm=True), l = 1..L
    z_l  = MLP(LN(z'_l)) + z'_l                       (3)
    y    = LN(z_L^0)                                  (4)  ViT.norm, then ViT.head (a linear classifier)

What is here, in order: the maths as plain functions (``patchify``, ``sincos_2d_embedding``,
``attention_rollout``, ``count_parameters``); the modules (``ViTEmbedding``, ``ConvStem`` for the
hybrid, ``ViTConfig``, ``ViT``); the bridge to Hugging Face ``transformers`` (``hf_config``,
``copy_to_hf``, ``to_hf``, ``from_hf``, ``export_pretrained``); a small CPU training loop (``TrainConfig``,
``train_classifier``, ``evaluate``) and the digits recipe shared by the lecture and the
``google/vit-base-patch16-224`` stand-in (``digits_data``, ``DIGITS_TRAINING``, ``train_digits_vit``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from course_utils.remember import remembered
from course_utils.transformer import TransformerEncoderBlock

__all__ = [
    "patchify", "sincos_2d_embedding", "attention_rollout", "count_parameters",
    "ViTEmbedding", "ConvStem", "ViTConfig", "ViT",
    "hf_config", "copy_to_hf", "to_hf", "from_hf", "export_pretrained",
    "TrainConfig", "History", "random_affine", "train_classifier", "evaluate",
    "IMAGE_MEAN", "IMAGE_STD", "normalize", "digits_data", "DIGITS_TRAINING", "DIGITS_LABELS", "train_digits_vit",
]

# Shape legend: B batch, C channels, H height, W width, P patch size, N = HW/P^2 patches,
# D width (hidden size), L layers, Hd heads, M MLP width, K classes.


# ---------------------------------------------------------------- the maths, as plain functions

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


# ---------------------------------------------------------------- the modules

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
    def tiny(cls) -> "ViTConfig":
        """4 layers, 64 wide, 4 heads, patch 4 on 16 x 16 RGB: 139k parameters, about 20 s of CPU on digits."""
        return cls(image_size=16, patch_size=4, in_channels=3, dim=64, depth=4, num_heads=4, mlp_dim=128,
                   num_classes=10, stem_channels=0)

    @classmethod
    def base(cls, num_classes: int = 1000) -> "ViTConfig":
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


# ---------------------------------------------------------------- Hugging Face transformers

def hf_config(config: ViTConfig, id2label: dict[int, str] | None = None):
    """The ``transformers.ViTConfig`` of the same function (plain ViT only; no stem, no dropout).

    transformers' LayerNorms default to eps = 1e-12; the course's use PyTorch's 1e-5, so it is set.
    """
    from transformers import ViTConfig as HFViTConfig

    if config.stem_channels:
        raise ValueError("transformers' ViT has no convolutional stem: only the plain ViT (stem_channels=0) converts")
    if id2label is None:
        id2label = {k: str(k) for k in range(config.num_classes)}
    if len(id2label) != config.num_classes:
        raise ValueError(f"id2label names {len(id2label)} classes, the model has {config.num_classes}")
    return HFViTConfig(
        image_size=config.image_size, patch_size=config.patch_size, num_channels=config.in_channels,
        hidden_size=config.dim, num_hidden_layers=config.depth, num_attention_heads=config.num_heads,
        intermediate_size=config.mlp_dim, hidden_act="gelu", layer_norm_eps=1e-5, qkv_bias=True,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        id2label={int(k): v for k, v in id2label.items()}, label2id={v: int(k) for k, v in id2label.items()})


def _paired_layers(model: ViT, hf_model) -> list[tuple[nn.Module, nn.Module]]:
    """(course layer, transformers layer) pairs holding the same weight and bias, in model order."""
    vit = getattr(hf_model, "vit", hf_model)  # ViTForImageClassification wraps a ViTModel
    pairs = []
    for block, layer in zip(model.blocks, vit.layers, strict=True):
        pairs += [(block.norm1, layer.layernorm_before), (block.attn.q_proj, layer.attention.q_proj),
                  (block.attn.k_proj, layer.attention.k_proj), (block.attn.v_proj, layer.attention.v_proj),
                  (block.attn.out_proj, layer.attention.o_proj), (block.norm2, layer.layernorm_after),
                  (block.mlp[0], layer.mlp.fc1), (block.mlp[2], layer.mlp.fc2)]
    pairs.append((model.norm, vit.layernorm))
    if hasattr(hf_model, "classifier"):
        pairs.append((model.head, hf_model.classifier))
    return pairs


@torch.no_grad()
def _copy_weights(model: ViT, hf_model, to_hf: bool) -> None:
    """Copy every weight between the course ViT and a transformers ViT of the same shape, either way.

    The patch embedding is the one place the layouts differ: transformers uses a Conv2d whose
    weight is (D, C, P, P); the course's Linear weight is (D, P*P*C) in (p1 p2 c) order.
    """
    c = model.config
    emb = getattr(hf_model, "vit", hf_model).embeddings
    course = model.embedding
    conv = emb.patch_embeddings.projection
    pairs = [(course.cls_token, emb.cls_token), (course.pos_embedding, emb.position_embeddings),  # (1, 1, D), (1, N+1, D)
             (course.proj.bias, conv.bias)]
    for mine, theirs in _paired_layers(model, hf_model):
        pairs += [(mine.weight, theirs.weight), (mine.bias, theirs.bias)]
    if to_hf:
        conv.weight.copy_(rearrange(course.proj.weight, "d (p1 p2 c) -> d c p1 p2", p1=c.patch_size, p2=c.patch_size))
        for mine, theirs in pairs:
            theirs.copy_(mine)
    else:
        course.proj.weight.copy_(rearrange(conv.weight, "d c p1 p2 -> d (p1 p2 c)"))  # (D, C, P, P) -> (D, P*P*C)
        for mine, theirs in pairs:
            mine.copy_(theirs)


def copy_to_hf(model: ViT, hf_model) -> None:
    """Copy the course ViT's weights into a ``ViTModel`` or ``ViTForImageClassification`` of the same shape.

    ``ViTModel``'s pooler is not part of ViT's equations and is left as it is.
    """
    _copy_weights(model, hf_model, to_hf=True)


def from_hf(hf_model) -> ViT:
    """The course ViT computing the same function as a ``transformers`` ``ViTForImageClassification``
    (e.g. google/vit-base-patch16-224's own weights), in eval mode.

    transformers' LayerNorms use eps = 1e-12 by default and the course's 1e-5: the course model
    takes the library's value, so the two agree to float32 precision.
    """
    hc = hf_model.config
    config = ViTConfig(image_size=hc.image_size, patch_size=hc.patch_size, in_channels=hc.num_channels,
                       dim=hc.hidden_size, depth=hc.num_hidden_layers, num_heads=hc.num_attention_heads,
                       mlp_dim=hc.intermediate_size, num_classes=hc.num_labels)
    model = ViT(config)
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.eps = hc.layer_norm_eps
    _copy_weights(model, hf_model, to_hf=False)
    return model.eval()


def to_hf(model: ViT, id2label: dict[int, str] | None = None):
    """A ``transformers.ViTForImageClassification`` computing the same function as ``model`` (eval mode)."""
    from transformers import ViTForImageClassification

    hf_model = ViTForImageClassification(hf_config(model.config, id2label))
    copy_to_hf(model, hf_model)
    return hf_model.eval()


def export_pretrained(model: ViT, folder: str | Path, id2label: dict[int, str] | None = None,
                      image_mean=None, image_std=None, notes: dict | None = None) -> Path:
    """Save ``model`` in transformers' format: what ``ViTForImageClassification.from_pretrained(folder)``
    and ``AutoImageProcessor.from_pretrained(folder)`` load.

    Writes config.json (with id2label), model.safetensors, preprocessor_config.json (a
    ``ViTImageProcessor`` resizing to the model's size and normalising with ``image_mean`` /
    ``image_std``, default ``IMAGE_MEAN`` / ``IMAGE_STD``) and, given ``notes``, training.json.
    """
    from transformers import ViTImageProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    to_hf(model, id2label).save_pretrained(folder)
    size = model.config.image_size
    processor = ViTImageProcessor(
        size={"height": size, "width": size}, do_resize=True, do_rescale=True, do_normalize=True,
        image_mean=list(image_mean or IMAGE_MEAN)[: model.config.in_channels],
        image_std=list(image_std or IMAGE_STD)[: model.config.in_channels])
    processor.save_pretrained(folder)
    if notes is not None:
        (folder / "training.json").write_text(json.dumps(notes, indent=2) + "\n")
    return folder


# ---------------------------------------------------------------- training on the CPU

@dataclass(frozen=True)
class TrainConfig:
    """How ``train_classifier`` trains: AdamW with a one-cycle schedule (warm-up, then cosine decay)."""

    epochs: int = 30            # passes over the training set
    batch_size: int = 64        # images per step
    lr: float = 3e-3            # peak learning rate, reached after the warm-up
    weight_decay: float = 0.05  # AdamW's decoupled weight decay
    warmup: float = 0.1         # fraction of the steps spent warming up
    augment: bool = True        # random rotation, scale and shift of each training image
    seed: int = 0               # shuffling and augmentation


@dataclass
class History:
    """What ``train_classifier`` measured, one entry per epoch (test accuracy only when asked for)."""

    loss: list[float] = field(default_factory=list)            # mean training loss
    train_accuracy: list[float] = field(default_factory=list)  # on the (augmented) training batches
    test_accuracy: list[float] = field(default_factory=list)   # on the test set, after the epoch
    seconds: float = 0.0                                        # training time, evaluation excluded

    def as_dict(self) -> dict:
        return asdict(self)


def random_affine(images: torch.Tensor, generator: torch.Generator, degrees: float = 8.0,
                  scale: float = 0.1, shift: float = 0.03) -> torch.Tensor:
    """Rotate by up to ``degrees``, scale by 1 +- ``scale`` and shift by up to ``shift`` of the width,
    independently per image; pixels from outside repeat the border. (B, C, H, W) -> (B, C, H, W)."""
    B = images.shape[0]
    u = torch.rand(B, 4, generator=generator) * 2 - 1  # (B, 4) uniform in [-1, 1]
    angle = u[:, 0] * math.radians(degrees)  # (B,)
    s = 1 + u[:, 1] * scale  # (B,)
    theta = torch.zeros(B, 2, 3)  # one 2x3 affine matrix per image, in [-1, 1] coordinates
    theta[:, 0, 0], theta[:, 0, 1] = s * angle.cos(), -s * angle.sin()
    theta[:, 1, 0], theta[:, 1, 1] = s * angle.sin(), s * angle.cos()
    theta[:, :, 2] = u[:, 2:] * shift * 2  # a shift of `shift` widths is 2*shift in [-1, 1] units
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False)  # (B, C, H, W)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` (logits out) on ``images``, in eval mode."""
    was_training = model.training
    model.eval()
    correct = sum((model(images[i:i + batch_size]).argmax(-1) == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(images), batch_size))
    model.train(was_training)
    return correct / len(images)


@remembered
def train_classifier(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor,
                     config: TrainConfig = TrainConfig(), x_test: torch.Tensor | None = None,
                     y_test: torch.Tensor | None = None, progress: bool = True, desc: str = "training") -> History:
    """Train any classifier (images in, logits out) with cross-entropy on the CPU; return its History.

    One tqdm bar over the epochs shows the loss and accuracies. Shuffling and augmentation draw
    from a generator seeded with ``config.seed``; seed torch before building the model for a
    repeatable initialisation.
    """
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=config.warmup)
    history = History()
    bar = tqdm(range(config.epochs), desc=desc, disable=not progress, leave=True)
    for _ in bar:
        start = time.perf_counter()
        model.train()
        total_loss, correct = 0.0, 0
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(x_train), config.batch_size):
            idx = order[i:i + config.batch_size]
            x, y = x_train[idx], y_train[idx]  # (b, C, H, W), (b,)
            if config.augment:
                x = random_affine(x, generator)
            logits = model(x)  # (b, K)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(-1) == y).sum().item()
        history.seconds += time.perf_counter() - start
        history.loss.append(total_loss / len(x_train))
        history.train_accuracy.append(correct / len(x_train))
        shown = {"loss": f"{history.loss[-1]:.3f}", "train": f"{history.train_accuracy[-1]:.3f}"}
        if x_test is not None:
            history.test_accuracy.append(evaluate(model, x_test, y_test))
            shown["test"] = f"{history.test_accuracy[-1]:.3f}"
        bar.set_postfix(shown)
    model.eval()
    return history


# ---------------------------------------------------------------- the digits recipe (lecture and stand-in)

IMAGE_MEAN = (0.5, 0.5, 0.5)  # pixels in [0, 1] are mapped to [-1, 1]: (x - mean) / std
IMAGE_STD = (0.5, 0.5, 0.5)
DIGITS_LABELS = {k: str(k) for k in range(10)}  # id2label of the digits classifier
DIGITS_TRAINING = TrainConfig(epochs=30, batch_size=64, lr=3e-3, weight_decay=0.05, warmup=0.1, augment=True, seed=0)


def normalize(images: torch.Tensor, mean=IMAGE_MEAN, std=IMAGE_STD) -> torch.Tensor:
    """(x - mean) / std per channel, as ``ViTImageProcessor`` does: (B, C, H, W) -> (B, C, H, W)."""
    C = images.shape[1]
    mean = torch.tensor(mean[:C], dtype=images.dtype).view(1, C, 1, 1)
    std = torch.tensor(std[:C], dtype=images.dtype).view(1, C, 1, 1)
    return (images - mean) / std


def digits_data(size: int = 16, channels: int = 3, seed: int = 0):
    """The scikit-learn digits as the ViT sees them: resized to ``size``, grey repeated over
    ``channels``, normalised to [-1, 1]. Returns the stratified 80/20 ``Split`` (1,438 / 359)."""
    from course_utils.data import Split, digits_split

    split = digits_split(size=size, test_fraction=0.2, seed=seed)
    prep = lambda x: normalize(x.expand(-1, channels, -1, -1).contiguous())  # noqa: E731  (N, channels, size, size)
    return Split(prep(split.x_train), split.y_train, prep(split.x_test), split.y_test)


def train_digits_vit(config: ViTConfig | None = None, training: TrainConfig = DIGITS_TRAINING,
                     progress: bool = True) -> tuple[ViT, History]:
    """The course's digits ViT: ``ViTConfig.tiny()`` trained with ``DIGITS_TRAINING`` (the lecture's run,
    and the stand-in for google/vit-base-patch16-224). Returns the model (eval mode) and its History."""
    config = config or ViTConfig.tiny()
    data = digits_data(config.image_size, config.in_channels)
    torch.manual_seed(training.seed)
    model = ViT(config)
    history = train_classifier(model, data.x_train, data.y_train, training, data.x_test, data.y_test,
                               progress=progress, desc="ViT on digits")
    return model, history
