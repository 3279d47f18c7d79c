"""Checks for exercise 05, CLIP (Radford et al., "Learning Transferable Visual Models From Natural
Language Supervision", 2021).

    check_clip_loss(clip_loss)
    check_zero_shot_probs(zero_shot_probs)

The contract of the student's code:

(a) ``clip_loss(image_features, text_features, logit_scale)``: both features (B, D), not yet
    normalised. l2-normalise both, form logits = logit_scale * f gᵀ (B, B) and return the mean of
    the cross-entropy over rows (image to text) and over columns (text to image), with the
    matching pair on the diagonal: a 0-dim tensor. ``logit_scale`` is the multiplier 1/tau, a
    float or a 0-dim tensor.
(b) ``zero_shot_probs(image_features, text_features, logit_scale=100.0)``: image_features (B, D),
    text_features (K, D), neither normalised; returns (B, K) probabilities, the softmax over the K
    classes of logit_scale times the cosine similarities.

Any correct implementation passes (F.normalize or x / x.norm(), matmul or einsum, F.cross_entropy or log_softmax
and the diagonal, logits or their transpose); the mistakes recognised are the message constants below.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.grading.checks import (
    NO_GRAD,
    CheckFailed,
    call,
    close,
    first_match,
    fmt_shape,
    keep_rng,
    passed,
    randn,
    require_callable,
    require_tensor,
    unchanged,
)
from course_utils.models.clip import clip_loss as _loss
from course_utils.models.clip import zero_shot_probs as _probs

__all__ = ["check_clip_loss", "check_zero_shot_probs"]

# Shape legend: B images (and captions), K class prompts, D embedding width.

# ------------------------------------------------------------------ what the mistakes are called
NOT_SCALAR = "expected a scalar loss (a 0-dim tensor, the mean over the batch), got shape {shape}"
NOT_NORMALISED = ("the features are not l2-normalised: divide each row by its norm "
                  "(F.normalize(x, dim=-1)) before the similarities")
ONE_SIDE_NORMALISED = "only one of the two feature sets is l2-normalised: normalise both"
NORM_WRONG_DIM = ("the features are normalised over the batch (dim=0): normalise each row, each embedding, "
                  "over its D features (dim=-1)")
IMAGE_TO_TEXT_ONLY = ("only the image-to-text cross-entropy (over rows) is there: CLIP's loss is symmetric, "
                      "the mean of the row and the column cross-entropies")
TEXT_TO_IMAGE_ONLY = ("only the text-to-image cross-entropy (over columns) is there: CLIP's loss is symmetric, "
                      "the mean of the row and the column cross-entropies")
SUMMED_DIRECTIONS = "the two cross-entropies are added: take their mean, (row + column) / 2"
SUMMED_BATCH = "the cross-entropy is summed over the batch: take its mean over the B pairs"
NO_SCALE = "logit_scale is not used: multiply the cosine similarities by it"
DIVIDED_BY_SCALE = "the similarities are divided by logit_scale: it is the multiplier 1/tau, so multiply"
EXP_SCALE = ("the similarities are multiplied by exp(logit_scale): logit_scale here is already 1/tau "
             "(the model stores its log, and passes model.logit_scale.exp())")
WRONG_LOSS = ("the loss differs from CLIP's: logits = logit_scale * f gᵀ with the matching pair on the "
              "diagonal (targets 0, 1, ..., B-1), cross-entropy over rows and over columns, averaged")
FLOAT_SCALE = "your function fails when logit_scale is a tensor: accept a float or a 0-dim tensor"

PROBS_SHAPE = "expected probabilities of shape {want} (images x classes), got {got}"
PROBS_TRANSPOSED = "the probabilities are (K, B): return one row per image, (B, K)"
PROBS_WRONG_DIM = "the softmax is taken over the images: take it over the K classes (the last dimension)"
PROBS_LOGITS = "the rows do not sum to 1: return the softmax of the scaled similarities, not the logits"
PROBS_LOG = "the values are log-probabilities: return probabilities (softmax, not log_softmax)"
PROBS_DEFAULT = "logit_scale should default to 100.0, CLIP's learned 1/tau"
PROBS_WRONG = ("the probabilities differ from softmax(logit_scale * cosine similarity) over the classes: "
               "normalise both feature sets, multiply, scale, softmax")


# ---------------------------------------------------------------------- clip_loss

def _variants(f: torch.Tensor, g: torch.Tensor, s: float) -> list[tuple[torch.Tensor, str]]:
    """The classic wrong losses for features f, g (B, D) and scale s, each with its message."""
    B = len(f)
    target = torch.arange(B)

    def parts(a, b, scale):
        logits = scale * a @ b.T  # (B, B)
        return F.cross_entropy(logits, target), F.cross_entropy(logits.T, target)

    fn, gn = F.normalize(f, dim=-1), F.normalize(g, dim=-1)
    rows, cols = parts(fn, gn, s)
    return [
        (sum(parts(f, g, s)) / 2, NOT_NORMALISED),
        (sum(parts(fn, g, s)) / 2, ONE_SIDE_NORMALISED),
        (sum(parts(f, gn, s)) / 2, ONE_SIDE_NORMALISED),
        (sum(parts(F.normalize(f, dim=0), F.normalize(g, dim=0), s)) / 2, NORM_WRONG_DIM),
        (rows, IMAGE_TO_TEXT_ONLY),
        (cols, TEXT_TO_IMAGE_ONLY),
        (rows + cols, SUMMED_DIRECTIONS),
        ((rows + cols) / 2 * B, SUMMED_BATCH),
        ((rows + cols) * B, SUMMED_BATCH),
        (sum(parts(fn, gn, 1.0)) / 2, NO_SCALE),
        (sum(parts(fn, gn, 1.0 / s)) / 2, DIVIDED_BY_SCALE),
        (sum(parts(fn, gn, float(torch.tensor(s).exp().clamp(max=1e30)))) / 2, EXP_SCALE),
    ]


def _loss_call(fn, f, g, scale, where):
    given_f, given_g = f.clone().requires_grad_(True), g.clone().requires_grad_(True)
    given_scale = scale.clone() if isinstance(scale, torch.Tensor) else scale
    result = require_tensor(call(fn, given_f, given_g, given_scale, what="your clip_loss", where=where))
    if result.dim() != 0:
        raise CheckFailed(NOT_SCALAR.format(shape=fmt_shape(result)))
    unchanged({"image_features": given_f, "text_features": given_g}, {"image_features": f, "text_features": g},
              hint="compute new tensors (F.normalize, not x /= ...)")
    return result, given_f, given_g


def check_clip_loss(clip_loss) -> None:
    """Check ``clip_loss(image_features, text_features, logit_scale)`` against CLIP's symmetric loss."""
    require_callable(clip_loss, "clip_loss")
    with keep_rng():
        gen = torch.Generator().manual_seed(5)
        B, D = 6, 8
        f, g = randn(B, D, generator=gen, scale=3.0), randn(B, D, generator=gen, scale=0.5)
        g[:, 0] += 2.0  # captions share a direction, as real ones do: the normalisation matters
        scale = 7.0
        loss, gf, gg = _loss_call(clip_loss, f, g, scale, f"for features (6, 8) and logit_scale {scale}")
        passed(f"returns a scalar loss for image and text features of shape {fmt_shape(f)}")
        want = _loss(f, g, scale)
        if not close(loss, want):
            first_match(loss, _variants(f, g, scale), WRONG_LOSS)
        passed("equals the mean of the image-to-text and text-to-image cross-entropies of logit_scale · f gᵀ")
        if not loss.requires_grad:
            raise CheckFailed(NO_GRAD.format(name="the features"))
        call(loss.backward, what="backward through your loss")
        for name, t in (("image_features", gf), ("text_features", gg)):
            if t.grad is None or not torch.isfinite(t.grad).all() or t.grad.abs().sum() == 0:
                raise CheckFailed(NO_GRAD.format(name=name))
        passed("gradients flow back to both feature sets")

        tensor_scale = torch.tensor(14.3)
        try:
            loss2, _, _ = _loss_call(clip_loss, f, g, tensor_scale, "for logit_scale = torch.tensor(14.3)")
        except CheckFailed as e:
            raise CheckFailed(f"{FLOAT_SCALE} ({e})") from e
        if not close(loss2, _loss(f, g, tensor_scale)):
            raise CheckFailed(WRONG_LOSS + " (with logit_scale a 0-dim tensor)")
        passed("takes logit_scale as a float or a 0-dim tensor")

        matched = F.normalize(randn(B, D, generator=gen), dim=-1)
        low = _loss_call(clip_loss, matched * 4.0, matched * 0.25, 100.0, "for perfectly matched pairs")[0]
        if not float(low.detach()) < 0.05:
            raise CheckFailed(WRONG_LOSS + " (perfectly matched, well-separated pairs should give a loss near 0)")
        passed("is near 0 for perfectly matched pairs and does not depend on the features' lengths")


# ---------------------------------------------------------------------- zero_shot_probs

def check_zero_shot_probs(zero_shot_probs) -> None:
    """Check ``zero_shot_probs(image_features, text_features, logit_scale=100.0)``."""
    require_callable(zero_shot_probs, "zero_shot_probs")
    with keep_rng():
        gen = torch.Generator().manual_seed(6)
        B, K, D = 5, 3, 8
        f, g = randn(B, D, generator=gen, scale=2.0), randn(K, D, generator=gen, scale=0.3)
        g[1] *= 6.0  # prompts of different lengths: the normalisation matters
        scale = 4.0
        where = f"for image features {fmt_shape(f)}, text features {fmt_shape(g)}, logit_scale {scale}"
        p = require_tensor(call(zero_shot_probs, f.clone(), g.clone(), scale, what="your zero_shot_probs", where=where))
        if tuple(p.shape) == (K, B):
            raise CheckFailed(PROBS_TRANSPOSED)
        if tuple(p.shape) != (B, K):
            raise CheckFailed(PROBS_SHAPE.format(want=(B, K), got=fmt_shape(p)))
        passed(f"returns probabilities of shape {(B, K)} for {B} images and {K} class prompts")
        p = p.detach().float()
        fn, gn = F.normalize(f, dim=-1), F.normalize(g, dim=-1)
        if not close(p.sum(-1), torch.ones(B)):
            if close(p.sum(0), torch.ones(K)):
                raise CheckFailed(PROBS_WRONG_DIM)
            if close(p.exp().sum(-1), torch.ones(B)):
                raise CheckFailed(PROBS_LOG)
            raise CheckFailed(PROBS_LOGITS)
        passed("each row sums to 1 over the classes")
        want = _probs(f, g, scale)
        if not close(p, want):
            first_match(p, [((scale * f @ g.T).softmax(-1), NOT_NORMALISED),
                            ((scale * fn @ g.T).softmax(-1), ONE_SIDE_NORMALISED),
                            ((scale * f @ gn.T).softmax(-1), ONE_SIDE_NORMALISED), ((fn @ gn.T).softmax(-1), NO_SCALE),
                            ((fn @ gn.T / scale).softmax(-1), DIVIDED_BY_SCALE),
                            ((F.normalize(f, dim=0) @ F.normalize(g, dim=0).T * scale).softmax(-1), NORM_WRONG_DIM)],
                        PROBS_WRONG)
        passed("equals the softmax over the classes of logit_scale × cosine similarity")
        default = call(zero_shot_probs, f.clone(), g.clone(), what="your zero_shot_probs",
                       where="without a logit_scale")
        if not close(torch.as_tensor(default).detach().float(), _probs(f, g, 100.0)):
            raise CheckFailed(PROBS_DEFAULT)
        passed("logit_scale defaults to 100")
