"""The recorded experiments (course_utils/weights/experiments/): each record says what the code would run today, holds
every seed of every run, and the lectures' claims hold on it. The lectures re-run one run of each live (nbval), which
shows the record is what this code gives; these tests catch a change of the code that leaves the record behind."""
from dataclasses import asdict

import numpy as np
import pytest
import torch

from course_utils.models.classifiers import SmallCNN
from course_utils.models.clip import MiniCLIPConfig
from course_utils.training.classifier import DIGITS_TRAINING
from course_utils.weights import experiments as X


def test_the_norm_warmup_record_matches_the_code_and_holds_every_run():
    from dataclasses import replace

    from course_utils.models.vit import ViTConfig

    record = X.experiment_record("norm-warmup")
    assert record["training"] == asdict(X.NORM_TRAINING) and record["lrs"] == list(X.NORM_LRS)
    assert record["config"] == asdict(replace(ViTConfig.tiny(), depth=X.NORM_DEPTH))
    assert record["orders"] == list(X.NORM_ORDERS) and record["warmups"] == X.NORM_WARMUPS
    assert len(record["seeds"]) >= 3
    for key, low, high in (("accuracy", 0.0, 1.0), ("loss", 0.0, 10.0)):
        assert set(record[key]) == set(X.NORM_ORDERS), key
        for order, by_warmup in record[key].items():
            assert set(by_warmup) == set(X.NORM_WARMUPS), (key, order)
            for warmup, runs in by_warmup.items():
                runs = np.array(runs, dtype=float)  # (learning rates, seeds)
                assert runs.shape == (len(X.NORM_LRS), len(record["seeds"])), (key, order, warmup)
                assert ((runs >= low) & (runs <= high)).all(), (key, order, warmup, runs)
    for order in X.NORM_ORDERS:  # the record's models: the chapter's block, in the order named, NORM_DEPTH deep
        blocks = X.norm_model(order).blocks
        assert len(blocks) == X.NORM_DEPTH and all(b.pre_norm == (order == "pre-norm") for b in blocks)


def test_the_sweep_record_matches_the_code_and_holds_every_run():
    record = X.experiment_record("cnn-vs-vit")
    assert record["fractions"] == list(X.SWEEP_FRACTIONS)
    assert record["training"] == asdict(DIGITS_TRAINING) | {"min_steps": X.SWEEP_MIN_STEPS}
    assert len(record["seeds"]) >= 3, "a claim needs at least three seeds"
    assert set(record["accuracy"]) == set(X.SWEEP_MODELS)
    for name, runs in record["accuracy"].items():
        runs = np.array(runs, dtype=float)
        assert runs.shape == (len(X.SWEEP_FRACTIONS), len(record["seeds"])), name
        assert ((runs > 0.1) & (runs <= 1.0)).all(), (name, runs)


def test_the_finetuning_record_matches_the_code_and_holds_every_run():
    record = X.experiment_record("finetuning")
    assert record["training"] == asdict(X.FINETUNE_TRAINING) and record["sizes"] == list(X.FINETUNE_SIZES)
    assert record["test_images"] == X.FINETUNE_TEST and len(record["seeds"]) >= 3
    assert set(record["accuracy"]) == {"pretrained", "scratch"}
    for name, runs in record["accuracy"].items():
        runs = np.array(runs, dtype=float)  # (sizes, seeds, epochs)
        assert runs.shape == (len(X.FINETUNE_SIZES), len(record["seeds"]), X.FINETUNE_TRAINING.epochs), name
        assert ((runs > 0) & (runs <= 1.0)).all(), name


def test_the_clip_stems_record_matches_the_code_and_holds_every_run():
    record = X.experiment_record("clip-stems")
    assert record["training"] == asdict(X.STEMS_TRAINING)
    assert record["config"] == asdict(MiniCLIPConfig(image_resolution=X.STEMS_RESOLUTION))
    assert len(record["seeds"]) >= 3
    steps = list(range(X.STEMS_TRAINING.eval_every, X.STEMS_TRAINING.steps + 1, X.STEMS_TRAINING.eval_every))
    for name in ("plain", "hybrid"):
        runs = record["runs"][name]
        assert [r["seed"] for r in runs] == record["seeds"], name
        for r in runs:
            assert r["eval_step"] == steps and len(r["seen"]) == len(r["heldout"]) == len(steps), (name, r["seed"])
            assert len(r["loss"]) == len(r["logit_scale"]) == X.STEMS_TRAINING.steps, (name, r["seed"])


def test_the_samplers_record_matches_the_code_and_holds_every_run():
    record = X.experiment_record("samplers")
    assert record["training"] == asdict(X.SAMPLERS_TRAINING) and record["widths"] == list(X.SAMPLERS_WIDTHS)
    assert record["samples"] == X.SAMPLERS_N and len(record["seeds"]) >= 3
    names = ["DDPM, 1000 steps"] + [f"DDIM, {k} steps" for k in X.DDIM_STEPS]
    for run, seed in zip(record["runs"], record["seeds"], strict=True):
        assert run["seed"] == seed and len(run["first_losses"]) == 5
        for name in names:
            assert 0 <= run[name]["confident"] <= 1 and 1 <= run[name]["classes"] <= 10, (seed, name)


def test_the_samplers_model_is_the_chapter_s():
    torch.manual_seed(0)
    unet = X.samplers_model(0)
    assert list(unet.config.block_out_channels) == list(X.SAMPLERS_WIDTHS) and unet.config.sample_size == 8


def test_the_guidance_record_matches_the_code_and_holds_every_run():
    record = X.experiment_record("guidance")
    assert record["scales"] == list(X.GUIDANCE_SCALES) and record["sampling"] == X.GUIDANCE_SAMPLING
    assert len(record["seeds"]) >= 3 and len(record["runs"]) == len(X.GUIDANCE_SCALES)
    for scale, runs in zip(X.GUIDANCE_SCALES, record["runs"]):
        assert [(r["scale"], r["seed"]) for r in runs] == [(scale, seed) for seed in record["seeds"]]
        for r in runs:
            assert all(0 <= r[k] <= 1 for k in ("seen", "heldout", "diversity", "seen_colour", "seen_shape")), r


def test_the_sweep_models_are_the_chapter_s():
    assert sum(p.numel() for p in SmallCNN().parameters()) == 94_538  # "95 k parameters" in chapter 03
    torch.manual_seed(0)
    vit = X.sweep_model("ViT")
    torch.manual_seed(0)
    hybrid = X.sweep_model("hybrid")
    assert sum(p.numel() for p in hybrid.parameters()) > sum(p.numel() for p in vit.parameters())
    with pytest.raises(ValueError, match="expected one of"):
        X.sweep_model("ResNet")


def test_a_missing_record_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m course_utils recipe clip-stems"):
        X.experiment_record("clip-stems", folder=tmp_path)
