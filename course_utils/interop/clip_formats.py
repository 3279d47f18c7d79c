"""A mini-CLIP in the two libraries' own formats: ``clip.load(path)`` and transformers' ``CLIPModel``.

- openai ``clip``: ``clip.load(path)`` opens a TorchScript archive, reads its ``state_dict()`` and rebuilds the model
  from the tensors' shapes (``clip.model.build_model``); a plain state-dict file fails, so :func:`save_for_clip` writes
  a traced model.
- transformers: ``CLIPModel`` holds the same tensors under other names (q, k and v split apart, projections transposed);
  :func:`to_transformers` renames them, :func:`save_for_transformers` saves the model with a ``CLIPProcessor`` whose
  tokenizer is built from the ``clip`` package's own BPE vocabulary, so both libraries turn a caption into the same ids.

Both load a model whose captions may be 77 tokens long (``clip.tokenize``'s default). A mini-CLIP trained on 16 gets 61
more position embeddings, all zero: with the causal mask, the end-of-text token (where the caption's feature is read)
never sees a position after its own, so the zeros cannot change a caption's feature.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from course_utils.models.clip import CLIP_MEAN, CLIP_STD, MiniCLIPConfig, build_clip, import_clip

CONTEXT_LENGTH = 77  # clip.tokenize's default, and openai CLIP's


def with_context(model: nn.Module, context_length: int = CONTEXT_LENGTH) -> nn.Module:
    """A copy of a plain mini-CLIP that reads captions of ``context_length`` tokens (zero position embeddings added)."""
    config: MiniCLIPConfig = model.config
    if config.hybrid:
        raise ValueError("openai clip and transformers' CLIPModel have no conv stem: only a plain-ViT mini-CLIP "
                         "can be saved in their formats")
    L = model.positional_embedding.shape[0]
    if context_length < L:
        raise ValueError(f"context_length {context_length} is shorter than the {L} the model was trained on")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    positions = state["positional_embedding"]  # (L, W) -> (context_length, W)
    state["positional_embedding"] = torch.cat([positions, positions.new_zeros(context_length - L, positions.shape[1])])
    longer = build_clip(replace(config, context_length=context_length))
    longer.load_state_dict(state)
    return longer.eval()


def save_for_clip(model: nn.Module, path: str | Path) -> Path:
    """Write ``model`` as a TorchScript archive that ``clip.load(path)`` accepts; returns the path."""
    return _trace(with_context(model), path)


def _trace(model: nn.Module, path: str | Path) -> Path:
    path = Path(path)
    model = model.float().eval()
    size = model.visual.input_resolution
    example = (torch.zeros(1, 3, size, size), torch.zeros(1, model.context_length, dtype=torch.long))
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing records one path through the model (fine: CLIP has no data-dependent branches), and
        # torch 2.9+ calls TorchScript deprecated; clip.load reads nothing else, so both warnings are noise here.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))
    return path


def clip_from_transformers(folder: str | Path) -> nn.Module:
    """openai's ``clip.model.CLIP`` (float32, eval mode) holding the weights of a transformers ``CLIPModel``
    saved in ``folder`` (its safetensors files: ``model.safetensors`` or the shards its index names)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    state = {k: v for name in files for k, v in load_file(str(folder / name)).items()}
    clip = import_clip()
    return clip.model.build_model(hf_to_openai(state)).float().eval()  # build_model reads the sizes off the shapes


def save_transformers_for_clip(folder: str | Path, path: str | Path) -> Path:
    """Convert a transformers ``CLIPModel`` folder into the TorchScript archive ``clip.load(path)`` reads."""
    return _trace(clip_from_transformers(folder), path)


# ---------------------------------------------------------------- transformers

def transformers_config(config: MiniCLIPConfig):
    """transformers' ``CLIPConfig`` for a plain mini-CLIP (openai's heads = width // 64, QuickGELU, 77 tokens)."""
    from transformers import CLIPConfig

    text = dict(vocab_size=config.vocab_size, hidden_size=config.transformer_width,
                intermediate_size=4 * config.transformer_width, num_hidden_layers=config.transformer_layers,
                num_attention_heads=max(1, config.transformer_width // 64), max_position_embeddings=CONTEXT_LENGTH,
                hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    vision = dict(hidden_size=config.vision_width, intermediate_size=4 * config.vision_width,
                  num_hidden_layers=config.vision_layers, num_attention_heads=max(1, config.vision_width // 64),
                  image_size=config.image_resolution, patch_size=config.vision_patch_size, hidden_act="quick_gelu")
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=config.embed_dim)


# openai's name -> transformers' name, for the tensors that are only renamed. A name ending in ".T" is
# stored transposed: openai multiplies x @ P, transformers' nn.Linear keeps P.T.
_TOP = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "text_projection": "text_projection.weight.T",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",  # sic: transformers spells it so
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "visual.proj": "visual_projection.weight.T",
    "logit_scale": "logit_scale",
}
# inside one residual block (openai ResidualAttentionBlock -> transformers CLIPEncoderLayer)
_BLOCK = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
          "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
_TOWERS = {"transformer.resblocks": "text_model.encoder.layers",
           "visual.transformer.resblocks": "vision_model.encoder.layers"}


def _pairs(layers: dict[str, int]):
    """Every (openai name, transformers name) pair of a CLIP with ``layers[tower]`` blocks per tower."""
    yield from _TOP.items()
    for src_tower, dst_tower in _TOWERS.items():
        for i in range(layers[src_tower]):
            for a, b in _BLOCK.items():
                for kind in ("weight", "bias"):
                    yield f"{src_tower}.{i}.{a}.{kind}", f"{dst_tower}.{i}.{b}.{kind}"


def _layers(names, towers) -> dict[str, int]:
    """How many blocks each tower has, counted from a state dict's names."""
    return {t: len({n.removeprefix(t + ".").split(".")[0] for n in names if n.startswith(t + ".")}) for t in towers}


def openai_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An openai ``clip.model.CLIP`` state dict under transformers' ``CLIPModel`` names
    (q, k and v split apart, the two projections transposed)."""
    layers = _layers(state, _TOWERS)
    out = {dst.removesuffix(".T"): state[src].T if dst.endswith(".T") else state[src] for src, dst in _pairs(layers)}
    for src_tower, dst_tower in _TOWERS.items():
        for i in range(layers[src_tower]):
            for kind in ("weight", "bias"):
                parts = state[f"{src_tower}.{i}.attn.in_proj_{kind}"].chunk(3)  # (3W, ...) -> three (W, ...)
                out |= {f"{dst_tower}.{i}.self_attn.{name}_proj.{kind}": part for name, part in zip("qkv", parts)}
    return {k: v.contiguous() for k, v in out.items()}


def hf_to_openai(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`openai_to_hf`: a transformers ``CLIPModel`` state dict under openai's names,
    which ``clip.model.build_model`` turns into the same network."""
    towers = {dst: src for src, dst in _TOWERS.items()}
    layers = {towers[t]: n for t, n in _layers(state, towers).items()}
    out = {src: state[dst.removesuffix(".T")].T if dst.endswith(".T") else state[dst] for src, dst in _pairs(layers)}
    for src_tower, dst_tower in _TOWERS.items():
        for i in range(layers[src_tower]):
            for kind in ("weight", "bias"):
                out[f"{src_tower}.{i}.attn.in_proj_{kind}"] = torch.cat(
                    [state[f"{dst_tower}.{i}.self_attn.{name}_proj.{kind}"] for name in "qkv"])  # (3W, ...)
    return {k: v.contiguous() for k, v in out.items()}


def transformers_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A plain mini-CLIP's tensors (77 tokens) renamed for transformers' ``CLIPModel``."""
    return openai_to_hf(with_context(model).state_dict())


def to_transformers(model: nn.Module):
    """transformers' ``CLIPModel`` holding a plain mini-CLIP's weights (eval mode, eager attention)."""
    from transformers import CLIPModel

    hf = CLIPModel(transformers_config(model.config))
    missing, unexpected = hf.load_state_dict(transformers_state_dict(model), strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"weights do not line up with CLIPModel: missing {missing}, unexpected {unexpected}")
    return hf.eval()


def text_encoder(model: nn.Module, max_length: int = 16):
    """transformers' ``CLIPTextModel`` (eval mode, frozen) holding a plain mini-CLIP's text transformer, reading
    ``max_length`` tokens: the text encoder of the course's Stable Diffusion."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = transformers_config(model.config).text_config
    config.max_position_embeddings = max_length
    # CLIPModel's "text_model.*" tensors; transformers 5's CLIPTextModel names them without the prefix
    state = {k.removeprefix("text_model."): v for k, v in transformers_state_dict(model).items() if k.startswith("text_model.")}
    state["embeddings.position_embedding.weight"] = state["embeddings.position_embedding.weight"][:max_length]
    encoder = CLIPTextModel(CLIPTextConfig(**config.to_dict()))
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"mini-CLIP text weights do not fit CLIPTextModel: {missing} {unexpected}")
    return encoder.eval().requires_grad_(False)


def clip_tokenizer():
    """transformers' ``CLIPTokenizer`` built from the ``clip`` package's own BPE vocabulary and merges."""
    from transformers import CLIPTokenizer

    simple = import_clip().simple_tokenizer.SimpleTokenizer()
    merges = [pair for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda item: item[1])]  # in rank order
    return CLIPTokenizer(vocab=dict(simple.encoder), merges=merges, model_max_length=CONTEXT_LENGTH)


def write_clip_vocabulary(folder: str | Path) -> None:
    """``vocab.json`` and ``merges.txt``, the files the hub's CLIP tokenizers are published with, written from
    the ``clip`` package's own BPE vocabulary (the same 49,408 tokens and 48,894 merges)."""
    simple = import_clip().simple_tokenizer.SimpleTokenizer()
    merges = [pair for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda item: item[1])]  # in rank order
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(dict(simple.encoder), ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))


def clip_processor(image_size: int):
    """A ``CLIPProcessor``: openai's image pipeline (bicubic resize, centre crop, CLIP's mean and std) and tokenizer."""
    from transformers import CLIPImageProcessor, CLIPProcessor

    images = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                                image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    return CLIPProcessor(image_processor=images, tokenizer=clip_tokenizer())


def save_for_transformers(model: nn.Module, folder: str | Path) -> Path:
    """``save_pretrained`` a plain mini-CLIP as a ``CLIPModel`` with its ``CLIPProcessor``; returns the folder."""
    folder = Path(folder)
    to_transformers(model).save_pretrained(folder)
    clip_processor(model.config.image_resolution).save_pretrained(folder)
    return folder
