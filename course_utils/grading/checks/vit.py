"""Checks for the chapter 03 exercises (the Vision Transformer): ``patchify`` and ``ViTEmbedding``; any correct
implementation passes (einops, reshape and permute, ``unfold`` or loops).

The contracts (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, equation 1):

- ``patchify(images, patch_size)``: (B, C, H, W) -> (B, N, P*P*C), N = HW/P^2; patches numbered
  row by row; each flattened in (row, column, channel) order, as einops'
  ``"b c (h p1) (w p2) -> b (h w) (p1 p2 c)"``; ValueError when P does not divide H or W.
- ``ViTEmbedding(image_size, patch_size, in_channels, dim)`` with ``proj`` = nn.Linear(P*P*C, D),
  ``cls_token`` nn.Parameter (1, 1, D), ``pos_embedding`` nn.Parameter (1, N+1, D); forward:
  (B, C, H, W) -> (B, N+1, D) = [cls_token; proj(patchify(x))] + pos_embedding.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from course_utils.grading.checks import (
    CheckFailed,
    answers_on_records,
    call,
    close,
    explain_answers,
    first_choice,
    fmt_shape,
    keep_rng,
    mean,
    passed,
    require_callable,
    require_tensor,
    unchanged,
)

__all__ = ["check_patchify", "check_vit_embedding", "check_train_vit", "check_data_to_catch_up"]

# Shape legend: B batch, C channels, H height, W width, P patch size, N = HW/P^2 patches, D width.

_ROW_MAJOR = "b c (h p1) (w p2) -> b (h w) (p1 p2 c)"  # the contract
_WRONG_ORDERS = {  # pattern -> the mistake it stands for
    "b c (h p1) (w p2) -> b (w h) (p1 p2 c)": "patches are numbered column by column (column-major); "
                                             "number them row by row: (h w), not (w h)",
    "b c (h p1) (w p2) -> b (h w) (c p1 p2)": "each patch is flattened in (c p1 p2) order (channel first); "
                                             "flatten it in (p1 p2 c) order: row, column, then channel",
    "b c (h p1) (w p2) -> b (w h) (c p1 p2)": "patches are numbered column by column and flattened channel first; "
                                             "use (h w) patch order and (p1 p2 c) within a patch",
    "b c (h p1) (w p2) -> b (h w) (p2 p1 c)": "each patch is flattened column by column (p2 p1 c); "
                                             "flatten it row by row: (p1 p2 c)",
    "b c (p1 h) (p2 w) -> b (h w) (p1 p2 c)": "the patches are strided samples of the image, not contiguous "
                                             "P x P squares: split H as (h p1), patch index first",
}


def _labelled_images(B: int, C: int, H: int, W: int) -> torch.Tensor:
    """Every pixel holds a distinct small integer (exact in float32): 1000b + 100c + 10y + x."""
    b, c, y, x = torch.meshgrid(*(torch.arange(n) for n in (B, C, H, W)), indexing="ij")
    return (1000 * b + 100 * c + 10 * y + x).float()  # (B, C, H, W)


# ---------------------------------------------------------------- patchify

@keep_rng()
def check_patchify(patchify) -> None:
    """Check ``patchify(images, patch_size)``: shapes, patch order, order within a patch, errors."""
    require_callable(patchify, "patchify")
    B, C, H, W, P = 2, 3, 4, 6, 2  # a 2 x 3 grid of patches: rows and columns are told apart
    N = (H // P) * (W // P)
    images = _labelled_images(B, C, H, W)
    original = images.clone()
    out = call(patchify, images, P, what="your patchify", where=f"for images of shape {(B, C, H, W)} and P = {P}")
    require_tensor(out, "patchify must return a torch.Tensor, got {kind}")
    unchanged({"images": images}, {"images": original}, what="your patchify")
    if out.ndim != 3:
        raise CheckFailed(f"expected a 3-d tensor (B, N, P*P*C) = {(B, N, P * P * C)}, got shape {fmt_shape(out)}")
    if out.shape[0] != B:
        raise CheckFailed(f"expected the batch dimension first, B = {B}, got shape {fmt_shape(out)}")
    if out.shape[1] != N:
        raise CheckFailed(f"wrong number of patches N: a {H} x {W} image with P = {P} has "
                          f"N = HW/P^2 = {N} patches, got {out.shape[1]} (shape {fmt_shape(out)})")
    if out.shape[2] != P * P * C:
        raise CheckFailed(f"each patch should hold P*P*C = {P * P * C} values, got {out.shape[2]} "
                          f"(shape {fmt_shape(out)})")
    passed(f"shape (B, N, P*P*C) = {(B, N, P * P * C)} for images {(B, C, H, W)}, P = {P}")
    if out.dtype != images.dtype:
        raise CheckFailed(f"patchify changed the dtype from {images.dtype} to {out.dtype}")
    expected = rearrange(images, _ROW_MAJOR, p1=P, p2=P)  # (B, N, P*P*C)
    if not torch.equal(out, expected):
        for pattern, mistake in _WRONG_ORDERS.items():
            if torch.equal(out, rearrange(images, pattern, p1=P, p2=P)):
                raise CheckFailed(mistake)
        if torch.equal(out.sort(dim=-1).values, expected.sort(dim=-1).values):
            raise CheckFailed("every patch holds the right pixels, in the wrong order: flatten each patch "
                              "in (p1 p2 c) order, row by row, channels innermost")
        if torch.equal(out.flatten(1).sort(dim=-1).values, expected.flatten(1).sort(dim=-1).values):
            raise CheckFailed("the right pixels, cut into the wrong patches or in the wrong patch order: "
                              "patch k is the P x P square in patch row k // (W/P), column k % (W/P)")
        raise CheckFailed("the values differ from the image's P x P patches, "
                          "numbered row by row and flattened in (p1 p2 c) order")
    passed("patches numbered row by row (row-major)")
    passed("each patch flattened in (row, column, channel) order")

    grey = _labelled_images(3, 1, 8, 8)  # one channel, square, one patch per quadrant
    out = call(patchify, grey, 4, what="your patchify", where="for images of shape (3, 1, 8, 8) and P = 4")
    if tuple(out.shape) != (3, 4, 16) or not torch.equal(out, rearrange(grey, _ROW_MAJOR, p1=4, p2=4)):
        raise CheckFailed(f"wrong result for one-channel images (3, 1, 8, 8) with P = 4: expected shape "
                          f"(3, 4, 16) and the quadrants in reading order, got shape {fmt_shape(out)}")
    passed("one-channel images: (3, 1, 8, 8), P = 4 -> (3, 4, 16)")

    out = call(patchify, torch.zeros(1, 3, 224, 224), 16, what="your patchify",
               where="for images of shape (1, 3, 224, 224) and P = 16")
    if tuple(out.shape) != (1, 196, 768):
        raise CheckFailed(f"a 224 x 224 RGB image with P = 16 gives (1, 196, 768), got {fmt_shape(out)}")
    passed("ViT-B/16: a 224 x 224 RGB image is N = 196 patches of 768 values")

    for shape in [(1, 3, 5, 6), (1, 3, 6, 7)]:
        try:
            patchify(torch.zeros(shape), 2)
        except ValueError:
            continue
        except NotImplementedError:
            raise CheckFailed("your patchify is not implemented yet: replace `raise NotImplementedError()` "
                              "with your code") from None
        except Exception as error:  # noqa: BLE001
            raise CheckFailed(f"for images {shape} and P = 2 patchify raised {type(error).__name__}; "
                              "raise a ValueError saying P must divide H and W") from None
        raise CheckFailed(f"no ValueError for images {shape} and P = 2: P must divide both H and W, "
                          "so raise a ValueError instead of dropping or mixing pixels")
    passed("ValueError when P does not divide H or W")


# ---------------------------------------------------------------- ViTEmbedding

def _parameter(module: nn.Module, name: str, shape: tuple, meaning: str) -> nn.Parameter:
    if not hasattr(module, name):
        raise CheckFailed(f"ViTEmbedding has no attribute `{name}` ({meaning})")
    value = getattr(module, name)
    if not isinstance(value, nn.Parameter):
        raise CheckFailed(f"`{name}` must be an nn.Parameter, so that it is learned; got {type(value).__name__}")
    if tuple(value.shape) != shape:
        hint = ""
        if name == "pos_embedding" and len(value.shape) == 3 and value.shape[1] == shape[1] - 1:
            hint = (": one position per patch but none for [CLS]; E_pos is added after the [CLS] token "
                    "is prepended, so it has N+1 rows")
        raise CheckFailed(f"`{name}` has shape {fmt_shape(value)}, expected {shape} ({meaning}){hint}")
    return value


@keep_rng()
def check_vit_embedding(ViTEmbedding) -> None:  # noqa: N803 - the class under test
    """Check ``ViTEmbedding``: parameters, z_0 = [x_cls; x_p E] + E_pos, and the Conv2d equivalence."""
    require_callable(ViTEmbedding, "ViTEmbedding", kind="class")
    S, P, C, D = 8, 4, 3, 6
    N = (S // P) ** 2
    torch.manual_seed(0)  # inside keep_rng: the notebook's random state is left alone
    emb = call(ViTEmbedding, S, P, C, D, what="your ViTEmbedding.__init__",
               where=f"for ViTEmbedding(image_size={S}, patch_size={P}, in_channels={C}, dim={D})")
    if not isinstance(emb, nn.Module):
        raise CheckFailed("ViTEmbedding must be an nn.Module (class ViTEmbedding(nn.Module))")
    if not hasattr(emb, "proj") or not isinstance(emb.proj, nn.Linear):
        raise CheckFailed(f"ViTEmbedding needs `proj`, an nn.Linear(P*P*C, dim) = nn.Linear({P * P * C}, {D}): "
                          "the patch embedding E")
    if (emb.proj.in_features, emb.proj.out_features) != (P * P * C, D):
        raise CheckFailed(f"`proj` is nn.Linear({emb.proj.in_features}, {emb.proj.out_features}), expected "
                          f"nn.Linear(P*P*C, dim) = nn.Linear({P * P * C}, {D})")
    if emb.proj.bias is None:
        raise CheckFailed("`proj` needs a bias (nn.Linear's default), as the strided Conv2d it equals has")
    cls_token = _parameter(emb, "cls_token", (1, 1, D), "the learnable [CLS] token, (1, 1, dim)")
    pos = _parameter(emb, "pos_embedding", (1, N + 1, D), "E_pos, one row per position, (1, N+1, dim)")
    names = sorted(name for name, _ in emb.named_parameters())
    expected_names = ["cls_token", "pos_embedding", "proj.bias", "proj.weight"]
    if names != expected_names:
        extra = sorted(set(names) - set(expected_names))
        raise CheckFailed(f"ViTEmbedding should learn exactly proj, cls_token and pos_embedding; "
                          f"it also has {', '.join(extra)}")
    passed(f"parameters: proj Linear({P * P * C}, {D}), cls_token {(1, 1, D)}, pos_embedding {(1, N + 1, D)}")

    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # distinct values everywhere, whatever the student's initialisation
        for p in emb.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    images = torch.randn(2, C, S, S, generator=gen)  # (B, C, H, W)
    out = call(emb, images, what="your forward", where=f"for images of shape {(2, C, S, S)}")
    require_tensor(out, "forward must return a torch.Tensor, got {kind}")
    if tuple(out.shape) == (2, N, D):
        raise CheckFailed(f"the output has N = {N} tokens, expected N+1 = {N + 1}: the [CLS] token is missing")
    if tuple(out.shape) != (2, N + 1, D):
        raise CheckFailed(f"expected output shape (B, N+1, dim) = {(2, N + 1, D)}, got {fmt_shape(out)}")
    passed(f"output shape (B, N+1, dim) = {(2, N + 1, D)}")

    with torch.no_grad():
        tokens = emb.proj(rearrange(images, _ROW_MAJOR, p1=P, p2=P))  # (B, N, D)
        cls = cls_token.expand(2, -1, -1)  # (B, 1, D)
        expected = torch.cat([cls, tokens], dim=1) + pos  # (B, N+1, D)
        if not close(out, expected):
            if close(out, torch.cat([tokens, cls], dim=1) + pos):
                raise CheckFailed("the [CLS] token is appended at the end; it goes first, at position 0")
            if close(out, torch.cat([cls, tokens], dim=1)):
                raise CheckFailed("the positional embedding is not added: z_0 = [x_cls; x_p E] + E_pos")
            if close(out, torch.cat([cls, tokens + pos[:, 1:]], dim=1)) or close(out, torch.cat([cls, tokens + pos[:, :-1]], dim=1)):
                raise CheckFailed("the positional embedding is added to the patches only, before the [CLS] "
                                  "token is prepended; add all N+1 rows after prepending it")
            if close(out, torch.cat([tokens, cls], dim=1)):
                raise CheckFailed("the [CLS] token is appended at the end and no positional embedding is added")
            for pattern, mistake in _WRONG_ORDERS.items():
                wrong = emb.proj(rearrange(images, pattern, p1=P, p2=P))  # (B, N, D)
                if close(out, torch.cat([cls, wrong], dim=1) + pos):
                    raise CheckFailed(f"the patches are cut differently from patchify's contract: {mistake}")
            raise CheckFailed("the output differs from [cls_token; proj(patchify(x))] + pos_embedding")
    passed("z_0 = [x_cls; x_p^1 E; ...; x_p^N E] + E_pos: [CLS] first, then the patches in reading order")

    one = call(emb, images[1:], what="your forward", where="for a batch of one image")
    if not close(one, out[1:]):
        raise CheckFailed("the embedding of an image depends on the other images of the batch")
    passed("each image embedded independently of the batch")

    with torch.no_grad():
        conv = nn.Conv2d(C, D, kernel_size=P, stride=P)
        conv.weight.copy_(rearrange(emb.proj.weight, "d (p1 p2 c) -> d c p1 p2", p1=P, p2=P))  # (D, C, P, P)
        conv.bias.copy_(emb.proj.bias)
        by_conv = rearrange(conv(images), "b d h w -> b (h w) d")  # (B, N, D)
    if not close(out[:, 1:] - pos[:, 1:], by_conv):
        raise CheckFailed("the patch tokens differ from a Conv2d with kernel and stride P using proj's weights")
    passed("patch tokens equal a Conv2d(kernel = stride = P) with proj's weights reshaped to (dim, C, P, P)")

    emb.zero_grad(set_to_none=True)
    emb(images).sum().backward()
    for name in ("cls_token", "pos_embedding"):
        if getattr(emb, name).grad is None:
            raise CheckFailed(f"no gradient reaches `{name}`: it must take part in the forward pass")
    passed("gradients reach cls_token and pos_embedding")

    big = call(ViTEmbedding, 224, 16, 3, 8, what="your ViTEmbedding.__init__", where="for ViTEmbedding(224, 16, 3, 8)")
    out = call(big, torch.zeros(1, 3, 224, 224), what="your forward", where="for a 224 x 224 image with P = 16")
    if tuple(out.shape) != (1, 197, 8):
        raise CheckFailed(f"a 224 x 224 image with P = 16 should give (1, 197, 8), got {fmt_shape(out)}")
    passed("ViT-B/16 geometry: 224 x 224, P = 16 -> 196 patches + [CLS] = 197 tokens")


# ---------------------------------------------------------------- train_vit

BUDGET = 90  # seconds on 2 cores: the contract's time budget, scaled to the machine the check runs on
EPOCH_SECONDS = 0.36  # one epoch of the reference loop (1,150 digits, batches of 64, AdamW) on 2 quiet cores
TARGET = 0.95  # test accuracy on the 359 digits the loop never sees


def check_train_vit(train_vit):
    """Run the student's ``train_vit(model, x_train, y_train, x_val, y_val)`` on a fresh ``ViT(ViTConfig.tiny())`` and
    the digits; check the budget, the accuracy on held-out test digits and the reported validation accuracies.
    Returns ``(model, history)``: the trained model and what ``train_vit`` returned, for plotting."""
    from course_utils.data.digits import digits_data
    from course_utils.models.vit import ViT, ViTConfig

    require_callable(train_vit, "train_vit")
    data = digits_data(16, 3)
    order = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(5))
    train, val = order[:1150], order[1150:]  # 1,150 to train on, 288 to validate on; the 359 test digits stay here
    with keep_rng():
        torch.manual_seed(0)
        model = ViT(ViTConfig.tiny())
        before = [p.detach().clone() for p in model.parameters()]
        budget = BUDGET * _reference_epoch_seconds(model, data.x_train[train], data.y_train[train]) / EPOCH_SECONDS
        gradients = _watch_gradients(model)
        seen = _watch_training_inputs(model, data.x_train[val])
        start = time.perf_counter()
        with gradients, seen:
            history = call(train_vit, model, data.x_train[train], data.y_train[train], data.x_train[val],
                           data.y_train[val], what="your train_vit")
        seconds = time.perf_counter() - start
    if all(torch.equal(a, p.detach()) for a, p in zip(before, model.parameters())):
        raise CheckFailed("the model's weights did not change: train the model you were given, in place (not a copy): "
                          "build the optimizer on model.parameters() and call optimizer.step() after loss.backward()")
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise CheckFailed("the weights hold NaN or inf: training diverged; lower the learning rate (or warm it up)")
    if seconds > 2 * budget:
        raise CheckFailed(f"train_vit took {seconds:.0f} s, more than twice the budget ({BUDGET} s on 2 cores, "
                          f"{budget:.0f} s on this machine now): fewer epochs, or larger batches")
    if gradients.accumulated > gradients.fresh:
        raise CheckFailed("the gradients accumulate from one step to the next: reset them before each backward "
                          "pass (optimizer.zero_grad()), or every step also repeats all the steps before it")
    if seen.validation:
        raise CheckFailed(f"{seen.validation} validation digits went through the model with gradients on, in training "
                          "mode: train on x_train only, and measure on x_val under model.eval() and torch.no_grad() "
                          "(a model trained on its validation digits reports a score it did not earn)")
    passed(f"trained within the budget ({BUDGET} s on 2 cores, scaled to this machine, with a 2x margin)")
    model.eval()
    with torch.no_grad():
        val_acc = (model(data.x_train[val]).argmax(-1) == data.y_train[val]).float().mean().item()
        test_acc = (model(data.x_test).argmax(-1) == data.y_test).float().mean().item()
    if not isinstance(history, (list, tuple)) or not history or not all(
            isinstance(a, float) and 0 <= a <= 1 for a in history):
        raise CheckFailed("train_vit should return the validation accuracy after each epoch: a list of floats in "
                          f"[0, 1], got {history if not isinstance(history, (list, tuple)) else history[:3]!r}")
    if len(history) == 1 and seen.samples >= 2 * len(train):
        raise CheckFailed(f"one validation accuracy for about {seen.samples // len(train)} epochs of training: append "
                          "one after every epoch, and return the whole list")
    if abs(history[-1] - val_acc) > 0.01:
        raise CheckFailed(f"your last validation accuracy ({history[-1]:.1%}) is not the trained model's on x_val, "
                          f"y_val ({val_acc:.1%}): measure it after the epoch, with model.eval() and "
                          "torch.no_grad(), on the validation digits")
    passed("one validation accuracy per epoch, the last equal to the trained model's")
    if test_acc < TARGET:
        causes = ["more epochs", "a learning-rate schedule (warm-up, then decay)",
                  "a learning rate that suits AdamW here, 1e-3 to 5e-3 (too small learns slowly; too large stalls)"]
        raise CheckFailed(f"{test_acc:.1%} on the 359 test digits, below {TARGET:.0%}: " + "; ".join(causes))
    passed(f"at least {TARGET:.0%} on the 359 test digits the loop never saw")
    return model, list(history)


class _watch_training_inputs:
    """Counts the images the model sees with gradients on in training mode (a training step's forward pass), and
    how many of them are validation images, bit for bit (an augmented copy is not recognised)."""

    def __init__(self, model: nn.Module, x_val: torch.Tensor):
        self.model, self.samples, self.validation = model, 0, 0
        self.known = {row.numpy().tobytes() for row in x_val.detach().float().flatten(1)}

    def __enter__(self):
        self.handle = self.model.register_forward_pre_hook(self._forward)
        return self

    def _forward(self, module, args):
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not (module.training and torch.is_grad_enabled()):
            return
        self.samples += len(x)
        rows = x.detach().to("cpu", torch.float32).flatten(1)
        self.validation += sum(row.numpy().tobytes() in self.known for row in rows)

    def __exit__(self, *exc):
        self.handle.remove()


def _reference_epoch_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One epoch of a plain AdamW loop on a copy of ``model``, timed on this machine now (after one warm-up batch)."""
    import copy

    twin = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(twin.parameters(), lr=1e-3)
    batches = torch.arange(len(x)).split(64)
    for k, batch in enumerate((batches[0], *batches)):
        if k == 1:
            start = time.perf_counter()
        optimizer.zero_grad()
        F.cross_entropy(twin(x[batch]), y[batch]).backward()
        optimizer.step()
    return time.perf_counter() - start


class _watch_gradients:
    """Finds gradients that accumulate across optimizer steps (a missing zero_grad), however they are reset.

    A hook on one parameter keeps each backward pass's own gradient; before each optimizer step, the
    parameter's .grad is compared with it: equal means fresh, equal to the previous step's .grad plus it
    means accumulated. Anything else (clipping, several backward passes per step) counts as neither."""

    def __init__(self, model: nn.Module):
        self.param = next(p for p in model.parameters() if p.requires_grad)
        self.fresh = self.accumulated = 0

    def __enter__(self):
        from torch.optim.optimizer import register_optimizer_step_pre_hook
        self.batches, self.previous = [], None
        self.handles = [self.param.register_hook(self._backward),
                        register_optimizer_step_pre_hook(self._before_step)]
        return self

    def _backward(self, grad):
        self.batches.append(grad.detach().clone())

    def _before_step(self, optimizer, args, kwargs):
        grad = self.param.grad
        if grad is not None and len(self.batches) == 1:
            if self.previous is not None and close(grad, self.previous + self.batches[0]) \
                    and not close(grad, self.batches[0]):
                self.accumulated += 1
            elif close(grad, self.batches[0]):
                self.fresh += 1
        self.previous = None if grad is None else grad.detach().clone()
        self.batches = []

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


# ------------------------------------------------------------------ data_to_catch_up: an experiment on data size

def _catch_up(accuracy, fractions, within, model, *, cnn_seeds=mean, model_seeds=mean, absolute=False,
              inclusive=True, **slips):
    """The contract's answer, and (through the keywords, ``slips`` those of ``first_choice``) the answers of the
    classic mistakes."""
    hits = []
    for i, (cnn, other) in enumerate(zip(accuracy["CNN"], accuracy[model])):
        gap = cnn_seeds(cnn) - model_seeds(other)
        gap = abs(gap) if absolute else gap
        if gap <= within if inclusive else gap < within:
            hits.append(i)
    return first_choice(hits, fractions, **slips)


_FRACTIONS = [0.05, 0.1, 0.25, 1.0]
_CATCH_UP_CASES = [  # (what the case is about, accuracy, within, model)
    ("the ViT catches up at 25%", {"CNN": [[0.80, 0.82, 0.78], [0.90, 0.91, 0.89], [0.95, 0.96, 0.94], [0.99] * 3],
                                   "ViT": [[0.70, 0.71, 0.69], [0.84, 0.86, 0.85], [0.94, 0.95, 0.93],
                                           [0.985, 0.98, 0.99]]}, 0.02, "ViT"),
    ("a wider margin (within=0.06)", {"CNN": [[0.80, 0.82, 0.78], [0.90, 0.91, 0.89], [0.95, 0.96, 0.94],
                                              [0.99] * 3],
                                      "ViT": [[0.70, 0.71, 0.69], [0.855, 0.835, 0.845], [0.94, 0.94, 0.93],
                                              [0.985, 0.98, 0.99]]}, 0.06, "ViT"),
    ("the ViT ahead of the CNN at 10%", {"CNN": [[0.80] * 3, [0.90] * 3, [0.95] * 3, [0.99] * 3],
                                         "ViT": [[0.70] * 3, [0.95] * 3, [0.95] * 3, [0.99] * 3]}, 0.02, "ViT"),
    ("the first seed alone misleads", {"CNN": [[0.80, 0.90, 0.90], [0.90] * 3, [0.95] * 3, [0.99] * 3],
                                       "ViT": [[0.80, 0.60, 0.60], [0.89] * 3, [0.90] * 3, [0.95] * 3]}, 0.02, "ViT"),
    ("the best seed alone misleads", {"CNN": [[0.80, 0.75, 0.80], [0.90] * 3, [0.95] * 3, [0.99] * 3],
                                      "ViT": [[0.60, 0.80, 0.60], [0.89] * 3, [0.90] * 3, [0.95] * 3]}, 0.02, "ViT"),
    ("a skewed seed", {"CNN": [[0.90] * 3, [0.95, 0.95, 0.80], [0.96] * 3, [0.99] * 3],
                       "ViT": [[0.89, 0.89, 0.80], [0.80] * 3, [0.95] * 3, [0.99] * 3]}, 0.02, "ViT"),
    ("one model averaged, the other not", {"CNN": [[0.80, 0.95, 0.95], [0.90] * 3, [0.95] * 3, [0.99] * 3],
                                           "ViT": [[0.80, 0.85, 0.75], [0.90] * 3, [0.95] * 3, [0.99] * 3]},
     0.02, "ViT"),
    ("exactly `within` below", {"CNN": [[1.0] * 3, [0.75] * 3, [0.75] * 3, [0.75] * 3],
                                "ViT": [[0.25] * 3, [0.5] * 3, [0.625] * 3, [0.75] * 3]}, 0.25, "ViT"),
    ("never within", {"CNN": [[0.80] * 3, [0.90] * 3, [0.95] * 3, [0.99] * 3],
                      "ViT": [[0.60] * 3, [0.80] * 3, [0.90] * 3, [0.95] * 3]}, 0.02, "ViT"),
    ("model='hybrid'", {"CNN": [[0.80] * 3, [0.90] * 3, [0.95] * 3, [0.99] * 3],
                        "ViT": [[0.60] * 3, [0.80] * 3, [0.90] * 3, [0.98] * 3],
                        "hybrid": [[0.81, 0.79, 0.80], [0.88] * 3, [0.95] * 3, [0.98] * 3]}, 0.02, "hybrid"),
]
_first, _best, _worst = (lambda seeds: seeds[0]), max, min
_CATCH_UP_MISTAKES = [  # (the mistake's answer on one case, the message)
    (lambda a, f, w, m: _catch_up(a, f, w, m, index=True),
     "returns the position in `fractions`, not the fraction: return fractions[i]"),
    (lambda a, f, w, m: _catch_up(a, f, w, m, absolute=True),
     "a model ahead of the CNN has caught up too: compare the CNN's mean minus the model's with `within`, not the "
     "absolute difference"),
    (lambda a, f, w, m: _catch_up(a, f, w, m, cnn_seeds=_first, model_seeds=_first),
     "uses one seed (the first): average each model's accuracy over the seeds, then compare the means"),
    (lambda a, f, w, m: _catch_up(a, f, w, m, cnn_seeds=_best, model_seeds=_best),
     "uses each model's best seed: average over the seeds, then compare the means"),
    (lambda a, f, w, m: _catch_up(a, f, w, m, cnn_seeds=_worst, model_seeds=_worst),
     "uses each model's worst seed: average over the seeds, then compare the means"),
    (lambda a, f, w, m: _catch_up(a, f, w, m, cnn_seeds=statistics.median, model_seeds=statistics.median),
     "takes the median over the seeds: the contract asks for the mean (one skewed seed moves a mean, not a median)"),
    (lambda a, f, w, m: _catch_up(a, f, w, m, cnn_seeds=_first),
     "averages the model over its seeds but takes one seed of the CNN: average both"),
    (lambda a, f, w, m: _catch_up(a, f, w, m, inclusive=False),
     "a model exactly `within` below the CNN counts as within: use <=, not <"),
    (lambda a, f, w, m: _catch_up(a, f, w, m, last_if_never=True),
     "when the model never comes within `within`, return None, not the last fraction"),
    (lambda a, f, w, m: _catch_up(a, f, w, m, largest=True),
     "returns the largest fraction at which the model is within: the smallest is the answer, the first one going up"),
    (lambda a, f, w, m: _catch_up(a, f, 0.02, m), "uses a fixed two points: use the `within` you are given"),
    (lambda a, f, w, m: _catch_up(a, f, w, "ViT"), "always compares the ViT: compare the model named by `model`"),
]


def check_data_to_catch_up(data_to_catch_up) -> None:
    """Check ``data_to_catch_up(accuracy, fractions, within=0.02, model="ViT")`` -> the smallest fraction at which
    ``model``'s mean accuracy over the seeds is at most ``within`` below the CNN's mean, or None, on ten made-up
    records (nested lists, as in the JSON record); a mistake is named only when it gives every answer the student gave."""
    require_callable(data_to_catch_up, "data_to_catch_up")
    answers = answers_on_records(data_to_catch_up, "data_to_catch_up",
                                 [(case, (accuracy, _FRACTIONS, within), {"model": model})
                                  for case, accuracy, within, model in _CATCH_UP_CASES],
                                 "the accuracy record or the fractions")
    explain_answers(answers, [_catch_up(a, _FRACTIONS, w, m) for _, a, w, m in _CATCH_UP_CASES],
                    [case for case, *_ in _CATCH_UP_CASES],
                    [([mistake(a, list(_FRACTIONS), w, m) for _, a, w, m in _CATCH_UP_CASES], message)
                     for mistake, message in _CATCH_UP_MISTAKES],
                    "the smallest fraction at which the model's mean over the seeds is at most `within` below the "
                    "CNN's mean (None if never)")
    passed(f"the smallest fraction, from the means over the seeds, on {len(_CATCH_UP_CASES)} made-up records "
           "(ahead counts, ties count, None when never)")
