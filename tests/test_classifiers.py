"""Chapter 04's stand-ins: Swin, BEiT, DeiT and ConvNeXt trained on digits, loaded through the Auto classes."""
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.data.digits import DIGITS_LABELS, digits_data, digits_split, normalize
from course_utils.eval.metrics import evaluate
from course_utils.models.classifiers import FAMILIES, ImagesToLogits, build_model
from course_utils.training.classifier import TrainConfig, train_classifier, train_family

STANDINS = {  # the real checkpoint -> its family, as course_utils.weights.standins registers them
    "microsoft/swin-base-patch4-window7-224": "swin",
    "microsoft/beit-base-patch16-224": "beit",
    "facebook/deit-base-patch16-224": "deit",
    "facebook/convnext-tiny-224": "convnext",
}


def as_uint8_rgb(images: torch.Tensor) -> list[np.ndarray]:
    """(N, 1, H, W) floats in [0, 1] -> N arrays (H, W, 3) uint8: what a user hands a processor."""
    grey = (images[:, 0] * 255).round().to(torch.uint8).numpy()  # (N, H, W)
    return [np.repeat(g[:, :, None], 3, axis=2) for g in grey]


def test_the_registrations_match_the_families():
    from course_utils.weights import standins

    assert standins.CLASSIFIER_STANDINS == STANDINS
    from course_utils.weights import recipes

    assert recipes.CLASSIFIER_RECIPES == STANDINS  # the recipe trains exactly the registered stand-ins


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
@pytest.mark.parametrize("name", STANDINS)
def test_standin_builds_and_loads_through_the_auto_classes(name, monkeypatch, tmp_path, capsys):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from course_utils.weights import resolver as hub
    from course_utils.weights import standins

    family = FAMILIES[STANDINS[name]]
    size = family.image_size
    monkeypatch.setenv("COURSE_FORCE_STANDINS", "1")
    monkeypatch.setenv("COURSE_UTILS_CACHE", str(tmp_path))
    monkeypatch.setattr(standins, "CLASSIFIER_TRAINING", TrainConfig(epochs=1))  # a tiny budget keeps the test fast
    resolved = hub.resolve(name)
    assert not resolved.real
    banner = capsys.readouterr().out
    assert "trained by the course on digits" in banner and f"({size} px, 10 classes)" in banner

    model = AutoModelForImageClassification.from_pretrained(resolved.path).eval()
    assert type(model).__name__ == family.model and model.config.model_type == family.model_type
    assert model.config.id2label == DIGITS_LABELS
    processor = AutoImageProcessor.from_pretrained(resolved.path)
    assert type(processor).__name__ == family.processor

    x = digits_split(size=size).x_test[:8]  # (8, 1, size, size) in [0, 1]
    pixels = processor(images=as_uint8_rgb(x), return_tensors="pt").pixel_values
    assert pixels.shape == (8, 3, size, size)
    expected = normalize(x.expand(-1, 3, -1, -1))  # what the model was trained on
    torch.testing.assert_close(pixels, expected, rtol=0, atol=1 / 255 + 1e-6)  # 8-bit rounding, times 1/std = 2
    raw = processor(images=as_uint8_rgb(digits_split(size=8).x_test[:2]), return_tensors="pt").pixel_values
    assert raw.shape == (2, 3, size, size)  # other sizes are resized to the model's

    with torch.no_grad():
        assert model(pixel_values=pixels).logits.shape == (8, 10)
    notes = json.loads((Path(resolved.path) / "training.json").read_text())
    assert notes["training"]["epochs"] == 1 and notes["parameters"] == model.num_parameters()
    assert 0.0 <= notes["test_accuracy"] <= 1.0


@pytest.mark.parametrize("name", STANDINS)
def test_the_committed_standin_is_todays_recipe_and_scores_what_it_records(name, monkeypatch, tmp_path):
    """Without a training budget set, a stand-in is the committed recipe's weights, copied (no training): its record
    must be of the family's recipe as the code has it today, and the copy must score what the record says."""
    from dataclasses import asdict

    from transformers import AutoModelForImageClassification

    from course_utils.training.classifier import FAMILY_TRAINING
    from course_utils.weights import resolver as hub
    from course_utils.weights import standins

    family = FAMILIES[STANDINS[name]]
    record = json.loads((standins.committed_classifier(name) / "training.json").read_text())
    assert record["training"] == json.loads(json.dumps(asdict(FAMILY_TRAINING[family.name]))), \
        "the committed weights were trained with another recipe: run `python -m course_utils recipe classifiers`"
    assert record["test_accuracy"] >= 0.95, record["test_accuracy"]

    monkeypatch.setenv("COURSE_UTILS_CACHE", str(tmp_path))
    monkeypatch.setenv("COURSE_FORCE_STANDINS", "1")
    from course_utils.training import classifier

    monkeypatch.setattr(classifier, "train_family",
                        lambda *a, **k: pytest.fail("the stand-in trained instead of copying the committed weights"))
    model = AutoModelForImageClassification.from_pretrained(hub.resolve(name, quiet=True).path).eval()
    data = digits_data(family.image_size)
    with torch.no_grad():
        accuracy = (model(pixel_values=data.x_test).logits.argmax(-1) == data.y_test).float().mean().item()
    assert abs(accuracy - record["test_accuracy"]) <= 1 / len(data.y_test) + 1e-6, (accuracy, record["test_accuracy"])


@pytest.mark.parametrize("name", STANDINS)
def test_each_standin_has_the_published_checkpoints_classes(name):
    """What AutoModelForImageClassification and AutoImageProcessor pick for the real checkpoint (its published
    config.json and preprocessor_config.json) is what they pick for its stand-in."""
    from transformers import AutoImageProcessor

    from course_utils.weights.rehearse import published_files

    published = published_files(name)
    family = FAMILIES[STANDINS[name]]
    assert [family.model] == published["config.json"]["architectures"]
    assert family.model_type == published["config.json"]["model_type"]
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "preprocessor_config.json").write_text(json.dumps(published["preprocessor_config.json"]))
        assert type(AutoImageProcessor.from_pretrained(folder)).__name__ == family.processor


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
@pytest.mark.parametrize("family", FAMILIES)
def test_a_short_run_on_digits_learns(family):
    family = FAMILIES[family]
    data = digits_data(family.image_size)
    torch.manual_seed(0)
    model = ImagesToLogits(build_model(family))
    before = evaluate(model, data.x_test, data.y_test)
    history = train_classifier(model, data.x_train, data.y_train,
                               TrainConfig(epochs=3, batch_size=32, lr=2e-3, augment=False), progress=False)
    after = evaluate(model, data.x_test, data.y_test)  # on the 359 digits it never trained on
    assert history.loss[-1] < 0.85 * history.loss[0]
    assert after >= 0.25 and after > before + 0.15  # chance is 0.1 (3 epochs reach 0.33-0.88 depending on the family)


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_the_lectures_model_becomes_the_standin(monkeypatch, tmp_path):
    from transformers import AutoModelForImageClassification

    from course_utils.weights import resolver as hub
    from course_utils.weights import standins

    monkeypatch.setenv("COURSE_UTILS_CACHE", str(tmp_path))
    monkeypatch.setenv("COURSE_FORCE_STANDINS", "1")
    name, family = "facebook/deit-base-patch16-224", FAMILIES["deit"]
    model, history = train_family(family, TrainConfig(epochs=1), progress=False)
    folder = standins.save_classifier_standin(name, model, history, TrainConfig(epochs=1))
    assert hub.resolve(name, quiet=True).path == str(folder)  # no second training
    loaded = AutoModelForImageClassification.from_pretrained(folder).eval()
    x = digits_data(family.image_size).x_test[:4]
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, model(pixel_values=x).logits)
    notes = json.loads((folder / "training.json").read_text())
    assert notes["test_accuracy"] == round(history.test_accuracy[-1], 4)
