"""Checks for exercise E10, pretrained transformers by hand: a ViT through Hugging Face transformers,
CLIP through openai's ``clip`` package, and linear probes on their frozen features.

    check_vit_top1(vit_top1, model, processor)
    check_vit_features(vit_features, model, processor)
    check_clip_zero_shot(clip_zero_shot, model, preprocess)
    check_linear_probe(linear_probe)

The contract of the student's code (images are lists of RGB ``PIL.Image``):

(a) ``vit_top1(model, processor, images)``: the label (``model.config.id2label``) of the highest logit
    for each image, as a list of strings.
(b) ``vit_features(model, processor, images)``: (B, hidden) float tensor, the final [CLS] token of the
    ViT encoder after its last LayerNorm, ``model.vit(pixel_values).last_hidden_state[:, 0]``: the
    vector the classification head reads.
(c) ``clip_zero_shot(model, preprocess, images, class_names, template="a photo of a {}")``: (B, K)
    probabilities, the softmax over the K prompts ``template.format(name)`` of
    ``model.logit_scale.exp()`` times the cosine similarity of image and prompt embeddings.
(d) ``linear_probe(train_features, train_labels, test_features, test_labels)``: fit a linear
    classifier (logistic regression, any solver) on the training features and return its top-1
    accuracy on the test features, a float in [0, 1].

The checks compare with a reference computed on the same model, so they pass with the real
checkpoints and with the course's stand-ins, and print the same lines with both.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.grading.checks import CheckFailed, call, close, keep_rng, passed, require_callable, unchanged

__all__ = ["check_vit_top1", "check_vit_features", "check_clip_zero_shot", "check_linear_probe", "to_pil"]

# ------------------------------------------------------------------ what the mistakes are called
TOP1_TYPE = "expected a list of label strings, one per image, got {kind}"
TOP1_IDS = "these are class ids: map each to its name with model.config.id2label[i]"
TOP1_WRONG = ("labels differ from the model's top-1: run the processor (return_tensors='pt'), the model, then "
              "argmax over the logits' last dimension, and look up model.config.id2label")
FEATURES_SHAPE = "expected features of shape {want} (images x hidden size), got {got}"
FEATURES_NO_LN = ("features equal the [CLS] token before the encoder's final LayerNorm: use "
                  "model.vit(...).last_hidden_state, which has it applied")
FEATURES_MEAN = "features are the mean over tokens: take the [CLS] token, position 0"
FEATURES_LOGITS = "these are the classifier's logits: take the [CLS] token's hidden state, before the head"
FEATURES_WRONG = "features differ from model.vit(pixel_values).last_hidden_state[:, 0]"
FEATURES_GRAD = ("your vit_features returns features still attached to autograd (requires_grad=True): compute them "
                 "under torch.no_grad(), or the probe trained on them backpropagates into the ViT")
PROBS_SHAPE = "expected probabilities of shape {want} (images x classes), got {got}"
PROBS_ROWS = "the rows do not sum to 1: take the softmax over the classes (the last dimension)"
PROBS_TEMPLATE = "the prompts ignore `template`: classify with template.format(name) for each class name"
PROBS_SCALE = "the similarities are not multiplied by model.logit_scale.exp() (CLIP's learned 1/tau)"
PROBS_NORM = "the embeddings are not l2-normalised before their dot products"
PROBS_WRONG = ("probabilities differ from CLIP's zero-shot classifier: preprocess each image, clip.tokenize the "
               "prompts, encode both, normalise, scale by model.logit_scale.exp(), softmax over the classes")
PROBE_TYPE = "expected an accuracy, a float in [0, 1], got {value!r}"
PROBE_WEAK = ("a linear classifier should separate these features almost perfectly, yours scored {acc:.0%}: "
              "fit on the training features and labels, predict the test features")
PROBE_ON_TRAIN = ("your probe scores {acc:.0%} on labels that are pure noise: it is measured on the training "
                  "features (or the test labels leaked in); score it on the test features")


def to_pil(images: torch.Tensor) -> list:
    """(B, C, H, W) in [0, 1] (C = 1 or 3) -> B RGB ``PIL.Image``s, what the libraries' preprocessing takes."""
    from PIL import Image

    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    arrays = (images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # (B, H, W, 3)
    return [Image.fromarray(a) for a in arrays]


def _probe_images(n: int = 6) -> list:
    from course_utils.data.digits import digits
    from course_utils.data.shapes import make_shapes

    x, _ = digits(32)
    return to_pil(x[:n // 2]) + to_pil(make_shapes(n - n // 2, 32, seed=2).images)


# ---------------------------------------------------------------------- (a) vit_top1

def _vit_logits(model, processor, images) -> torch.Tensor:
    inputs = processor(images=images, return_tensors="pt").to(model.device)
    with torch.no_grad():
        return model(**inputs).logits.float().cpu()  # (B, classes)


def check_vit_top1(vit_top1, model, processor) -> None:
    """Check ``vit_top1(model, processor, images)`` against the model's own top-1 labels."""
    require_callable(vit_top1, "vit_top1")
    images = _probe_images()
    want = [model.config.id2label[int(i)] for i in _vit_logits(model, processor, images).argmax(-1)]
    got = call(vit_top1, model, processor, list(images), what="your vit_top1", where=f"for {len(images)} images")
    if isinstance(got, (torch.Tensor, np.ndarray)):
        got = got.tolist()
    if not isinstance(got, (list, tuple)) or len(got) != len(images):
        raise CheckFailed(TOP1_TYPE.format(kind=type(got).__name__ + (f" of length {len(got)}"
                                                                       if hasattr(got, "__len__") else "")))
    if all(isinstance(g, (int, np.integer)) for g in got):
        raise CheckFailed(TOP1_IDS)
    if list(got) != want:
        raise CheckFailed(TOP1_WRONG)
    passed(f"one label per image for {len(images)} images, the model's top-1 named by id2label")


# ---------------------------------------------------------------------- (b) vit_features

def check_vit_features(vit_features, model, processor) -> None:
    """Check ``vit_features(model, processor, images)``: the final, normalised [CLS] token."""
    require_callable(vit_features, "vit_features")
    images = _probe_images()
    inputs = processor(images=images, return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model.vit(**inputs, output_hidden_states=True)
        want = out.last_hidden_state[:, 0].float().cpu()  # (B, hidden)
        before_ln = out.hidden_states[-1][:, 0].float().cpu()
        mean = out.last_hidden_state.mean(1).float().cpu()
        logits = model.classifier(out.last_hidden_state[:, 0]).float().cpu()
    got = call(vit_features, model, processor, list(images), what="your vit_features")
    attached = isinstance(got, torch.Tensor) and got.requires_grad
    got = torch.as_tensor(got).detach().float().cpu()
    if tuple(got.shape) != tuple(want.shape):
        if tuple(got.shape) == tuple(logits.shape):
            raise CheckFailed(FEATURES_LOGITS)
        raise CheckFailed(FEATURES_SHAPE.format(want=tuple(want.shape[:1]) + ("hidden",), got=tuple(got.shape)))
    passed(f"features of shape ({len(images)}, hidden size) for {len(images)} images")
    if not close(got, want, rtol=1e-3, atol=1e-4):
        for wrong, message in ((before_ln, FEATURES_NO_LN), (mean, FEATURES_MEAN)):
            if close(got, wrong, rtol=1e-3, atol=1e-4):
                raise CheckFailed(message)
        raise CheckFailed(FEATURES_WRONG)
    if attached:  # right values, but a later linear_probe would fail with autograd's own error, far from here
        raise CheckFailed(FEATURES_GRAD)
    passed("equal to the [CLS] token of model.vit's last hidden state")


# ---------------------------------------------------------------------- (c) clip_zero_shot

def _clip_probs(model, preprocess, images, prompts, normalise=True, scale=True):
    from course_utils.models.clip import import_clip

    device = next(model.parameters()).device
    x = torch.stack([preprocess(im) for im in images]).to(device)
    with torch.no_grad():
        f = model.encode_image(x).float()
        g = model.encode_text(import_clip().tokenize(prompts).to(device)).float()
        if normalise:
            f, g = F.normalize(f, dim=-1), F.normalize(g, dim=-1)
        s = model.logit_scale.exp().float() if scale else 1.0
        return (s * f @ g.T).softmax(-1).cpu()


def check_clip_zero_shot(clip_zero_shot, model, preprocess) -> None:
    """Check ``clip_zero_shot(model, preprocess, images, class_names, template)`` against CLIP's recipe."""
    require_callable(clip_zero_shot, "clip_zero_shot")
    images = _probe_images()
    names = ["red circle", "blue square", "green triangle", "handwritten digit"]
    template = "a picture of a {}"
    prompts = [template.format(n) for n in names]
    want = _clip_probs(model, preprocess, images, prompts)
    got = call(clip_zero_shot, model, preprocess, list(images), list(names), template,
               what="your clip_zero_shot", where=f"for {len(images)} images and {len(names)} class names")
    got = torch.as_tensor(got).detach().float().cpu()
    if tuple(got.shape) != tuple(want.shape):
        raise CheckFailed(PROBS_SHAPE.format(want=tuple(want.shape), got=tuple(got.shape)))
    passed(f"probabilities of shape {tuple(want.shape)} for {len(images)} images and {len(names)} class names")
    if not close(got.sum(-1), torch.ones(len(images)), atol=1e-4):
        raise CheckFailed(PROBS_ROWS)
    if not close(got, want, rtol=1e-3, atol=2e-4):
        wrong = [(_clip_probs(model, preprocess, images, [f"a photo of a {n}" for n in names]), PROBS_TEMPLATE),
                 (_clip_probs(model, preprocess, images, names), PROBS_TEMPLATE),
                 (_clip_probs(model, preprocess, images, prompts, scale=False), PROBS_SCALE),
                 (_clip_probs(model, preprocess, images, prompts, normalise=False), PROBS_NORM)]
        for candidate, message in wrong:
            if close(got, candidate, rtol=1e-3, atol=2e-4):
                raise CheckFailed(message)
        raise CheckFailed(PROBS_WRONG)
    passed("equal to CLIP's zero-shot classifier over the prompts template.format(name)")


# ---------------------------------------------------------------------- (d) linear_probe

def _accuracy(value) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (np.floating, np.integer)):
        value = float(value)
    if not isinstance(value, (float, int)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise CheckFailed(PROBE_TYPE.format(value=value))
    return float(value)


def check_linear_probe(linear_probe) -> None:
    """Check ``linear_probe(train_x, train_y, test_x, test_y)`` on separable data and on pure noise."""
    require_callable(linear_probe, "linear_probe")
    with keep_rng():
        gen = torch.Generator().manual_seed(10)
        K, D = 4, 16
        centres = torch.randn(K, D, generator=gen) * 3  # four well-separated classes
        y_train, y_test = torch.arange(200) % K, torch.arange(100) % K
        x_train = centres[y_train] + torch.randn(200, D, generator=gen)
        x_test = centres[y_test] + torch.randn(100, D, generator=gen)
        given = [x_train.clone(), y_train.clone(), x_test.clone(), y_test.clone()]
        acc = _accuracy(call(linear_probe, *given, what="your linear_probe", where="for 200 training features (16-D)"))
        names = ("train_features", "train_labels", "test_features", "test_labels")
        unchanged(dict(zip(names, given)), dict(zip(names, (x_train, y_train, x_test, y_test))))
        if acc < 0.95:
            raise CheckFailed(PROBE_WEAK.format(acc=acc))
        passed("returns an accuracy; separates four well-separated classes (>= 95% on held-out features)")
        noise_x = torch.randn(200, 64, generator=gen)  # 100 points in 64-D: a linear model can fit any labels
        noise_y = torch.randint(0, 2, (200,), generator=gen)
        acc = _accuracy(call(linear_probe, noise_x[:100], noise_y[:100], noise_x[100:], noise_y[100:],
                             what="your linear_probe", where="for random features and labels"))
        if acc > 0.7:
            raise CheckFailed(PROBE_ON_TRAIN.format(acc=acc))
        passed("stays near chance on labels that are pure noise: it is scored on the test features")
