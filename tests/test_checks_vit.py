"""The chapter 03 checks: every correct style passes with the same text; each planted bug is named."""
import math

import pytest
import torch
import torch.nn.functional as F
from check_helpers import fails, run
from einops import rearrange
from torch import nn

from course_utils.grading.checks import CheckFailed
from course_utils.grading.checks import vit as vit_checks
from course_utils.grading.checks.vit import check_patchify, check_train_vit, check_vit_embedding

# ---------------------------------------------------------------- patchify: correct styles


def _require_divisible(images, P):
    if images.shape[-2] % P or images.shape[-1] % P:
        raise ValueError("P must divide H and W")


def patchify_einops(images, patch_size):
    _require_divisible(images, patch_size)
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


def patchify_reshape(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    _require_divisible(images, P)
    x = images.reshape(B, C, H // P, P, W // P, P)  # (B, C, h, p1, w, p2)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // P) * (W // P), P * P * C)


def patchify_unfold(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    _require_divisible(images, P)
    cols = F.unfold(images, kernel_size=P, stride=P)  # (B, C*P*P, N) in (c p1 p2) order
    return rearrange(cols, "b (c p1 p2) n -> b n (p1 p2 c)", c=C, p1=P, p2=P)


def patchify_loops(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    _require_divisible(images, P)
    patches = []
    for i in range(H // P):
        for j in range(W // P):
            square = images[:, :, i * P:(i + 1) * P, j * P:(j + 1) * P]  # (B, C, P, P)
            patches.append(square.permute(0, 2, 3, 1).reshape(B, -1))  # (B, P*P*C)
    return torch.stack(patches, dim=1)


CORRECT_PATCHIFY = [patchify_einops, patchify_reshape, patchify_unfold, patchify_loops]


@pytest.mark.parametrize("patchify", CORRECT_PATCHIFY, ids=lambda f: f.__name__)
def test_correct_patchify_passes(patchify, capsys):
    check_patchify(patchify)
    assert "✓ patches numbered row by row" in capsys.readouterr().out


def test_every_correct_patchify_prints_the_same_text(capsys):
    texts = []
    for patchify in CORRECT_PATCHIFY:
        check_patchify(patchify)
        texts.append(capsys.readouterr().out)
    assert len(set(texts)) == 1, texts
    assert "0." not in texts[0]  # no raw floats


# ---------------------------------------------------------------- patchify: planted bugs


def column_major(images, P):
    _require_divisible(images, P)
    return rearrange(images, "b c (h p1) (w p2) -> b (w h) (p1 p2 c)", p1=P, p2=P)


def channel_first(images, P):
    _require_divisible(images, P)
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=P, p2=P)


def unfold_without_reorder(images, P):  # F.unfold's natural (c p1 p2) order, left as it is
    _require_divisible(images, P)
    return F.unfold(images, kernel_size=P, stride=P).transpose(1, 2)


def forgets_channels(images, P):  # N comes out C times too large
    _require_divisible(images, P)
    return rearrange(images, "b c (h p1) (w p2) -> b (c h w) (p1 p2)", p1=P, p2=P)


def plain_reshape(images, P):  # right shape, but not P x P squares
    _require_divisible(images, P)
    B, C, H, W = images.shape
    return images.permute(0, 2, 3, 1).reshape(B, -1, P * P * C)


def crops_silently(images, P):  # no ValueError: drops the leftover rows and columns
    H, W = images.shape[-2:]
    return rearrange(images[..., :H // P * P, :W // P * P], "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=P, p2=P)


def lets_einops_complain(images, P):  # einops raises its own error, not a ValueError
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=P, p2=P)


@pytest.mark.parametrize("patchify, message", [
    (column_major, "column by column"),
    (channel_first, r"\(c p1 p2\) order"),
    (unfold_without_reorder, r"\(c p1 p2\) order"),
    (forgets_channels, "wrong number of patches N"),
    (plain_reshape, "wrong patches or in the wrong patch order"),
    (crops_silently, "no ValueError"),
    (lets_einops_complain, "raised EinopsError"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_patchify_mistakes_are_named(patchify, message):
    with pytest.raises(CheckFailed, match=message):
        check_patchify(patchify)


def test_an_unsolved_stub_says_so():
    def stub(images, patch_size):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_patchify(stub)


# ---------------------------------------------------------------- ViTEmbedding: correct styles


class EmbeddingEinops(nn.Module):
    def __init__(self, image_size, patch_size, in_channels, dim):
        super().__init__()
        self.patch_size = patch_size
        n = (image_size // patch_size) ** 2
        self.proj = nn.Linear(patch_size * patch_size * in_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)

    def forward(self, x):
        tokens = self.proj(patchify_einops(x, self.patch_size))
        cls = self.cls_token.expand(len(x), -1, -1)
        return torch.cat([cls, tokens], dim=1) + self.pos_embedding


class EmbeddingViaConvWeights(nn.Module):
    """A different route to the same function: proj's weights used as a strided convolution."""

    def __init__(self, image_size, patch_size, in_channels, dim):
        super().__init__()
        self.P, self.C = patch_size, in_channels
        n = (image_size // patch_size) ** 2
        self.proj = nn.Linear(patch_size * patch_size * in_channels, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.zeros(1, n + 1, dim))

    def forward(self, x):
        w = self.proj.weight.view(-1, self.P, self.P, self.C).permute(0, 3, 1, 2)  # (D, C, P, P)
        tokens = F.conv2d(x, w, self.proj.bias, stride=self.P).flatten(2).transpose(1, 2)  # (B, N, D)
        z = torch.cat([self.cls_token.repeat(x.shape[0], 1, 1), tokens], dim=1)
        return z + self.pos_embedding


def test_correct_embeddings_pass_with_the_same_text(capsys):
    texts = []
    for cls in (EmbeddingEinops, EmbeddingViaConvWeights):
        check_vit_embedding(cls)
        texts.append(capsys.readouterr().out)
    assert len(set(texts)) == 1, texts
    assert "✓ z_0 = [x_cls" in texts[0] and "197 tokens" in texts[0]


def test_the_course_embedding_passes(capsys):
    from course_utils.models.vit import ViTEmbedding

    check_vit_embedding(ViTEmbedding)
    assert "Conv2d" in capsys.readouterr().out


# ---------------------------------------------------------------- ViTEmbedding: planted bugs


class ClsAtTheEnd(EmbeddingEinops):
    def forward(self, x):
        tokens = self.proj(patchify_einops(x, self.patch_size))
        return torch.cat([tokens, self.cls_token.expand(len(x), -1, -1)], dim=1) + self.pos_embedding


class NoPositions(EmbeddingEinops):
    def forward(self, x):
        tokens = self.proj(patchify_einops(x, self.patch_size))
        return torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)


class PositionsBeforeCls(EmbeddingEinops):  # E_pos sized N and added to the patches only
    def __init__(self, image_size, patch_size, in_channels, dim):
        super().__init__(image_size, patch_size, in_channels, dim)
        self.pos_embedding = nn.Parameter(torch.zeros(1, (image_size // patch_size) ** 2, dim))

    def forward(self, x):
        tokens = self.proj(patchify_einops(x, self.patch_size)) + self.pos_embedding
        return torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)


class PositionsOnPatchesOnly(EmbeddingEinops):  # right shape, but [CLS] gets no position
    def forward(self, x):
        tokens = self.proj(patchify_einops(x, self.patch_size)) + self.pos_embedding[:, 1:]
        return torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)


class ColumnMajorInside(EmbeddingEinops):
    def forward(self, x):
        tokens = self.proj(column_major(x, self.patch_size))
        return torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1) + self.pos_embedding


class WrongNames(nn.Module):
    def __init__(self, image_size, patch_size, in_channels, dim):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(patch_size * patch_size * in_channels, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, (image_size // patch_size) ** 2 + 1, dim))


class ClsNotLearned(EmbeddingEinops):
    def __init__(self, image_size, patch_size, in_channels, dim):
        super().__init__(image_size, patch_size, in_channels, dim)
        del self.cls_token
        self.register_buffer("cls_token", torch.zeros(1, 1, dim))


class FlatClsShape(EmbeddingEinops):
    def __init__(self, image_size, patch_size, in_channels, dim):
        super().__init__(image_size, patch_size, in_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, dim))


class ProjWithoutChannels(EmbeddingEinops):
    def __init__(self, image_size, patch_size, in_channels, dim):
        super().__init__(image_size, patch_size, in_channels, dim)
        self.proj = nn.Linear(patch_size * patch_size, dim)


class ExtraParameter(EmbeddingEinops):
    def __init__(self, image_size, patch_size, in_channels, dim):
        super().__init__(image_size, patch_size, in_channels, dim)
        self.scale = nn.Parameter(torch.ones(1))


@pytest.mark.parametrize("cls, message", [
    (ClsAtTheEnd, "appended at the end"),
    (NoPositions, "positional embedding is not added"),
    (PositionsBeforeCls, r"none for \[CLS\]; E_pos is added after the \[CLS\] token"),
    (PositionsOnPatchesOnly, "added to the patches only"),
    (ColumnMajorInside, "column by column"),
    (WrongNames, "no attribute `cls_token`"),
    (ClsNotLearned, "must be an nn.Parameter"),
    (FlatClsShape, r"`cls_token` has shape \(1, 6\), expected \(1, 1, 6\)"),
    (ProjWithoutChannels, r"nn.Linear\(16, 6\), expected nn.Linear\(P\*P\*C, dim\) = nn.Linear\(48, 6\)"),
    (ExtraParameter, "it also has scale"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_embedding_mistakes_are_named(cls, message):
    with pytest.raises(CheckFailed, match=message):
        check_vit_embedding(cls)


# ---------------------------------------------------------------- train_vit: a loop the check runs

def make_loop(epochs=25, style="one-cycle", zero=True, step=True, report="val", lr=3e-3, fail=False, data="train",
              keep="every"):
    """A training loop in one of two correct styles; each other keyword plants one classic mistake."""

    def train_vit(model, x_train, y_train, x_val, y_val):
        if fail:
            raise KeyError("lr")
        if data == "train+val":  # trains on the validation digits too
            x_train, y_train = torch.cat([x_train, x_val]), torch.cat([y_train, y_val])
        batch_size = 64 if style == "one-cycle" else 32
        steps = epochs * math.ceil(len(x_train) / batch_size)
        if style == "one-cycle":
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
        else:  # Adam, a hand-written warm-up and cosine, gradient clipping, zero_grad(set_to_none=False)
            optimizer = torch.optim.Adam(model.parameters(), lr=lr / 2)
            warm = steps // 10
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1, (s + 1) / warm) * 0.5 * (
                1 + math.cos(math.pi * min(1.0, s / steps))))
        history = []
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(x_train))
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
                if zero:
                    if style == "one-cycle":
                        optimizer.zero_grad()
                    else:
                        model.zero_grad(set_to_none=False)
                loss.backward()
                if style != "one-cycle":
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                if step:
                    optimizer.step()
                schedule.step()
            model.eval()
            with torch.no_grad():
                x, y = (x_val, y_val) if report == "val" else (x_train, y_train)
                accuracy = (model(x).argmax(-1) == y).float().mean()
            history.append(accuracy.item() if report != "tensor" else accuracy)
        return history[-1:] if keep == "last" else history

    return train_vit


@pytest.mark.slow
def test_train_vit_correct_loop_in_another_style_passes():
    """Adam, a hand-written warm-up and cosine, clipping, batches of 32: not the solution's style (AdamW and OneCycleLR,
    which solutions/03_vit.ipynb runs through the same check), and it passes the same way."""
    out = run(lambda fn: check_train_vit(fn), make_loop(style="adam-lambda-clip"))
    assert out.count("✓") == 3, out


TRAIN_MISTAKES = {  # one epoch is enough for each to be found
    "no optimizer step": (dict(step=False), "the model's weights did not change"),
    "no zero_grad": (dict(zero=False), "the gradients accumulate from one step to the next"),
    "reports training accuracy": (dict(report="train"), "is not the trained model's on x_val"),
    "returns tensors": (dict(report="tensor"), "a list of floats"),
    "too little training": (dict(lr=1e-4), "below 95%"),
    "raises": (dict(fail=True), "your train_vit raised KeyError"),
    "trains on the validation digits too": (dict(data="train+val"), "validation digits went through the model"),
}


def test_train_vit_returning_only_the_last_accuracy_is_named():
    fails(check_train_vit, make_loop(epochs=2, keep="last"), "one validation accuracy for about 2 epochs")


@pytest.mark.parametrize("case", TRAIN_MISTAKES)
def test_train_vit_mistakes_are_named(case):
    keywords, words = TRAIN_MISTAKES[case]
    fails(check_train_vit, make_loop(epochs=1, **keywords), words)


def test_train_vit_over_budget_is_named(monkeypatch):
    monkeypatch.setattr(vit_checks, "BUDGET", 0.001)
    fails(check_train_vit, make_loop(epochs=1), "more than twice the budget (0.001 s on 2 cores")


# ------------------------------------------------------------------ data_to_catch_up (an experiment on data size)

def catch_up_numpy(accuracy, fractions, within=0.02, model="ViT"):
    import numpy as np

    gap = np.asarray(accuracy["CNN"]).mean(1) - np.asarray(accuracy[model]).mean(1)
    hits = np.flatnonzero(gap <= within)
    return float(fractions[hits[0]]) if len(hits) else None


def catch_up_loop(accuracy, fractions, within=0.02, model="ViT"):
    for fraction, cnn, other in zip(fractions, accuracy["CNN"], accuracy[model]):
        if sum(cnn) / len(cnn) - sum(other) / len(other) <= within:
            return fraction
    return None


def catch_up_torch(accuracy, fractions, within=0.02, model="ViT"):
    gap = torch.tensor(accuracy["CNN"], dtype=torch.float64).mean(1) - torch.tensor(accuracy[model],
                                                                                    dtype=torch.float64).mean(1)
    ok = (gap <= within).nonzero()
    return fractions[int(ok[0])] if len(ok) else None


@pytest.mark.parametrize("fn", [catch_up_numpy, catch_up_loop, catch_up_torch], ids=lambda f: f.__name__)
def test_correct_data_to_catch_up_passes_in_three_styles(fn):
    assert "✓ the smallest fraction" in run(vit_checks.check_data_to_catch_up, fn)


def _mean(seeds):
    return sum(seeds) / len(seeds)


def catch_up_index(accuracy, fractions, within=0.02, model="ViT"):
    return next((i for i, (c, o) in enumerate(zip(accuracy["CNN"], accuracy[model])) if _mean(c) - _mean(o) <= within),
                None)


def catch_up_abs(accuracy, fractions, within=0.02, model="ViT"):
    return next((f for f, c, o in zip(fractions, accuracy["CNN"], accuracy[model]) if abs(_mean(c) - _mean(o)) <= within),
                None)


def catch_up_first_seed(accuracy, fractions, within=0.02, model="ViT"):
    return next((f for f, c, o in zip(fractions, accuracy["CNN"], accuracy[model]) if c[0] - o[0] <= within), None)


def catch_up_best_seed(accuracy, fractions, within=0.02, model="ViT"):
    return next((f for f, c, o in zip(fractions, accuracy["CNN"], accuracy[model]) if max(c) - max(o) <= within), None)


def catch_up_strict(accuracy, fractions, within=0.02, model="ViT"):
    return next((f for f, c, o in zip(fractions, accuracy["CNN"], accuracy[model]) if _mean(c) - _mean(o) < within),
                None)


def catch_up_last_if_never(accuracy, fractions, within=0.02, model="ViT"):
    return catch_up_loop(accuracy, fractions, within, model) or fractions[-1]


def catch_up_largest(accuracy, fractions, within=0.02, model="ViT"):
    hits = [f for f, c, o in zip(fractions, accuracy["CNN"], accuracy[model]) if _mean(c) - _mean(o) <= within]
    return hits[-1] if hits else None


def catch_up_fixed_two_points(accuracy, fractions, within=0.02, model="ViT"):
    return catch_up_loop(accuracy, fractions, 0.02, model)


def catch_up_always_vit(accuracy, fractions, within=0.02, model="ViT"):
    return catch_up_loop(accuracy, fractions, within, "ViT")


def catch_up_sorts_in_place(accuracy, fractions, within=0.02, model="ViT"):
    for runs in accuracy.values():
        for seeds in runs:
            seeds.sort()
    return catch_up_loop(accuracy, fractions, within, model)


def catch_up_returns_a_bool(accuracy, fractions, within=0.02, model="ViT"):
    return catch_up_loop(accuracy, fractions, within, model) is not None


def catch_up_median(accuracy, fractions, within=0.02, model="ViT"):
    import statistics

    return next((f for f, c, o in zip(fractions, accuracy["CNN"], accuracy[model])
                 if statistics.median(c) - statistics.median(o) <= within), None)


def catch_up_worst_seed(accuracy, fractions, within=0.02, model="ViT"):
    return next((f for f, c, o in zip(fractions, accuracy["CNN"], accuracy[model]) if min(c) - min(o) <= within), None)


def catch_up_cnn_first_seed(accuracy, fractions, within=0.02, model="ViT"):
    return next((f for f, c, o in zip(fractions, accuracy["CNN"], accuracy[model]) if c[0] - _mean(o) <= within), None)


def catch_up_next_fraction(accuracy, fractions, within=0.02, model="ViT"):
    hit = catch_up_loop(accuracy, fractions, within, model)
    return None if hit is None else fractions[min(fractions.index(hit) + 1, len(fractions) - 1)]


def catch_up_returns_text(accuracy, fractions, within=0.02, model="ViT"):
    hit = catch_up_loop(accuracy, fractions, within, model)
    return None if hit is None else str(hit)


@pytest.mark.parametrize("fn, message", [
    (catch_up_index, "not the fraction"),
    (catch_up_abs, "not the absolute difference"),
    (catch_up_first_seed, "uses one seed"),
    (catch_up_best_seed, "best seed"),
    (catch_up_strict, "use <=, not <"),
    (catch_up_last_if_never, "return None, not the last fraction"),
    (catch_up_largest, "the smallest is the answer"),
    (catch_up_fixed_two_points, "uses a fixed two points"),
    (catch_up_always_vit, "always compares the ViT"),
    (catch_up_sorts_in_place, "changed its input in place"),
    (catch_up_returns_a_bool, "got bool"),
    (catch_up_median, "takes the median"),
    (catch_up_worst_seed, "worst seed"),
    (catch_up_cnn_first_seed, "one seed of the CNN"),
    (catch_up_next_fraction, "expected 0.25: the smallest fraction"),
    (catch_up_returns_text, "got str"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_data_to_catch_up_mistakes_are_named(fn, message):
    fails(vit_checks.check_data_to_catch_up, fn, message)


def test_data_to_catch_up_on_the_recorded_sweep():
    """What the exercise finds on the course's own record: the ViT needs all the data, the hybrid is level at 5%."""
    from course_utils.weights.experiments import experiment_record

    record = experiment_record("cnn-vs-vit")
    assert catch_up_loop(record["accuracy"], record["fractions"]) == 1.0
    assert catch_up_loop(record["accuracy"], record["fractions"], model="hybrid") == 0.05
