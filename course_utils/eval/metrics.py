"""What the course measures: accuracy, zero-shot classification and retrieval, sample quality, prompt adherence.

Each takes a model (or a judge) and data and returns numbers; none trains anything.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import shapes as S
from course_utils.models.clip import encode, zero_shot_probs
from course_utils.models.judges import Judge
from course_utils.models.sd import SDParts, generate

__all__ = ["evaluate", "eval_sets", "zero_shot_accuracy", "caption_truth", "recall_at_k", "retrieval", "Quality", "sample_quality", "adherence", "attribute_labels", "accuracy", "pair_prompts", "prompt_adherence", "diversity"]


# ---------------------------------------------------------------- classifiers


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` (logits out) on ``images``, in eval mode."""
    was_training = model.training
    model.eval()
    correct = sum((model(images[i:i + batch_size]).argmax(-1) == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(images), batch_size))
    model.train(was_training)
    return correct / len(images)


# ---------------------------------------------------------------- CLIP: zero-shot and retrieval


def eval_sets(size: int = 500, image_size: int = 32):
    """The fixed evaluation images: seen pairs (seed 10**6, never a training seed) and held-out pairs."""
    return (S.make_shapes(size, image_size, seed=10**6, split="train"),
            S.make_shapes(size, image_size, seed=10**6, split="heldout"))


def zero_shot_accuracy(model: nn.Module, data: S.Shapes, templates=("a {colour} {shape}",)) -> float:
    """Top-1 accuracy of choosing the right one of the 25 colour-shape prompts (averaged over ``templates``)."""
    f = encode(model, images=data.images)  # (B, D)
    g = torch.stack([F.normalize(encode(model, texts=S.class_prompts(t)), dim=-1) for t in templates]).mean(0)
    probs = zero_shot_probs(f, g)  # (B, 25)
    return (probs.argmax(-1) == data.pair).float().mean().item()


def caption_truth(data: S.Shapes) -> torch.Tensor:
    """(N, N) bool: whether caption i is true of image j (same colour and shape, and the same size and
    position where caption i names them). "a red circle" is true of every red circle, large or small."""
    names_size = torch.tensor(["{size}" in S.TEMPLATES[t] for t in data.template.tolist()])  # (N,)
    names_position = torch.tensor(["{position}" in S.TEMPLATES[t] for t in data.template.tolist()])

    def same(a):
        return a[:, None] == a[None, :]  # (N, N)

    return (same(data.colour) & same(data.shape) & (same(data.size_id) | ~names_size[:, None])
            & (same(data.position) | ~names_position[:, None]))


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor, ks=(1, 5)) -> dict[int, float]:
    """Recall@k of a retrieval: the fraction of queries (rows) with a relevant item among their k best.

    ``similarity`` and ``relevant`` are (queries, items); ``relevant`` is boolean.
    """
    order = similarity.argsort(dim=-1, descending=True)  # (Q, I), best first
    hits = relevant.gather(1, order)  # (Q, I) relevance in ranked order
    return {k: hits[:, :k].any(dim=-1).float().mean().item() for k in ks}


def retrieval(model: nn.Module, data: S.Shapes, ks=(1, 5)) -> dict[str, dict[int, float]]:
    """Text-to-image and image-to-text recall@k on ``data``, each image's own caption as its text."""
    f = F.normalize(encode(model, images=data.images), dim=-1)  # (N, D)
    g = F.normalize(encode(model, texts=data.captions), dim=-1)  # (N, D)
    truth = caption_truth(data)  # (N captions, N images)
    return {"text to image": recall_at_k(g @ f.T, truth, ks), "image to text": recall_at_k(f @ g.T, truth.T, ks)}


# ---------------------------------------------------------------- diffusion: what the judges say


@dataclass(frozen=True)
class Quality:
    """What the judge says about a set of images."""

    confident: float           # fraction classified with probability > threshold: "looks like a digit"
    classes: int               # how many of the 10 digits are among the confident ones
    counts: tuple[int, ...]    # confident images per digit 0..9: the spread over classes
    mean_confidence: float     # mean of the top probability


@torch.no_grad()
def sample_quality(judge: nn.Module, images: torch.Tensor, threshold: float = 0.9) -> Quality:
    """Judge images (B, 1, H, W) in [-1, 1]: how many look like a digit, and which digits they are."""
    p = judge(images.clamp(-1, 1)).softmax(-1)  # (B, 10)
    top, label = p.max(-1)  # (B,), (B,)
    sure = top > threshold  # (B,)
    counts = torch.bincount(label[sure], minlength=10)  # (10,)
    return Quality(confident=sure.float().mean().item(), classes=int((counts > 0).sum()),
                   counts=tuple(counts.tolist()), mean_confidence=top.mean().item())


def adherence(judge: Judge, images: torch.Tensor, colours, shapes) -> dict[str, float]:
    """How often the judge finds the asked colour, the asked shape, and both, in ``images``.

    ``colours`` and ``shapes`` are (N,) indices into COLOURS and SHAPES (or one int each for all).
    """
    v = judge.read(images)
    colour_ok, shape_ok = v["colour"] == torch.as_tensor(colours), v["shape"] == torch.as_tensor(shapes)  # (N,)
    return {"colour": colour_ok.float().mean().item(), "shape": shape_ok.float().mean().item(),
            "both": (colour_ok & shape_ok).float().mean().item(), "n": len(images)}


def attribute_labels(data) -> dict[str, torch.Tensor]:
    """The true answer to each of the judge's questions for a ``Shapes`` sample, (N,) each."""
    return {"colour": data.colour, "shape": data.shape, "size": data.size_id, "position": data.position}


def accuracy(judge: Judge, images: torch.Tensor, data) -> dict[str, float]:
    """How often the judge reads each attribute of ``data`` off ``images`` (the originals or a model's copies)."""
    v = judge.read(images)
    return {k: round((v[k] == labels).float().mean().item(), 4) for k, labels in attribute_labels(data).items()}


def pair_prompts(pairs: str | list = "seen", template: str = "a {colour} {shape}", per_pair: int = 8):
    """(prompts, colour ids, shape ids) for each colour-shape pair of a split, ``per_pair`` times each."""
    if isinstance(pairs, str):
        pairs = {"seen": [p for p in S.PAIRS if p not in S.HELD_OUT], "heldout": list(S.HELD_OUT),
                 "all": list(S.PAIRS)}[pairs]
    prompts = [S.caption(c, s, template=template) for c, s in pairs for _ in range(per_pair)]
    colours = torch.tensor([S.COLOURS.index(c) for c, _ in pairs]).repeat_interleave(per_pair)
    shapes = torch.tensor([S.SHAPES.index(s) for _, s in pairs]).repeat_interleave(per_pair)
    return prompts, colours, shapes


def prompt_adherence(parts: SDParts, judge, pairs="seen", per_pair: int = 8, guidance_scale: float = 3.0,
                     steps: int = 25, seed: int = 0, progress: bool = False, template: str = "a {colour} {shape}"):
    """Generate ``per_pair`` images for each pair's prompt; the judge's verdicts, plus the images and timing."""
    prompts, colours, shapes = pair_prompts(pairs, template, per_pair)
    start = time.perf_counter()
    images = generate(parts, prompts, guidance_scale=guidance_scale, steps=steps, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    result = adherence(judge, images, colours, shapes)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()} | {
        "seconds": round(seconds, 2), "images": images, "prompts": prompts}


def diversity(judge, images: torch.Tensor, per_pair: int) -> float:
    """How varied each prompt's images are: the share of the 10 size x position combinations that the
    judge finds among a prompt's ``per_pair`` images (images grouped by prompt, in order), averaged
    over prompts. "a red circle" leaves size and position open, so a model that always draws the same
    picture scores 0.1 and one that varies them freely scores close to 1 (with 16 or more images per prompt)."""
    v = judge.read(images)
    combo = v["size"] * 5 + v["position"]  # (N,) in 0..9
    groups = combo.view(-1, per_pair)
    return sum(len(torch.unique(g)) for g in groups) / (len(groups) * min(10, per_pair))
