"""The E10 checks, both ways, on small random models (the checks compare with the model they are
given, so random weights test them as well as trained ones)."""
import pytest
import torch
import torch.nn.functional as F
from check_helpers import fails, run
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

from course_utils.grading.checks import pretrained as P
from course_utils.grading.checks.pretrained import (
    check_clip_zero_shot,
    check_linear_probe,
    check_vit_features,
    check_vit_top1,
)
from course_utils.models.clip import MiniCLIPConfig, build_clip, import_clip

clip = import_clip()


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    config = ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=10, id2label={i: f"class {i}" for i in range(10)},
                       label2id={f"class {i}": i for i in range(10)})
    model = ViTForImageClassification(config).eval()
    processor = ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return model, processor


@pytest.fixture(scope="module")
def clip_pair():
    torch.manual_seed(0)
    model = build_clip(MiniCLIPConfig(context_length=77)).eval()  # what clip.load builds: 77 tokens
    return model, clip.clip._transform(32)  # what clip.load returns for a 32 px model


# ---------------------------------------------------------------- vit_top1

def top1_reference(model, processor, images):
    inputs = processor(images=images, return_tensors="pt").to(model.device)
    with torch.no_grad():
        logits = model(**inputs).logits
    return [model.config.id2label[int(i)] for i in logits.argmax(dim=-1)]


def top1_topk(model, processor, images):
    pixels = processor(images, return_tensors="pt")["pixel_values"]
    probs = model(pixel_values=pixels).logits.softmax(-1)
    return [model.config.id2label[i.item()] for i in probs.topk(1).indices[:, 0]]


def test_correct_top1_styles_print_the_same(vit):
    outputs = {run(lambda f: check_vit_top1(f, *vit), fn) for fn in (top1_reference, top1_topk)}
    assert len(outputs) == 1 and "✓" in outputs.pop()


@pytest.mark.parametrize("wrong, message", [
    (lambda m, p, ims: [int(i) for i in m(**p(images=ims, return_tensors="pt")).logits.argmax(-1)], P.TOP1_IDS),
    (lambda m, p, ims: [m.config.id2label[int(i)] for i in m(**p(images=ims, return_tensors="pt")).logits.argmin(-1)],
     P.TOP1_WRONG),
    (lambda m, p, ims: top1_reference(m, p, ims)[:2], "expected a list of label strings"),
])
def test_top1_mistakes_are_named(vit, wrong, message):
    fails(lambda f: check_vit_top1(f, *vit), wrong, message)


# ---------------------------------------------------------------- vit_features

def features_reference(model, processor, images):
    with torch.no_grad():
        return model.vit(**processor(images=images, return_tensors="pt")).last_hidden_state[:, 0]


def features_by_hand(model, processor, images):
    with torch.no_grad():
        out = model(**processor(images=images, return_tensors="pt"), output_hidden_states=True)
        return model.vit.layernorm(out.hidden_states[-1])[:, 0]


def test_correct_feature_styles_print_the_same(vit):
    outputs = {run(lambda f: check_vit_features(f, *vit), fn) for fn in (features_reference, features_by_hand)}
    assert len(outputs) == 1 and outputs.pop().count("✓") == 2


@pytest.mark.parametrize("wrong, message", [
    (lambda m, p, ims: m(**p(images=ims, return_tensors="pt"), output_hidden_states=True).hidden_states[-1][:, 0],
     P.FEATURES_NO_LN),
    (lambda m, p, ims: m.vit(**p(images=ims, return_tensors="pt")).last_hidden_state.mean(1), P.FEATURES_MEAN),
    (lambda m, p, ims: m(**p(images=ims, return_tensors="pt")).logits, P.FEATURES_LOGITS),
    (lambda m, p, ims: m.vit(**p(images=ims, return_tensors="pt")).last_hidden_state[:, 1], P.FEATURES_WRONG),
])
def test_feature_mistakes_are_named(vit, wrong, message):
    fails(lambda f: check_vit_features(f, *vit), wrong, message)


def test_features_still_attached_to_autograd_are_named(vit):
    """Right values, but without torch.no_grad(): the check names vit_features, not the probe that would fail later."""
    model, processor = vit
    attached = lambda m, p, ims: m.vit(**p(images=ims, return_tensors="pt")).last_hidden_state[:, 0]  # noqa: E731
    fails(lambda f: check_vit_features(f, model, processor), attached, "vit_features", "autograd")
    detached = lambda m, p, ims: attached(m, p, ims).detach()  # noqa: E731
    assert run(lambda f: check_vit_features(f, model, processor), detached).count("✓") == 2


# ---------------------------------------------------------------- clip_zero_shot

def zs_reference(model, preprocess, images, class_names, template="a photo of a {}"):
    x = torch.stack([preprocess(im) for im in images])
    with torch.no_grad():
        f = F.normalize(model.encode_image(x), dim=-1)
        g = F.normalize(model.encode_text(clip.tokenize([template.format(n) for n in class_names])), dim=-1)
        return (model.logit_scale.exp() * f @ g.T).softmax(-1)


def zs_forward(model, preprocess, images, class_names, template="a photo of a {}"):
    """openai's own forward already normalises and scales: its logits_per_image are what is needed."""
    x = torch.cat([preprocess(im).unsqueeze(0) for im in images])
    text = clip.tokenize([template.replace("{}", name) for name in class_names])
    with torch.no_grad():
        logits_per_image, _ = model(x, text)
    return logits_per_image.softmax(dim=1)


def test_correct_zero_shot_styles_print_the_same(clip_pair):
    outputs = {run(lambda f: check_clip_zero_shot(f, *clip_pair), fn) for fn in (zs_reference, zs_forward)}
    assert len(outputs) == 1 and outputs.pop().count("✓") == 2


def _zs(normalise=True, scale=True, template=None, dim=-1):
    def fn(model, preprocess, images, class_names, tmpl="a photo of a {}"):
        x = torch.stack([preprocess(im) for im in images])
        prompts = [(template or tmpl).format(n) for n in class_names]
        with torch.no_grad():
            f, g = model.encode_image(x), model.encode_text(clip.tokenize(prompts))
            if normalise:
                f, g = F.normalize(f, dim=-1), F.normalize(g, dim=-1)
            return ((model.logit_scale.exp() if scale else 1.0) * f @ g.T).softmax(dim)
    return fn


@pytest.mark.parametrize("wrong, message", [
    (_zs(normalise=False), P.PROBS_NORM),
    (_zs(scale=False), P.PROBS_SCALE),
    (_zs(template="a photo of a {}"), P.PROBS_TEMPLATE),
    (_zs(template="{}"), P.PROBS_TEMPLATE),
    (_zs(dim=0), P.PROBS_ROWS),
    (lambda m, p, ims, names, t="": zs_reference(m, p, ims, names, t).T, "expected probabilities of shape"),
])
def test_zero_shot_mistakes_are_named(clip_pair, wrong, message):
    fails(lambda f: check_clip_zero_shot(f, *clip_pair), wrong, message)


# ---------------------------------------------------------------- linear_probe

def probe_sklearn(train_x, train_y, test_x, test_y):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=2000).fit(train_x.numpy(), train_y.numpy())
    return (model.predict(test_x.numpy()) == test_y.numpy()).mean()  # a numpy float


def probe_torch(train_x, train_y, test_x, test_y):
    torch.manual_seed(0)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    layer = torch.nn.Linear(train_x.shape[1], int(train_y.max()) + 1)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    for _ in range(300):
        loss = F.cross_entropy(layer((train_x - mean) / std), train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (layer((test_x - mean) / std).argmax(-1) == test_y).float().mean()  # a 0-dim tensor


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_correct_probe_styles_print_the_same():
    outputs = {run(check_linear_probe, fn) for fn in (probe_sklearn, probe_torch)}
    assert len(outputs) == 1 and outputs.pop().count("✓") == 2


@pytest.mark.parametrize("wrong, message", [
    (lambda a, b, c, d: probe_sklearn(a, b, a, b), "measured on the training features"),
    (lambda a, b, c, d: 100 * probe_sklearn(a, b, c, d), "expected an accuracy"),
    (lambda a, b, c, d: float((d == 0).float().mean()), "separate"),  # always predicts class 0
])
def test_probe_mistakes_are_named(wrong, message):
    fails(check_linear_probe, wrong, message)
