"""The chapter 05 checks, both ways: every correct style passes with the very same printout, and
every classic mistake fails with a message that names it."""
import math

import pytest
import torch
import torch.nn.functional as F
from check_helpers import fails, run

from course_utils.grading.checks import clip as C
from course_utils.grading.checks.clip import (
    check_best_scale,
    check_clip_loss,
    check_clip_train_step,
    check_clip_training,
    check_zero_shot_probs,
)
from course_utils.models.clip import clip_loss, zero_shot_probs

# ----------------------------------------------------------------------------- clip_loss, right

def loss_log_softmax(image_features, text_features, logit_scale):
    """The formula as written: -1/(2N) sum_i [log softmax_rows(i, i) + log softmax_cols(i, i)]."""
    f = image_features / image_features.norm(dim=-1, keepdim=True)
    g = text_features / text_features.norm(dim=-1, keepdim=True)
    logits = torch.einsum("id,jd->ij", f, g) * logit_scale
    rows = logits.log_softmax(dim=1).diagonal()
    cols = logits.log_softmax(dim=0).diagonal()
    return -(rows + cols).sum() / (2 * len(f))


def loss_text_first(image_features, text_features, logit_scale):
    """Logits from the text side (their transpose): the same loss."""
    f, g = F.normalize(image_features, dim=1), F.normalize(text_features, dim=1)
    logits_per_text = logit_scale * g @ f.t()
    labels = torch.arange(f.shape[0])
    return 0.5 * F.cross_entropy(logits_per_text, labels) + 0.5 * F.cross_entropy(logits_per_text.t(), labels)


def loss_loop(image_features, text_features, logit_scale):
    """A loop over the pairs, with logsumexp."""
    f = F.normalize(image_features, dim=-1)
    g = F.normalize(text_features, dim=-1)
    sims = logit_scale * (f @ g.T)
    total = 0.0
    for i in range(len(f)):
        total = total + (torch.logsumexp(sims[i], 0) - sims[i, i]) + (torch.logsumexp(sims[:, i], 0) - sims[i, i])
    return total / (2 * len(f))


CORRECT_LOSSES = [clip_loss, loss_log_softmax, loss_text_first, loss_loop]


def test_every_correct_loss_prints_the_same():
    outputs = {run(check_clip_loss, fn) for fn in CORRECT_LOSSES}
    assert len(outputs) == 1, outputs
    assert outputs.pop().count("✓") == 5


# ----------------------------------------------------------------------------- clip_loss, wrong

def _base(image_features, text_features, logit_scale, norm=True, dim=-1, rows=True, cols=True, reduce=2, sum_batch=False):
    f = F.normalize(image_features, dim=dim) if norm else image_features
    g = F.normalize(text_features, dim=dim) if norm else text_features
    logits = logit_scale * f @ g.T
    labels = torch.arange(len(f))
    r = "sum" if sum_batch else "mean"
    parts = []
    if rows:
        parts.append(F.cross_entropy(logits, labels, reduction=r))
    if cols:
        parts.append(F.cross_entropy(logits.T, labels, reduction=r))
    return sum(parts) / (reduce if len(parts) == 2 else 1)


WRONG_LOSSES = {
    "no normalisation": (lambda f, g, s: _base(f, g, s, norm=False), C.NOT_NORMALISED),
    "images only normalised": (lambda f, g, s: _base(F.normalize(f, dim=-1), g, s, norm=False), C.ONE_SIDE_NORMALISED),
    "normalised over the batch": (lambda f, g, s: _base(f, g, s, dim=0), C.NORM_WRONG_DIM),
    "rows only": (lambda f, g, s: _base(f, g, s, cols=False), C.IMAGE_TO_TEXT_ONLY),
    "columns only": (lambda f, g, s: _base(f, g, s, rows=False), C.TEXT_TO_IMAGE_ONLY),
    "summed directions": (lambda f, g, s: _base(f, g, s, reduce=1), C.SUMMED_DIRECTIONS),
    "summed over the batch": (lambda f, g, s: _base(f, g, s, sum_batch=True), C.SUMMED_BATCH),
    "scale ignored": (lambda f, g, s: _base(f, g, 1.0), C.NO_SCALE),
    "divided by the scale": (lambda f, g, s: _base(f, g, 1 / s), C.DIVIDED_BY_SCALE),
    "exp of the scale": (lambda f, g, s: _base(f, g, torch.as_tensor(s).exp()), C.EXP_SCALE),
    "wrong targets": (lambda f, g, s: F.cross_entropy(s * F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T,
                                                      torch.zeros(len(f), dtype=torch.long)), C.WRONG_LOSS),
    "per-sample losses": (lambda f, g, s: F.cross_entropy(s * F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T,
                                                          torch.arange(len(f)), reduction="none"), "scalar loss"),
    "detached": (lambda f, g, s: clip_loss(f.detach(), g.detach(), s), "no gradient flows back"),
    "float scale only": (lambda f, g, s: float_scale_only(f, g, s), C.FLOAT_SCALE),
    "not implemented": (lambda f, g, s: (_ for _ in ()).throw(NotImplementedError()), "not implemented yet"),
}


def float_scale_only(f, g, s):
    """A loss written with math.exp-style float arithmetic that rejects a tensor scale."""
    if isinstance(s, torch.Tensor):
        raise TypeError("must be real number, not Tensor")
    return clip_loss(f, g, s)


@pytest.mark.parametrize("name", list(WRONG_LOSSES))
def test_loss_mistakes_are_named(name):
    fn, message = WRONG_LOSSES[name]
    fails(check_clip_loss, fn, message)


def in_place(f, g, s):
    with torch.no_grad():
        f.div_(f.norm(dim=-1, keepdim=True))  # normalises the caller's tensor
    return clip_loss(f, g, s)


def test_in_place_normalisation_is_named():
    fails(check_clip_loss, in_place, "in place")


def test_passing_a_call_instead_of_the_function_is_named():
    fails(check_clip_loss, 3.0, "expected the function clip_loss")


# ----------------------------------------------------------------------------- zero_shot_probs

def probs_einsum(image_features, text_features, logit_scale=100.0):
    f = image_features / image_features.norm(dim=1, keepdim=True)
    g = text_features / text_features.norm(dim=1, keepdim=True)
    return torch.softmax(torch.einsum("bd,kd->bk", f, g) * logit_scale, dim=1)


def probs_exp(image_features, text_features, logit_scale=100.0):
    sims = F.cosine_similarity(image_features[:, None, :], text_features[None, :, :], dim=-1)  # (B, K)
    e = torch.exp(logit_scale * sims - (logit_scale * sims).max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def test_every_correct_probs_prints_the_same():
    outputs = {run(check_zero_shot_probs, fn) for fn in (zero_shot_probs, probs_einsum, probs_exp)}
    assert len(outputs) == 1, outputs
    assert outputs.pop().count("✓") == 4


WRONG_PROBS = {
    "transposed": (lambda f, g, s=100.0: zero_shot_probs(f, g, s).T, C.PROBS_TRANSPOSED),
    "softmax over images": (lambda f, g, s=100.0: (s * F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T).softmax(0),
                            C.PROBS_WRONG_DIM),
    "logits": (lambda f, g, s=100.0: s * F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T, C.PROBS_LOGITS),
    "log-probabilities": (lambda f, g, s=100.0: (s * F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T).log_softmax(-1),
                          C.PROBS_LOG),
    "no normalisation": (lambda f, g, s=100.0: (s * f @ g.T).softmax(-1), C.NOT_NORMALISED),
    "images only normalised": (lambda f, g, s=100.0: (s * F.normalize(f, dim=-1) @ g.T).softmax(-1),
                               C.ONE_SIDE_NORMALISED),
    "scale ignored": (lambda f, g, s=100.0: (F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T).softmax(-1), C.NO_SCALE),
    "divided": (lambda f, g, s=100.0: (F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T / s).softmax(-1),
                C.DIVIDED_BY_SCALE),
    "wrong default": (lambda f, g, s=1.0: zero_shot_probs(f, g, s), C.PROBS_DEFAULT),
    "shape": (lambda f, g, s=100.0: zero_shot_probs(f, g, s)[:, :1], "expected probabilities of shape (5, 3)"),
}


@pytest.mark.parametrize("name", list(WRONG_PROBS))
def test_probs_mistakes_are_named(name):
    fn, message = WRONG_PROBS[name]
    fails(check_zero_shot_probs, fn, message)


# ------------------------------------------------------------------ clip_train_step: one step, then a run

def make_step(exp=True, clamp="after", zero=True, returns="float", limit=math.log(100), style="clamp_"):
    """A training step in two correct styles ("clamp_" under no_grad, or on .data with min); the other keywords
    plant one classic mistake each."""

    def clip_train_step(model, optimizer, images, tokens):
        if clamp == "before":
            with torch.no_grad():
                model.logit_scale.clamp_(max=limit)
        if zero:
            optimizer.zero_grad(set_to_none=style == "clamp_")
        f, g = model.encode_image(images), model.encode_text(tokens)
        if style == "clamp_":
            loss = clip_loss(f, g, model.logit_scale.exp() if exp else model.logit_scale)
        else:  # the loss written out, the clamp on .data
            f, g = f / f.norm(dim=-1, keepdim=True), g / g.norm(dim=-1, keepdim=True)
            logits = torch.einsum("id,jd->ij", f, g) * model.logit_scale.exp()
            target = torch.arange(len(f))
            loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
        loss.backward()
        optimizer.step()
        if clamp == "after":
            if style == "clamp_":
                with torch.no_grad():
                    model.logit_scale.clamp_(max=limit)
            else:
                model.logit_scale.data = torch.minimum(model.logit_scale.data, torch.tensor(limit))
        return loss.item() if returns == "float" else loss

    return clip_train_step


@pytest.mark.parametrize("style", ["clamp_", "einsum-data"])
def test_clip_train_step_correct_styles_pass(style):
    out = run(check_clip_train_step, make_step(style=style))
    assert out.count("✓") == 4, out


STEP_MISTAKES = {
    "no exp": (dict(exp=False), "scaled by model.logit_scale itself"),
    "clamp before the step": (dict(clamp="before"), "uses 1/tau after the clamp"),
    "no clamp": (dict(clamp=None), "above 100: clamp model.logit_scale at ln(100)"),
    "clamp at 100 on the log scale": (dict(limit=100.0), "a clamp at 100 would do nothing"),
    "no zero_grad": (dict(zero=False), "the gradients accumulate across steps"),
    "returns the tensor": (dict(returns="tensor"), "return the loss as a Python float"),
}


def test_a_clamp_inside_autograd_is_named():
    def step(model, optimizer, images, tokens):
        loss = make_step(clamp=None)(model, optimizer, images, tokens)
        model.logit_scale.clamp_(max=math.log(100))  # in place on a leaf that requires grad: PyTorch refuses
        return loss
    fails(check_clip_train_step, step, "leaf Variable", "under torch.no_grad()")


@pytest.mark.parametrize("case", STEP_MISTAKES)
def test_clip_train_step_mistakes_are_named(case):
    keywords, words = STEP_MISTAKES[case]
    fails(check_clip_train_step, make_step(**keywords), words)


@pytest.mark.slow  # it trains: a step ten times too slow, for ten steps, and a twenty-step run
def test_the_run_names_a_slow_step_and_a_step_that_learns_nothing(monkeypatch):
    import time

    def slow(model, optimizer, images, tokens):  # ten extra steps each time: a step in a loop of its own
        time.sleep(0.01)
        for _ in range(10):
            loss = make_step()(model, optimizer, images, tokens)
        return loss
    start = time.perf_counter()
    fails(check_clip_training, slow, "times as long as the reference step")
    assert time.perf_counter() - start < 60, "a slow step is reported after ten steps, not after the whole run"
    monkeypatch.setitem(C.RUN, "steps", 20)
    monkeypatch.setitem(C.RUN, "warmup", 2)

    def frozen(model, optimizer, images, tokens):
        with torch.no_grad():
            return clip_loss(model.encode_image(images), model.encode_text(tokens), 1.0).item()
    fails(check_clip_training, frozen, "zero-shot accuracy", "below 90%")


# ------------------------------------------------------------------ best_scale: the temperature experiment

def scale_answer(normalise=True, reduce="mean", pick=min, measure="nll", index=False):
    def best_scale(image_features, text_features, labels, scales):
        f, g = image_features, text_features
        if normalise:
            f, g = F.normalize(f, dim=-1), g / g.norm(dim=-1, keepdim=True)
        nll = []
        for s in scales:
            logits = s * f @ g.T
            if measure == "accuracy":
                nll.append((logits.argmax(-1) == labels).float().mean().item())
            else:
                picked = -logits.log_softmax(-1).gather(1, labels[:, None]).squeeze(1)
                nll.append((picked.mean() if reduce == "mean" else picked.sum()).item())
        k = pick(range(len(scales)), key=nll.__getitem__)
        return (k if index else scales[k]), nll
    return best_scale


def test_best_scale_correct_answers_pass():
    out = run(check_best_scale, scale_answer())
    assert out.count("✓") == 2, out


@pytest.mark.parametrize("keywords, words", [
    (dict(normalise=False), "not l2-normalised"),
    (dict(reduce="sum"), "summed over the images"),
    (dict(measure="accuracy"), "these are accuracies"),
    (dict(pick=max), "the largest NLL"),
    (dict(index=True), "not its index"),
])
def test_best_scale_mistakes_are_named(keywords, words):
    fails(check_best_scale, scale_answer(**keywords), words)
