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

import math

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

__all__ = ["check_clip_loss", "check_zero_shot_probs", "check_clip_train_step", "check_clip_training", "check_best_scale"]

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


# ------------------------------------------------------------------ clip_train_step, and a run with it

LOG_MAX_SCALE = math.log(100.0)  # the clamp: 1/tau at most 100, so logit_scale = log(1/tau) at most ln 100
RUN = {"steps": 800, "batch_size": 128, "lr": 2e-3, "weight_decay": 0.1, "warmup": 80, "image_size": 16}
SLOWER = 5  # the run fails when a step takes this many times as long as the reference step, timed on the same machine
RUN_TARGET = 0.9  # zero-shot accuracy on 500 images of seen colour-shape pairs


def _small_clip(seed: int = 0):
    from course_utils.models.clip import MiniCLIPConfig, build_clip
    torch.manual_seed(seed)
    return build_clip(MiniCLIPConfig(image_resolution=RUN["image_size"]))  # 16 px, 4 px patches: 16 tokens


def _batch(n: int, seed: int, tokens):
    from course_utils.data.shapes import make_shapes
    from course_utils.models.clip import clip_normalize
    batch = make_shapes(n, RUN["image_size"], seed=seed, split="train")
    return clip_normalize(batch.images), tokens(batch.captions)  # (n, 3, 16, 16), (n, 16)


def _reference_step(model, optimizer, images, tokens) -> float:
    optimizer.zero_grad()
    loss = _loss(model.encode_image(images), model.encode_text(tokens), model.logit_scale.exp())
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        model.logit_scale.clamp_(max=LOG_MAX_SCALE)
    return loss.item()


@keep_rng()
def check_clip_train_step(clip_train_step) -> None:
    """Two steps of the student's ``clip_train_step(model, optimizer, images, tokens)`` against the reference's, on
    copies of one mini-CLIP whose 1/tau starts above 100 (so the clamp shows): loss, 1/tau and every weight."""
    import copy

    from course_utils.models.clip import Tokens
    require_callable(clip_train_step, "clip_train_step")
    tokens = Tokens(16)
    model = _small_clip()
    with torch.no_grad():
        model.logit_scale.fill_(LOG_MAX_SCALE + 0.3)  # 1/tau = 135: above the clamp
    theirs, ours = model, copy.deepcopy(model)
    opt_theirs, opt_ours = (torch.optim.SGD(m.parameters(), lr=0.01) for m in (theirs, ours))  # linear in the gradient
    for step in range(2):
        images, ids = _batch(16, 7 + step, tokens)
        with torch.no_grad():  # the loss under two classic mistakes, from the weights before the step
            f, g = ours.encode_image(images), ours.encode_text(ids)
            mistakes = {"the loss is scaled by model.logit_scale itself: it stores log(1/tau), so the logits are "
                        "multiplied by model.logit_scale.exp()": _loss(f, g, ours.logit_scale).item(),
                        "the loss uses 1/tau after the clamp: compute the loss first, clamp after "
                        "optimizer.step()": _loss(f, g, 100.0).item()}
        try:
            loss = call(clip_train_step, theirs, opt_theirs, images, ids, what="your clip_train_step",
                        where=f"at step {step + 1}")
        except CheckFailed as error:
            if "leaf Variable" not in str(error):
                raise
            raise CheckFailed(f"{error}: change logit_scale outside autograd, under torch.no_grad() (or on "
                              ".data)") from error
        expected = _reference_step(ours, opt_ours, images, ids)
        if step == 0:
            _compare_first_step(loss, expected, mistakes, theirs, ours)
    for (name, p), q in zip(theirs.named_parameters(), ours.parameters()):
        if not close(p, q, rtol=1e-3, atol=1e-5):
            raise CheckFailed(f"the second step differs from the reference's (first at {name}) although the first "
                              "agreed: the gradients accumulate across steps; reset them (optimizer.zero_grad()) "
                              "before each backward pass")
    passed("a second step on a new batch: the same weights (the gradients do not accumulate)")


def _compare_first_step(loss, expected, mistakes, theirs, ours) -> None:
    if isinstance(loss, torch.Tensor):
        raise CheckFailed("return the loss as a Python float, loss.item(), not a tensor (a tensor keeps the whole "
                          "graph of the step alive)")
    if not isinstance(loss, float):
        raise CheckFailed(f"expected the loss as a Python float, got {type(loss).__name__}")
    if not math.isclose(loss, expected, rel_tol=1e-4, abs_tol=1e-5):
        for mistake, value in mistakes.items():
            if math.isclose(loss, value, rel_tol=1e-4, abs_tol=1e-5):
                raise CheckFailed(mistake)
        raise CheckFailed("the returned loss differs from clip_loss(model.encode_image(images), "
                          "model.encode_text(tokens), model.logit_scale.exp()), computed before the step")
    passed("the loss before the step: clip_loss of both encoders at 1/tau = exp(logit_scale)")
    scale = theirs.logit_scale.detach().item()
    if scale > LOG_MAX_SCALE + 1e-4:
        raise CheckFailed(f"after the step 1/tau = {math.exp(scale):.0f}, above 100: clamp model.logit_scale at "
                          "ln(100) after optimizer.step(), in place and without gradient (logit_scale is "
                          "log(1/tau): its limit is ln 100 = 4.605, and a clamp at 100 would do nothing)")
    if scale < LOG_MAX_SCALE - 1e-4:
        raise CheckFailed(f"after the step 1/tau = {math.exp(scale):.1f}, below the clamp's 100 although it started "
                          "at 135: clamp after optimizer.step(), at ln(100), and only from above")
    passed("1/tau clamped at 100 after the step")
    for (name, p), q in zip(theirs.named_parameters(), ours.parameters()):
        if not close(p, q, rtol=1e-3, atol=1e-5):
            raise CheckFailed(f"after the step {name} differs from one optimizer step on this loss: backward() "
                              "once, then optimizer.step(), with the gradient reaching both encoders")
    passed("every weight after the step equals one optimizer step on that loss")


@keep_rng()
def check_clip_training(clip_train_step):
    """Train a fresh 16-px mini-CLIP with the student's step for RUN["steps"] steps (AdamW, warm-up then cosine, fresh
    shapes every step); check the time and the zero-shot accuracy on seen pairs. Returns the trained model and the
    losses, for the notebook to show."""
    import time

    from course_utils.data.shapes import class_prompts, make_shapes
    from course_utils.models.clip import Tokens, encode

    require_callable(clip_train_step, "clip_train_step")
    tokens = Tokens(16)
    model = _small_clip()
    matrices = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    others = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    # fused: one pass over the weights per update, a third faster here than foreach; not the same last digits as torch's
    # loop, which this run does not need (it is judged on its accuracy, not compared with a record)
    optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": RUN["weight_decay"]},
                                   {"params": others, "weight_decay": 0.0}], lr=RUN["lr"], fused=True)
    steps, warm = RUN["steps"], RUN["warmup"]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: s / warm if s < warm else 0.5 * (
        1 + math.cos(math.pi * (s - warm) / (steps - warm))))
    reference = _small_clip(1)
    reference_optimizer = torch.optim.AdamW(reference.parameters(), lr=RUN["lr"], fused=True)
    _reference_step(reference, reference_optimizer, *_batch(RUN["batch_size"], 10**7, tokens))  # the first allocates
    start = time.perf_counter()
    for k in range(5):  # a reference step (and its batch) on this machine, now: the budget scales with it
        _reference_step(reference, reference_optimizer, *_batch(RUN["batch_size"], 10**7 + k, tokens))
    per_step = (time.perf_counter() - start) / 5
    del reference, reference_optimizer
    losses, start = [], time.perf_counter()
    for step in range(steps):
        images, ids = _batch(RUN["batch_size"], step, tokens)
        losses.append(call(clip_train_step, model, optimizer, images, ids, what="your clip_train_step",
                           where=f"at step {step + 1} of the run"))
        schedule.step()
        seconds = time.perf_counter() - start
        limit = 10 * SLOWER * per_step if step == 9 else steps * SLOWER * per_step + 5 if step == steps - 1 else None
        if limit is not None and seconds > limit:
            raise CheckFailed(f"your step takes {seconds / (step + 1) / per_step:.0f} times as long as the reference "
                              "step on this machine: one forward pass of each encoder, one backward, one update, "
                              "nothing more")
    passed(f"{steps} steps of {RUN['batch_size']} pairs, each about as fast as the reference step on this machine")
    seen = make_shapes(500, RUN["image_size"], seed=10**6, split="train")
    probs = _probs(encode(model, images=seen.images), encode(model, texts=class_prompts("a {colour} {shape}")))
    accuracy = (probs.argmax(-1) == seen.pair).float().mean().item()
    if accuracy < RUN_TARGET:
        raise CheckFailed(f"zero-shot accuracy {accuracy:.0%} on seen pairs after the run, below {RUN_TARGET:.0%}: "
                          "does your step pass the clamped scale, step the optimizer once, and reset the gradients?")
    passed(f"at least {RUN_TARGET:.0%} zero-shot accuracy on 500 images of seen colour-shape pairs (chance: 4%)")
    return model, losses


# ------------------------------------------------------------------ best_scale: an experiment on the temperature

def _nll(f, g, labels, scale: float) -> float:
    return F.cross_entropy(scale * F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T, labels).item()


@keep_rng()
def check_best_scale(best_scale) -> None:
    """Check ``best_scale(image_features, text_features, labels, scales)`` -> (best, nll per scale) on features whose
    best temperature differs: a sharp classifier, a blurry one, and one with its mistakes made confidently."""
    require_callable(best_scale, "best_scale")
    gen = torch.Generator().manual_seed(21)
    K, B, D = 5, 60, 16
    g = randn(K, D, generator=gen)
    labels = torch.arange(B) % K
    scales = [1.0, 3.0, 10.0, 30.0, 100.0]
    for noise in (0.7, 1.5, 3.0):  # images near their class's prompt, then further away: best 1/tau 100, 10, 3
        f = g[labels] + noise * randn(B, D, generator=gen)
        copies = {"image_features": f.clone(), "text_features": g.clone(), "labels": labels.clone()}
        got = call(best_scale, f, g, labels, list(scales), what="your best_scale", where=f"with noise {noise}")
        unchanged({"image_features": f, "text_features": g, "labels": labels}, copies)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(f"best_scale returns two things, (best, nll), got {type(got).__name__}")
        best, nll = got
        want = [_nll(f, g, labels, s) for s in scales]
        if not (isinstance(nll, (list, tuple)) and len(nll) == len(scales)):
            raise CheckFailed(f"nll should hold one number per scale, {len(scales)} of them, in the order of scales")
        nll = [float(v) for v in nll]
        same = lambda values: all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6) for a, b in zip(nll, values))
        if not same(want):
            raw = [F.cross_entropy(s * f @ g.T, labels).item() for s in scales]
            summed = [v * B for v in want]
            accuracy = [(F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T).argmax(-1).eq(labels).float().mean().item()
                        for _ in scales]
            for variant, mistake in [(raw, "the features are not l2-normalised: the scale multiplies cosine "
                                           "similarities"),
                                     (summed, "the NLL is summed over the images: take its mean"),
                                     (accuracy, "these are accuracies: every scale gives the same argmax, so "
                                                "accuracy cannot choose; measure the negative log-likelihood of the "
                                                "true class")]:
                if same(variant):
                    raise CheckFailed(mistake)
            raise CheckFailed("the NLL differs from the mean over images of -log softmax(scale * cos)[true class], "
                              f"with the softmax over the {K} classes")
        right, worst = scales[want.index(min(want))], scales[want.index(max(want))]
        if best == worst and best != right:
            raise CheckFailed("best is the scale with the largest NLL: the best scale has the smallest")
        if best != right:
            raise CheckFailed("best is not the scale with the smallest NLL (return the scale itself, not its index)")
    passed("the mean NLL of the true class at every scale, for three sets of features")
    passed("the best scale, the one with the smallest NLL: 100, 10 and 3 as the features blur")
