"""The course's ViT and Hugging Face's ``ViTForImageClassification``: one function, two sets of names.

``from_hf`` builds chapter 03's ``ViT`` from a transformers model (google/vit-base-patch16-224's own weights
too), ``to_hf`` and ``copy_to_hf`` go the other way, ``export_pretrained`` saves what ``from_pretrained``
loads. The weight map is ``_paired_layers``; the patch embedding is the one tensor whose layout differs
(a Conv2d's (D, C, P, P) against the course's Linear (D, P*P*C)).
"""
from __future__ import annotations

from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from course_utils.data.digits import IMAGE_MEAN, IMAGE_STD
from course_utils.models.vit import ViT, ViTConfig

__all__ = ["hf_config", "copy_to_hf", "from_hf", "to_hf", "export_pretrained"]


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
    """Copy every weight between the course ViT and a transformers ViT of the same shape, either way."""
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
    else:
        course.proj.weight.copy_(rearrange(conv.weight, "d c p1 p2 -> d (p1 p2 c)"))  # (D, C, P, P) -> (D, P*P*C)
    for mine, theirs in pairs:
        target, source = (theirs, mine) if to_hf else (mine, theirs)
        target.copy_(source)


def copy_to_hf(model: ViT, hf_model) -> None:
    """Copy the course ViT's weights into a ``ViTModel`` or ``ViTForImageClassification`` of the same shape.

    ``ViTModel``'s pooler is not part of ViT's equations and is left as it is.
    """
    _copy_weights(model, hf_model, to_hf=True)


def from_hf(hf_model) -> ViT:
    """The course ViT computing the same function as a ``transformers`` ``ViTForImageClassification``
    (e.g. google/vit-base-patch16-224's own weights), in eval mode, with the library's LayerNorm eps."""
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
                      image_mean=None, image_std=None) -> Path:
    """Save ``model`` in transformers' format: what ``ViTForImageClassification.from_pretrained(folder)``
    and ``AutoImageProcessor.from_pretrained(folder)`` load.

    Writes config.json (with id2label), model.safetensors, preprocessor_config.json (a ``ViTImageProcessor`` resizing to
    the model's size and normalising with ``image_mean`` / ``image_std``, default ``IMAGE_MEAN`` / ``IMAGE_STD``).
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
    return folder
