"""Hugging Face image classifiers trained on the course's data: Swin, BEiT, DeiT and ConvNeXt on digits.

Chapter 04 loads four real checkpoints through ``AutoModelForImageClassification``; where the hub is
out of reach, the course hands out one of these instead, the same transformers class at a tiny size:

    Swin      "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows" (Liu et al., ICCV 2021)
    BEiT      "BEiT: BERT Pre-Training of Image Transformers" (Bao et al., ICLR 2022)
    DeiT      "Training data-efficient image transformers & distillation through attention" (Touvron et al., ICML 2021)
    ConvNeXt  "A ConvNet for the 2020s" (Liu et al., CVPR 2022)

What is here: the four tiny presets (``Family``: ``SWIN``, ``BEIT``, ``DEIT``, ``CONVNEXT``, all in
``FAMILIES``), ``build_model`` (the transformers model of a preset), ``ImagesToLogits`` (the adapter that lets
``course_utils.training.classifier.train_classifier`` train it) and ``image_processor``. Training them on
digits is ``train_family``; saving them for ``from_pretrained`` is ``course_utils.weights.standins``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from course_utils.data.digits import DIGITS_LABELS, IMAGE_MEAN, IMAGE_STD
from course_utils.models.vit import ViTConfig

__all__ = ["Family", "SWIN", "BEIT", "DEIT", "CONVNEXT", "FAMILIES", "build_model", "ImagesToLogits", "image_processor", "SmallCNN"]


# Shape legend: B batch, C channels, H height, W width, K classes.


@dataclass(frozen=True)
class Family:
    """One architecture family as transformers names it, at the tiny size the course trains on digits."""

    name: str                 # the family, as the course names it ("swin", "beit", "deit", "convnext")
    model_type: str           # transformers' model_type: picks the config class (SwinConfig, ...)
    model: str                # the transformers model class, e.g. "SwinForImageClassification"
    processor: str            # the image processor class of the real checkpoint (transformers' name)
    image_size: int           # H = W, pixels: the digits are resized to it, the processor resizes to it
    shape: dict               # the transformers config's own arguments for this size (widths, depths, heads)
    processor_size: dict = field(default_factory=dict)  # the processor's size and crop arguments, when not


# Swin: 32 px, patch 4 -> an 8 x 8 grid in 4 x 4 windows (shifted every other block); patch merging
# -> 4 x 4, one window. 32 = patch 4 x window 4 x 2 stages, so every stage tiles into whole windows.
SWIN = Family(
    name="swin", model_type="swin", model="SwinForImageClassification", processor="ViTImageProcessor", image_size=32,
    shape=dict(
        patch_size=4,          # P: 4 x 4 pixel patches, as Swin-B
        embed_dim=32,          # C of stage 1; doubles at each patch merging (32, 64)
        depths=[2, 2],         # blocks per stage (Swin-B: 2, 2, 18, 2)
        num_heads=[2, 4],      # heads per stage: 16 channels each
        window_size=4,         # M: attention within M x M windows (Swin-B: 7)
        mlp_ratio=2.0,         # MLP width / C (Swin-B: 4)
        drop_path_rate=0.0,    # no stochastic depth on so small a model
    ))


# BEiT and DeiT take the shape of chapter 03's digits ViT (ViTConfig.tiny()), so the three compare like
# for like: 16 px, a 4 x 4 grid of 4 x 4 patches, 4 layers of width 64 with 4 heads, MLP width 128.
_VIT = ViTConfig.tiny()
_VIT_SHAPE = dict(
    patch_size=_VIT.patch_size,                # P
    hidden_size=_VIT.dim,                      # D
    num_hidden_layers=_VIT.depth,              # L
    num_attention_heads=_VIT.num_heads,        # heads per layer
    intermediate_size=_VIT.mlp_dim,            # MLP width
    layer_norm_eps=1e-5,                       # PyTorch's default, as the course's LayerNorms (transformers: 1e-12)
)


# BEiT: a ViT with per-layer relative position biases, layer scale, and a mean-pooled head.
BEIT = Family(
    name="beit", model_type="beit", model="BeitForImageClassification", processor="BeitImageProcessor", image_size=_VIT.image_size,
    shape=dict(
        **_VIT_SHAPE,
        use_relative_position_bias=True,        # a learned bias per relative offset in each layer, as BEiT-B
        use_absolute_position_embeddings=False,  # ... and no absolute position embeddings, as BEiT-B
        layer_scale_init_value=0.1,             # each residual branch starts scaled by 0.1, as BEiT-B
        use_mean_pooling=True,                  # the head reads the mean of the patch tokens, as BEiT-B
        drop_path_rate=0.0,                     # no stochastic depth on so small a model
    ))


# DeiT: the published facebook/deit-base-patch16-224 is DeiT without the distillation token, that is a plain
# ViT trained data-efficiently: its config says model_type "vit" and transformers loads it as a
# ViTForImageClassification, with DeiT's own image processor (resize, then centre crop). So is the stand-in.
DEIT = Family(
    name="deit", model_type="vit", model="ViTForImageClassification", processor="DeiTImageProcessor",
    image_size=_VIT.image_size, shape=dict(**_VIT_SHAPE),
    # DeiTImageProcessor resizes, then crops the centre (DeiT-B: 256, then 224); here the crop keeps the whole digit
    processor_size=dict(size={"height": _VIT.image_size, "width": _VIT.image_size},
                        crop_size={"height": _VIT.image_size, "width": _VIT.image_size}, do_center_crop=True))


# ConvNeXt: a 4 x 4 patchify stem, then stages of depthwise 7 x 7 conv blocks with 2 x 2 downsampling between.
CONVNEXT = Family(
    name="convnext", model_type="convnext", model="ConvNextForImageClassification", processor="ConvNextImageProcessor", image_size=32,
    shape=dict(
        patch_size=4,               # the stem: a 4 x 4 stride-4 conv, 32 px -> 8 x 8
        num_stages=2,               # 8 x 8, then 4 x 4 (ConvNeXt-T: 4 stages)
        hidden_sizes=[32, 64],      # channels per stage (ConvNeXt-T: 96, 192, 384, 768)
        depths=[2, 2],              # blocks per stage (ConvNeXt-T: 3, 3, 9, 3)
        layer_scale_init_value=1e-6,  # as ConvNeXt-T: each block starts close to the identity
        drop_path_rate=0.0,         # no stochastic depth (ConvNeXt-T's default too)
    ),
    # ConvNextImageProcessor sizes by the shortest edge and crops crop_pct of it; 1.0 keeps the whole digit
    processor_size=dict(size={"shortest_edge": 32}, crop_pct=1.0, do_center_crop=False))


FAMILIES: dict[str, Family] = {f.name: f for f in (SWIN, BEIT, DEIT, CONVNEXT)}


def build_model(family: Family, id2label: dict[int, str] | None = None) -> nn.Module:
    """A freshly initialised transformers ``...ForImageClassification`` of ``family``'s tiny shape
    (RGB input, one output per label; seed torch first for a repeatable initialisation)."""
    import transformers

    id2label = {int(k): v for k, v in (id2label or DIGITS_LABELS).items()}
    config = transformers.AutoConfig.for_model(
        family.model_type, image_size=family.image_size, num_channels=3, **family.shape,
        id2label=id2label, label2id={v: k for k, v in id2label.items()})
    return getattr(transformers, family.model)(config)


class ImagesToLogits(nn.Module):
    """A transformers classifier as ``train_classifier`` and ``evaluate`` expect it: images in, logits out.

    transformers' models take ``pixel_values`` and answer an output object; the course's loop calls
    ``model(images)`` and wants the logits tensor. The wrapped model is ``.model``: its weights are
    trained in place, and it is what ``save_pretrained`` saves.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=images).logits  # (B, C, H, W) -> (B, K)


def image_processor(family: Family):
    """The image processor ``AutoImageProcessor`` loads beside the stand-in: the real checkpoint's class,
    resizing to ``family.image_size``, rescaling by 1/255 and normalising with ``IMAGE_MEAN`` /
    ``IMAGE_STD`` (no crop, or one that keeps the whole image): what ``course_utils.data.digits.normalize`` does
    to the same image in [0, 1]."""
    import transformers

    size = dict(size={"height": family.image_size, "width": family.image_size}, do_center_crop=False)
    return getattr(transformers, family.processor)(
        do_resize=True, **(size | family.processor_size), do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD))


class SmallCNN(nn.Module):
    """Chapter 03's CNN baseline: three 3x3 convolutions, two 2x2 poolings, global average pooling, a linear head
    (95 k parameters on 16 x 16 RGB digits). The lecture writes the same class out and checks it equals this one."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.GELU(),  # (B, 32, 16, 16)
            nn.Conv2d(32, 64, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),  # (B, 64, 8, 8)
            nn.Conv2d(64, 128, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),  # (B, 128, 4, 4)
        )
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # (B, 128) -> (B, K)
