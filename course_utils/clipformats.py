"""A mini-CLIP in the two libraries' own formats: ``clip.load(path)`` and transformers' ``CLIPModel``.

- openai ``clip``: ``clip.load(path)`` opens a TorchScript archive, reads its ``state_dict()`` and
  rebuilds the model from the tensors' shapes (``clip.model.build_model``); a plain state-dict file
  fails, so :func:`save_for_clip` writes a traced model.
- transformers: ``CLIPModel`` holds the same tensors under other names (q, k and v split apart,
  projections transposed); :func:`to_hf` renames them, :func:`save_for_transformers` saves the model
  with a ``CLIPProcessor`` whose tokenizer is built from the ``clip`` package's own BPE vocabulary,
  so both libraries turn a caption into the same ids.

Both load a model whose captions may be 77 tokens long (``clip.tokenize``'s default). A mini-CLIP
trained on 16 gets 61 more position embeddings, all zero: with the causal mask, the
end-of-text token (where the caption's feature is read) never sees a position after its own, so
the zeros cannot change a caption's feature.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from course_utils.miniclip import CLIP_MEAN, CLIP_STD, MiniCLIPConfig, build_clip, import_clip

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
    state["positional_embedding"] = torch.cat([state["positional_embedding"],
                                               state["positional_embedding"].new_zeros(context_length - L, state[
                                                   "positional_embedding"].shape[1])])  # (context_length, W)
    longer = build_clip(replace(config, context_length=context_length))
    longer.load_state_dict(state)
    return longer.eval()


def save_for_clip(model: nn.Module, path: str | Path) -> Path:
    """Write ``model`` as a TorchScript archive that ``clip.load(path)`` accepts; returns the path."""
    path = Path(path)
    model = with_context(model).float()
    size = model.visual.input_resolution
    example = (torch.zeros(1, 3, size, size), torch.zeros(1, CONTEXT_LENGTH, dtype=torch.long))
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing records one path through the model (fine: CLIP has no data-dependent branches), and
        # torch 2.9+ calls TorchScript deprecated; clip.load reads nothing else, so both warnings are noise here.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))
    return path


# ---------------------------------------------------------------- transformers

def hf_config(config: MiniCLIPConfig):
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


def _block(src: str, dst: str, state: dict) -> dict:
    """One openai ResidualAttentionBlock's tensors under transformers' CLIPEncoderLayer names."""
    q, k, v = state[f"{src}.attn.in_proj_weight"].chunk(3)  # (3W, W) -> three (W, W)
    qb, kb, vb = state[f"{src}.attn.in_proj_bias"].chunk(3)
    out = {f"{dst}.self_attn.q_proj.weight": q, f"{dst}.self_attn.k_proj.weight": k,
           f"{dst}.self_attn.v_proj.weight": v, f"{dst}.self_attn.q_proj.bias": qb,
           f"{dst}.self_attn.k_proj.bias": kb, f"{dst}.self_attn.v_proj.bias": vb}
    pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
             "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for a, b in pairs.items():
        out[f"{dst}.{b}.weight"] = state[f"{src}.{a}.weight"]
        out[f"{dst}.{b}.bias"] = state[f"{src}.{a}.bias"]
    return out


def hf_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A plain mini-CLIP's tensors (77 tokens) renamed for transformers' ``CLIPModel``."""
    s = with_context(model).state_dict()
    out = {
        "text_model.embeddings.token_embedding.weight": s["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": s["positional_embedding"],
        "text_model.final_layer_norm.weight": s["ln_final.weight"],
        "text_model.final_layer_norm.bias": s["ln_final.bias"],
        "text_projection.weight": s["text_projection"].T,  # (W, D) used as x @ P -> nn.Linear's (D, W)
        "vision_model.embeddings.class_embedding": s["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": s["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": s["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": s["visual.ln_pre.weight"],  # sic: transformers spells it so
        "vision_model.pre_layrnorm.bias": s["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": s["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": s["visual.ln_post.bias"],
        "visual_projection.weight": s["visual.proj"].T,
        "logit_scale": s["logit_scale"],
    }
    for i in range(model.config.transformer_layers):
        out.update(_block(f"transformer.resblocks.{i}", f"text_model.encoder.layers.{i}", s))
    for i in range(model.config.vision_layers):
        out.update(_block(f"visual.transformer.resblocks.{i}", f"vision_model.encoder.layers.{i}", s))
    return {k: v.contiguous() for k, v in out.items()}


def to_hf(model: nn.Module):
    """transformers' ``CLIPModel`` holding a plain mini-CLIP's weights (eval mode, eager attention)."""
    from transformers import CLIPModel

    hf = CLIPModel(hf_config(model.config))
    missing, unexpected = hf.load_state_dict(hf_state_dict(model), strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"weights do not line up with CLIPModel: missing {missing}, unexpected {unexpected}")
    return hf.eval()


def clip_tokenizer():
    """transformers' ``CLIPTokenizer`` built from the ``clip`` package's own BPE vocabulary and merges."""
    from transformers import CLIPTokenizer

    simple = import_clip().simple_tokenizer.SimpleTokenizer()
    merges = [pair for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda item: item[1])]  # in rank order
    return CLIPTokenizer(vocab=dict(simple.encoder), merges=merges, model_max_length=CONTEXT_LENGTH)


def clip_processor(image_size: int):
    """A ``CLIPProcessor``: openai's image pipeline (bicubic resize, centre crop, CLIP's mean and std) and tokenizer."""
    from transformers import CLIPImageProcessor, CLIPProcessor

    images = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                                image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    return CLIPProcessor(image_processor=images, tokenizer=clip_tokenizer())


def save_for_transformers(model: nn.Module, folder: str | Path, notes: dict | None = None) -> Path:
    """``save_pretrained`` a plain mini-CLIP as a ``CLIPModel`` with its ``CLIPProcessor``; returns the folder."""
    folder = Path(folder)
    to_hf(model).save_pretrained(folder)
    clip_processor(model.config.image_resolution).save_pretrained(folder)
    if notes:
        (folder / "training.json").write_text(json.dumps(notes, indent=1) + "\n")
    return folder
