"""A CLIP built small: openai's own ``clip.model.CLIP`` class at CPU scale, trained on captioned shapes.

Radford et al. 2021, *Learning Transferable Visual Models From Natural Language Supervision*
(arXiv:2103.00020). The contrastive core is section 2.3 and figure 3 of the paper: embed a batch
of N images and their N captions, l2-normalise, take the N x N matrix of cosine similarities
times a learned scale 1/tau, and ask each image to pick its own caption and each caption its own
image (two cross-entropies, averaged).

The model *is* openai's class (``clip.model.CLIP``), built with a 2-layer, 64-wide ViT and text
transformer, so that the stand-in the course saves loads through ``clip.load(path)`` and converts
to transformers' ``CLIPModel`` weight for weight (see ``course_utils.interop.clip_formats``).

Legend: B batch, K classes (prompts), D embedding width, L tokens per caption.

Training is in ``course_utils.training.clip``, zero-shot accuracy and retrieval in ``course_utils.eval.metrics``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models.vit import ConvStem

__all__ = ["CLIP_MEAN", "CLIP_STD", "MAX_LOGIT_SCALE", "import_clip", "clip_loss", "zero_shot_probs", "MiniCLIPConfig", "StemPatchEmbedding", "build_clip", "clip_normalize", "Tokens", "encode"]


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # openai CLIP's image normalisation (clip.clip._transform)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


MAX_LOGIT_SCALE = 100.0  # the paper clips 1/tau at 100 "to prevent training instability"


def import_clip():
    """``import clip`` without its pkg_resources deprecation warning (openai-clip 1.0.1 on setuptools < 81)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import clip
    return clip


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale) -> torch.Tensor:
    """CLIP's symmetric contrastive loss for B matching (image, text) pairs, a scalar.

    ``image_features`` and ``text_features`` are (B, D), not yet normalised; ``logit_scale`` is the
    multiplier 1/tau (a float or a 0-dim tensor). Row i of the logits is image i against every
    caption; its target is caption i, and column i the same the other way round.
    """
    f = F.normalize(image_features, dim=-1)  # (B, D), unit rows
    g = F.normalize(text_features, dim=-1)  # (B, D)
    logits = logit_scale * f @ g.T  # (B, B): image i against caption j
    target = torch.arange(len(f), device=f.device)  # (B,) the diagonal
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def zero_shot_probs(image_features: torch.Tensor, text_features: torch.Tensor,
                    logit_scale: float = 100.0) -> torch.Tensor:
    """(B, K) probabilities: softmax over K class prompts of the scaled cosine similarities.

    ``image_features`` (B, D) and ``text_features`` (K, D) need not be normalised.
    """
    f = F.normalize(image_features, dim=-1)  # (B, D)
    g = F.normalize(text_features, dim=-1)  # (K, D)
    return (logit_scale * f @ g.T).softmax(dim=-1)  # (B, K)


@dataclass(frozen=True)
class MiniCLIPConfig:
    """openai ``clip.model.CLIP``'s constructor arguments, small; plus an optional conv stem."""

    embed_dim: int = 64            # D, the shared embedding both towers project to
    image_resolution: int = 32     # pixels per side
    vision_layers: int = 2         # ViT blocks
    vision_width: int = 64         # ViT width; openai gives it width // 64 heads
    vision_patch_size: int = 4     # 32 px / 4 = an 8 x 8 grid of patches
    context_length: int = 16       # tokens per caption while training (captions here need 12 at most)
    vocab_size: int = 49408        # openai's BPE vocabulary: 94% of this model's parameters
    transformer_width: int = 64    # text transformer width (width // 64 heads)
    transformer_layers: int = 2    # text transformer blocks
    stem_channels: int = 0         # 0: a plain ViT; > 0: a hybrid, two 3x3 convs before the patches

    @classmethod
    def tiny(cls, stem_channels: int = 0) -> MiniCLIPConfig:
        return cls(stem_channels=stem_channels)

    @property
    def hybrid(self) -> bool:
        return self.stem_channels > 0


class StemPatchEmbedding(nn.Module):
    """A conv stem, then the patch embedding: drops in for the ViT's ``visual.conv1``.

    openai's ``VisionTransformer.forward`` starts with ``x = self.conv1(x)``; swapping that one module
    for this one makes the image tower a hybrid without touching the rest. ``weight`` is the patch
    convolution's, because ``CLIP.dtype`` reads ``visual.conv1.weight``.
    """

    def __init__(self, stem_channels: int, width: int, patch_size: int):
        super().__init__()
        self.stem = ConvStem(3, stem_channels)
        self.patch = nn.Conv2d(stem_channels, width, kernel_size=patch_size, stride=patch_size, bias=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.patch.weight

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.patch(self.stem(images))  # (B, width, grid, grid)


def build_clip(config: MiniCLIPConfig = MiniCLIPConfig()) -> nn.Module:
    """openai's ``clip.model.CLIP`` at the size ``config`` says (float32, on the CPU)."""
    clip = import_clip()
    c = config
    model = clip.model.CLIP(c.embed_dim, c.image_resolution, c.vision_layers, c.vision_width, c.vision_patch_size,
                            c.context_length, c.vocab_size, c.transformer_width, max(1, c.transformer_width // 64),
                            c.transformer_layers)
    if c.hybrid:
        model.visual.conv1 = StemPatchEmbedding(c.stem_channels, c.vision_width, c.vision_patch_size)
    model.config = config
    return model


def clip_normalize(images: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] -> openai CLIP's normalisation, what ``preprocess`` of ``clip.load`` gives."""
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (images - mean) / std


class Tokens:
    """``clip.tokenize`` with a memory: the shapes' captions repeat, so each is tokenised once."""

    def __init__(self, context_length: int):
        self.context_length = context_length
        self._ids: dict[str, torch.Tensor] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        new = [t for t in dict.fromkeys(texts) if t not in self._ids]
        if new:
            ids = import_clip().tokenize(new, context_length=self.context_length)  # raises if one is too long
            self._ids.update(zip(new, ids))
        return torch.stack([self._ids[t] for t in texts])  # (B, L)


@torch.no_grad()
def encode(model: nn.Module, images: torch.Tensor | None = None, texts: list[str] | None = None,
           batch_size: int = 500) -> torch.Tensor:
    """Image features (pixels in [0, 1]) or text features (strings) of a trained mini-CLIP, unnormalised."""
    if (images is None) == (texts is None):
        raise ValueError("encode() takes images or texts, one of the two")
    was_training = model.training
    model.eval()
    if images is not None:
        out = torch.cat([model.encode_image(clip_normalize(images[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])
    else:
        tokens = Tokens(model.positional_embedding.shape[0])(list(texts))
        out = torch.cat([model.encode_text(tokens[i:i + batch_size]) for i in range(0, len(tokens), batch_size)])
    model.train(was_training)
    return out
