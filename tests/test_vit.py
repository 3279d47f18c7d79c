"""The Vision Transformer (course_utils.models.vit): patchify, the embedding, agreement with transformers' ViT."""
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from course_utils.data.digits import DIGITS_LABELS, digits_data, normalize
from course_utils.eval.metrics import evaluate
from course_utils.interop.hf_vit import copy_to_hf, export_pretrained, hf_config, to_hf
from course_utils.models.vit import (
    ConvStem,
    ViT,
    ViTConfig,
    ViTEmbedding,
    attention_rollout,
    count_parameters,
    patchify,
    sincos_2d_embedding,
)
from course_utils.training.classifier import TrainConfig, random_affine, train_classifier

SMALL = ViTConfig(image_size=8, patch_size=4, in_channels=3, dim=16, depth=2, num_heads=2, mlp_dim=32, num_classes=5)


def _count(config: ViTConfig) -> int:
    c = config
    return count_parameters(c.image_size, c.patch_size, c.in_channels, c.dim, c.depth, c.mlp_dim, c.num_classes)


# ---------------------------------------------------------------- patchify


def test_patchify_numbers_patches_row_by_row():
    image = torch.arange(16.0).view(1, 1, 4, 4)  # pixel value = 4 * row + column
    expected = torch.tensor([[[0.0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]])
    torch.testing.assert_close(patchify(image, 2), expected)


def test_patchify_flattens_row_column_channel():
    red = torch.tensor([[0.0, 1], [2, 3]])
    green = red + 10
    image = torch.stack([red, green])[None]  # (1, 2, 2, 2)
    expected = torch.tensor([[[0.0, 10, 1, 11, 2, 12, 3, 13]]])  # channels innermost
    torch.testing.assert_close(patchify(image, 2), expected)


def test_patchify_shapes_and_errors():
    assert patchify(torch.zeros(2, 3, 224, 224), 16).shape == (2, 196, 768)
    assert patchify(torch.zeros(1, 3, 8, 12), 4).shape == (1, 6, 48)
    with pytest.raises(ValueError, match="must divide"):
        patchify(torch.zeros(1, 3, 10, 12), 4)
    with pytest.raises(ValueError, match="must divide"):
        patchify(torch.zeros(1, 3, 12, 10), 4)


# ---------------------------------------------------------------- the embedding


def test_embedding_equals_a_strided_conv():
    torch.manual_seed(0)
    emb = ViTEmbedding(image_size=12, patch_size=4, in_channels=3, dim=8)
    conv = nn.Conv2d(3, 8, kernel_size=4, stride=4)
    with torch.no_grad():
        conv.weight.copy_(emb.proj.weight.view(8, 4, 4, 3).permute(0, 3, 1, 2))  # (D, C, P, P)
        conv.bias.copy_(emb.proj.bias)
    x = torch.randn(2, 3, 12, 12)
    z = emb(x)  # (2, 10, 8)
    assert z.shape == (2, 9 + 1, 8)
    torch.testing.assert_close(z[:, 0], emb.cls_token[:, 0].expand(2, -1) + emb.pos_embedding[:, 0])
    tokens = conv(x).flatten(2).transpose(1, 2)  # (2, 9, 8), row-major
    torch.testing.assert_close(z[:, 1:] - emb.pos_embedding[:, 1:], tokens)


def test_sincos_embedding():
    E = sincos_2d_embedding(3, 4, 8)
    assert E.shape == (12, 8)
    # position k = (row 1, column 2): channels [sin y, cos y, sin x, cos x] at omega = 1, 1/100
    k = 1 * 4 + 2
    omega = torch.tensor([1.0, 0.01])
    torch.testing.assert_close(E[k], torch.cat([(1 * omega).sin(), (1 * omega).cos(), (2 * omega).sin(), (2 * omega).cos()]))
    with pytest.raises(ValueError):
        sincos_2d_embedding(2, 2, 6)


# ---------------------------------------------------------------- the model and transformers' ViT


def test_parameter_formula_matches_the_course_vit_and_transformers():
    from transformers import ViTForImageClassification

    for config in (SMALL, ViTConfig.tiny()):
        n = _count(config)
        assert sum(p.numel() for p in ViT(config).parameters()) == n
        assert sum(p.numel() for p in ViTForImageClassification(hf_config(config)).parameters()) == n
    assert _count(ViTConfig.base()) == 86_567_656  # google/vit-base-patch16-224


@pytest.mark.parametrize("config", [SMALL, ViTConfig.tiny()], ids=["small", "tiny"])
def test_course_vit_equals_transformers_vit(config):
    from transformers import ViTModel

    torch.manual_seed(0)
    model = ViT(config).eval()
    x = torch.randn(3, config.in_channels, config.image_size, config.image_size)
    hf_classifier = to_hf(model)
    torch.testing.assert_close(hf_classifier(x).logits, model(x), rtol=1e-4, atol=1e-5)
    hf_model = ViTModel(hf_config(config)).eval()
    copy_to_hf(model, hf_model)
    torch.testing.assert_close(hf_model(x).last_hidden_state, model.encode(x), rtol=1e-4, atol=1e-5)


def test_attention_maps_equal_transformers_attentions():
    from transformers import ViTForImageClassification

    torch.manual_seed(0)
    model = ViT(SMALL).eval()
    config = hf_config(SMALL)
    config._attn_implementation = "eager"  # the implementation that returns its attention weights
    hf = ViTForImageClassification(config).eval()
    copy_to_hf(model, hf)
    x = torch.randn(2, 3, 8, 8)
    ours = model.attention_maps(x)
    theirs = hf(x, output_attentions=True).attentions
    assert len(ours) == SMALL.depth and ours[0].shape == (2, SMALL.num_heads, 5, 5)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_hybrid_has_a_conv_stem_and_does_not_convert():
    hybrid = ViT(dataclasses.replace(SMALL, stem_channels=4))
    assert isinstance(hybrid.stem, ConvStem)
    assert hybrid(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    assert hybrid.embedding.proj.in_features == 4 * 4 * 4  # patches of the stem's 4 channels
    with pytest.raises(ValueError, match="stem"):
        hf_config(hybrid.config)


def test_export_round_trip_through_from_pretrained(tmp_path):
    from transformers import AutoImageProcessor, ViTForImageClassification

    torch.manual_seed(0)
    model = ViT(SMALL).eval()
    labels = {k: f"class {k}" for k in range(5)}
    export_pretrained(model, tmp_path, labels)
    loaded = ViTForImageClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.id2label == labels and loaded.config.layer_norm_eps == 1e-5
    x = torch.rand(2, 3, 8, 8)  # pixels in [0, 1]
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    pixels = processor(images=list(x), do_rescale=False, return_tensors="pt").pixel_values
    torch.testing.assert_close(pixels, normalize(x))  # same size: no resize, (x - 0.5) / 0.5
    torch.testing.assert_close(loaded(pixels).logits, model(normalize(x)), rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]


# ---------------------------------------------------------------- rollout, augmentation, training


def test_attention_rollout():
    T = 5
    uniform = [torch.full((1, 2, T, T), 1 / T)] * 3
    R = attention_rollout(uniform)
    torch.testing.assert_close(R.sum(-1), torch.ones(1, T))  # still a distribution per token
    identity = [torch.eye(T).expand(1, 2, T, T)] * 2
    torch.testing.assert_close(attention_rollout(identity), torch.eye(T)[None])  # nothing mixes
    A = torch.softmax(torch.randn(1, 2, T, T), -1)
    torch.testing.assert_close(attention_rollout([A], residual=0.0), A.mean(1))


def test_random_affine_without_motion_is_the_identity():
    x = torch.randn(3, 3, 16, 16)
    same = random_affine(x, torch.Generator().manual_seed(0), degrees=0.0, scale=0.0, shift=0.0)
    torch.testing.assert_close(same, x, rtol=1e-5, atol=1e-5)


def test_digits_data_is_normalised_rgb():
    data = digits_data(size=16)
    assert data.x_train.shape == (1438, 3, 16, 16) and data.x_test.shape == (359, 3, 16, 16)
    assert data.x_train.min() == -1.0 and data.x_train.max() == 1.0
    torch.testing.assert_close(data.x_train[:, 0], data.x_train[:, 2])  # grey over three channels
    assert len(DIGITS_LABELS) == 10


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_training_learns_a_small_task():
    torch.manual_seed(0)
    data = digits_data(size=8)
    x, y = data.x_train[:256], data.y_train[:256]
    config = dataclasses.replace(SMALL, num_classes=10)
    model = ViT(config)
    before = evaluate(model, x, y)
    history = train_classifier(model, x, y, TrainConfig(epochs=8, batch_size=32, lr=3e-3),
                               x_test=x, y_test=y, progress=False)
    assert len(history.loss) == len(history.test_accuracy) == 8 and history.seconds > 0
    assert history.loss[-1] < 0.6 * history.loss[0]
    assert history.test_accuracy[-1] > before + 0.3
    assert not model.training


# ---------------------------------------------------------------- the stand-in for google/vit-base-patch16-224


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_vit_standin_builds_and_loads_through_from_pretrained(monkeypatch, tmp_path, capsys):
    from transformers import AutoImageProcessor, ViTForImageClassification

    from course_utils.weights import resolver as hub
    from course_utils.weights import standins

    monkeypatch.setenv("COURSE_FORCE_STANDINS", "1")
    monkeypatch.setenv("COURSE_UTILS_CACHE", str(tmp_path))
    monkeypatch.setattr(standins, "VIT_TRAINING", TrainConfig(epochs=1))  # a tiny budget keeps the test fast
    resolved = hub.resolve("google/vit-base-patch16-224")
    assert not resolved.real
    assert "a 4-layer ViT trained by the course on digits" in capsys.readouterr().out
    model = ViTForImageClassification.from_pretrained(resolved.path).eval()
    assert model.config.id2label == DIGITS_LABELS and model.config.num_hidden_layers == 4
    processor = AutoImageProcessor.from_pretrained(resolved.path)
    assert processor.size == {"height": 16, "width": 16}
    notes = json.loads((Path(resolved.path) / "training.json").read_text())
    assert notes["training"]["epochs"] == 1 and 0.0 <= notes["test_accuracy"] <= 1.0
    data = digits_data()
    logits = model(data.x_test[:8]).logits  # digits as the lecture prepares them
    assert logits.shape == (8, 10)


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_the_lectures_model_becomes_the_standin(monkeypatch, tmp_path):
    from transformers import ViTForImageClassification

    from course_utils.weights import resolver as hub
    from course_utils.weights import standins

    monkeypatch.setenv("COURSE_UTILS_CACHE", str(tmp_path))
    monkeypatch.setenv("COURSE_FORCE_STANDINS", "1")
    torch.manual_seed(0)
    model = ViT(ViTConfig.tiny()).eval()
    history = train_classifier(model, *digits_data()[:2], TrainConfig(epochs=1), progress=False)
    history.test_accuracy.append(0.5)
    folder = standins.save_vit_standin(model, history, TrainConfig(epochs=1))
    assert folder == standins.standin_dir(standins.VIT_NAME) and standins.standin_built(standins.VIT_NAME)
    assert hub.resolve(standins.VIT_NAME, quiet=True).path == str(folder)  # no second training
    loaded = ViTForImageClassification.from_pretrained(folder).eval()
    x = digits_data().x_test[:4]
    torch.testing.assert_close(loaded(x).logits, model(x), rtol=1e-4, atol=1e-5)
    notes = json.loads((folder / "training.json").read_text())
    assert notes["training"]["epochs"] == 1 and notes["test_accuracy"] == 0.5

    def broken(folder):
        raise RuntimeError("out of disk")

    with pytest.raises(RuntimeError, match="out of disk"):  # a failed rebuild keeps the good copy
        standins.build_standin(standins.VIT_NAME, rebuild=True, build=broken)
    assert standins.standin_built(standins.VIT_NAME)


def test_from_hf_loads_a_transformers_vit_into_the_course_vit():
    from transformers import ViTForImageClassification

    from course_utils.interop.hf_vit import from_hf

    torch.manual_seed(0)
    config = hf_config(SMALL)
    config.layer_norm_eps = 1e-12  # the library's default, as in google/vit-base-patch16-224
    hf = ViTForImageClassification(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.2)  # every weight random: no copy hides behind an initial value
    model = from_hf(hf)
    assert model.config == SMALL and all(m.eps == 1e-12 for m in model.modules() if isinstance(m, nn.LayerNorm))
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(model(x), hf(x).logits, rtol=1e-4, atol=1e-5)
    back = ViTForImageClassification(config).eval()
    copy_to_hf(model, back)  # and the way back gives the same weights
    for (name, a), b in zip(hf.state_dict().items(), back.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
