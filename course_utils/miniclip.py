"""A CLIP built small: openai's own ``clip.model.CLIP`` class at CPU scale, trained on captioned shapes.

Radford et al. 2021, *Learning Transferable Visual Models From Natural Language Supervision*
(arXiv:2103.00020). The contrastive core is section 2.3 and figure 3 of the paper: embed a batch
of N images and their N captions, l2-normalise, take the N x N matrix of cosine similarities
times a learned scale 1/tau, and ask each image to pick its own caption and each caption its own
image (two cross-entropies, averaged).

The model *is* openai's class (``clip.model.CLIP``), built with a 2-layer, 64-wide ViT and text
transformer, so that the stand-in the course saves loads through ``clip.load(path)`` and converts
to transformers' ``CLIPModel`` weight for weight (see ``course_utils.clipexport``).

Legend: B batch, K classes (prompts), D embedding width, L tokens per caption.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import shapes as S
from course_utils.remember import remembered
from course_utils.vit import ConvStem

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # openai CLIP's image normalisation (clip.clip._transform)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_LOGIT_SCALE = 100.0  # the paper clips 1/tau at 100 "to prevent training instability"


def import_clip():
    """``import clip`` without its pkg_resources deprecation warning (openai-clip 1.0.1 on setuptools < 81)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import clip
    return clip


# ---------------------------------------------------------------- the maths, as plain functions

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


# ---------------------------------------------------------------- the model

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
    def tiny(cls, stem_channels: int = 0) -> "MiniCLIPConfig":
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


# ---------------------------------------------------------------- data

def normalize(images: torch.Tensor) -> torch.Tensor:
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
        out = torch.cat([model.encode_image(normalize(images[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])
    else:
        tokens = Tokens(model.positional_embedding.shape[0])(list(texts))
        out = torch.cat([model.encode_text(tokens[i:i + batch_size]) for i in range(0, len(tokens), batch_size)])
    model.train(was_training)
    return out


def zero_shot_accuracy(model: nn.Module, data: S.Shapes, templates=("a {colour} {shape}",)) -> float:
    """Top-1 accuracy of choosing the right one of the 25 colour-shape prompts (averaged over ``templates``)."""
    f = encode(model, images=data.images)  # (B, D)
    g = torch.stack([F.normalize(encode(model, texts=S.class_prompts(t)), dim=-1) for t in templates]).mean(0)
    probs = zero_shot_probs(f, g)  # (B, 25)
    return (probs.argmax(-1) == data.pair).float().mean().item()


# ---------------------------------------------------------------- training

@dataclass(frozen=True)
class ClipTrainConfig:
    """How ``train_clip`` trains: fresh shapes every step, AdamW, warm-up then cosine decay."""

    steps: int = 600            # optimisation steps, each on a freshly drawn batch
    batch_size: int = 256       # image-caption pairs per step: B, so the logits are B x B
    lr: float = 2e-3            # peak learning rate
    weight_decay: float = 0.1   # AdamW's, on the weight matrices only (not on gains, biases, tau)
    warmup: float = 0.05        # fraction of the steps spent warming up
    eval_every: int = 100       # steps between zero-shot evaluations (0: only at the end)
    eval_size: int = 500        # images per evaluation split
    seed: int = 0               # initialisation and the data stream


@dataclass
class ClipHistory:
    """What ``train_clip`` measured: the loss and 1/tau every step; zero-shot accuracy at evaluations."""

    loss: list[float] = field(default_factory=list)
    logit_scale: list[float] = field(default_factory=list)          # 1/tau after each step
    eval_step: list[int] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)          # training time at each evaluation
    seen_accuracy: list[float] = field(default_factory=list)         # zero-shot, pairs seen in training
    heldout_accuracy: list[float] = field(default_factory=list)      # zero-shot, the 4 held-out pairs
    seconds: float = 0.0                                             # training time, evaluation excluded

    def as_dict(self) -> dict:
        return asdict(self)


def eval_sets(size: int = 500, image_size: int = 32):
    """The fixed evaluation images: seen pairs (seed 10**6, never a training seed) and held-out pairs."""
    return (S.make_shapes(size, image_size, seed=10**6, split="train"),
            S.make_shapes(size, image_size, seed=10**6, split="heldout"))


@remembered
def train_clip(model: nn.Module, config: ClipTrainConfig = ClipTrainConfig(), progress: bool = True,
               desc: str = "mini-CLIP") -> ClipHistory:
    """Train a mini-CLIP on an endless stream of captioned shapes (training pairs only); return its history."""
    from tqdm.auto import tqdm

    size = model.visual.input_resolution
    tokens = Tokens(model.positional_embedding.shape[0])
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.lr)
    warm = max(1, int(config.warmup * config.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, max(0, s - warm) / max(1, config.steps - warm)))))
    seen, heldout = eval_sets(config.eval_size, size)
    history = ClipHistory()
    # mininterval: a notebook bar redrawn every step floods the kernel's iopub channel (nbval then
    # timed out waiting for the cell's output on a loaded CI machine); once a second is plenty.
    bar = tqdm(range(config.steps), desc=desc, disable=not progress, mininterval=1.0)
    model.train()
    for step in bar:
        start = time.perf_counter()
        batch = S.make_shapes(config.batch_size, size, seed=config.seed * 1_000_003 + step, split="train")
        f = model.encode_image(normalize(batch.images))  # (B, D)
        g = model.encode_text(tokens(batch.captions))  # (B, D)
        loss = clip_loss(f, g, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # 1/tau lives on a log scale and is clipped at 100
            model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        history.seconds += time.perf_counter() - start
        history.loss.append(loss.item())
        history.logit_scale.append(model.logit_scale.exp().item())
        last = step == config.steps - 1
        if last or (config.eval_every and (step + 1) % config.eval_every == 0):
            history.eval_step.append(step + 1)
            history.eval_seconds.append(round(history.seconds, 2))
            history.seen_accuracy.append(round(zero_shot_accuracy(model, seen), 4))
            history.heldout_accuracy.append(round(zero_shot_accuracy(model, heldout), 4))
            model.train()
            bar.set_postfix(loss=f"{loss.item():.3f}", seen=f"{history.seen_accuracy[-1]:.2f}",
                            heldout=f"{history.heldout_accuracy[-1]:.2f}")
    model.eval()
    return history


# ---------------------------------------------------------------- retrieval

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
