"""Recorded experiments: comparisons a lecture draws a conclusion from, run over three seeds by a committed script.

One seed cannot carry a claim ("the CNN wins on small data", "a conv stem helps CLIP generalise"): two runs of the
same recipe differ by a point or more. Three seeds of a whole comparison cost more CPU than a lecture can spend
live, so, like a recipe, a script runs them once and commits what it measured (``experiments/NAME.json``: the
configuration, every seed's numbers, the time and the machine). The lecture plots the record with its spread,
asserts its claims on it, and re-runs one of its runs live to show the record is what this code gives::

    python -m course_utils recipe norm-warmup    # chapter 02: post-norm and pre-norm, with and without warm-up
    python -m course_utils recipe cnn-vs-vit     # chapter 03: CNN, ViT and hybrid on 5% to 100% of the digits
    python -m course_utils recipe finetuning     # chapter 04: a pretrained backbone against scratch, 100 to 1,600 images
    python -m course_utils recipe clip-stems     # chapter 05: plain and hybrid mini-CLIP, held-out pairs
    python -m course_utils recipe samplers       # chapter 06: DDPM against DDIM, judged, from three trainings
    python -m course_utils recipe guidance       # chapter 07: guidance scales, adherence and diversity

``OMP_NUM_THREADS`` sets the threads they use.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from course_utils.data.digits import digits_data
from course_utils.eval.metrics import evaluate
from course_utils.models.classifiers import SmallCNN
from course_utils.models.clip import MiniCLIPConfig, build_clip
from course_utils.models.vit import ViT, ViTConfig
from course_utils.training.classifier import DIGITS_TRAINING, TrainConfig, train_classifier
from course_utils.training.clip import ClipTrainConfig, train_clip
from course_utils.training.diffusion import DiffusionTrainConfig
from course_utils.training.records import machine as _machine
from course_utils.training.records import read_record, write_record

__all__ = ["NORM_DEPTH", "NORM_LRS", "NORM_ORDERS", "NORM_TRAINING", "NORM_WARMUPS", "norm_model", "norm_run",
           "run_norm_warmup", "SWEEP_FRACTIONS", "SWEEP_MODELS", "SEEDS", "STEMS_TRAINING", "experiment_record", "run_cnn_vs_vit",
           "run_clip_stems", "run_finetuning", "finetune_run", "finetune_models", "FINETUNE_SIZES", "FINETUNE_TRAINING", "run_guidance", "guidance_run", "run_samplers", "samplers_run", "samplers_model", "samplers_judge", "SAMPLERS_TRAINING", "SAMPLERS_WIDTHS", "SAMPLERS_N", "DDIM_STEPS", "GUIDANCE_SCALES", "GUIDANCE_SEEDS", "stems_model", "sweep_run"]

EXPERIMENTS = Path(__file__).parent / "experiments"
SEEDS = (0, 1, 2)

# ---------------------------------------------------------------- chapter 03: CNN, ViT and hybrid against data size

SWEEP_FRACTIONS = (0.05, 0.1, 0.25, 1.0)  # of the 1,438 training digits
SWEEP_MODELS = ("CNN", "ViT", "hybrid")
SWEEP_MIN_STEPS = 300  # a small subset gets more epochs, so that every run takes at least this many steps


def sweep_model(name: str) -> torch.nn.Module:
    """A fresh model of the sweep (seed torch first): the CNN, the chapter's tiny ViT or its hybrid."""
    builders = {"CNN": SmallCNN, "ViT": lambda: ViT(ViTConfig.tiny()),
                "hybrid": lambda: ViT(replace(ViTConfig.tiny(), stem_channels=16))}
    if name not in builders:
        raise ValueError(f"unknown model {name!r}: expected one of {list(builders)}")
    return builders[name]()


def sweep_run(name: str, fraction: float, seed: int, data=None) -> float:
    """Train ``name`` on ``fraction`` of the training digits with chapter 03's recipe; its test accuracy.

    The seed picks the subset (generator seed ``1 + seed``), the initialisation and the order of the batches."""
    data = data if data is not None else digits_data(size=16, channels=3)
    n = round(fraction * len(data.x_train))
    subset = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(1 + seed))[:n]
    epochs = max(DIGITS_TRAINING.epochs, math.ceil(SWEEP_MIN_STEPS / math.ceil(n / DIGITS_TRAINING.batch_size)))
    torch.manual_seed(seed)
    model = sweep_model(name)
    train_classifier(model, data.x_train[subset], data.y_train[subset], replace(DIGITS_TRAINING, epochs=epochs,
                                                                                seed=seed), progress=False)
    return evaluate(model, data.x_test, data.y_test)


def run_cnn_vs_vit(out: Path = EXPERIMENTS, seeds=SEEDS) -> dict:
    """Every model at every fraction for every seed; writes ``cnn-vs-vit.json``."""
    from tqdm.auto import tqdm

    data = digits_data(size=16, channels=3)
    start = time.perf_counter()
    accuracy = {name: [[None] * len(seeds) for _ in SWEEP_FRACTIONS] for name in SWEEP_MODELS}
    runs = [(i, f, j, s, name) for i, f in enumerate(SWEEP_FRACTIONS) for j, s in enumerate(seeds) for name in SWEEP_MODELS]
    for i, fraction, j, seed, name in tqdm(runs, desc="CNN vs ViT vs hybrid, 3 seeds"):
        accuracy[name][i][j] = round(sweep_run(name, fraction, seed, data), 4)
    return _write(out, "cnn-vs-vit", {
        "what": "chapter 03: test accuracy on the digits of a small CNN, the tiny ViT and its hybrid (conv stem), "
                "trained on a fraction of the training digits, for several seeds",
        "training": asdict(DIGITS_TRAINING) | {"min_steps": SWEEP_MIN_STEPS},
        "fractions": list(SWEEP_FRACTIONS), "sizes": [round(f * len(data.x_train)) for f in SWEEP_FRACTIONS],
        "seeds": list(seeds), "test_images": len(data.x_test),
        "accuracy": accuracy,  # accuracy[model][fraction index][seed index]
    }, start)


# ---------------------------------------------------------------- chapter 04: fine-tuning against training from scratch

FINETUNE_SIZES = (100, 200, 400, 800, 1600)  # training images of shapes (nested: the first n of one set)
FINETUNE_TRAINING = TrainConfig(epochs=20, batch_size=32, lr=1e-3, weight_decay=0.05, warmup=0.1, augment=False,
                                seed=0)
FINETUNE_TEST = 500  # test images of shapes (another seed)


def finetune_models(seed: int):
    """Chapter 04's two starts for the 5 shapes, initialised from ``seed``: its digits ViT stand-in with a new head
    (``from_pretrained``), and the same architecture from random weights."""
    from transformers import ViTConfig as HFViTConfig
    from transformers import ViTForImageClassification
    from transformers.utils.logging import disable_progress_bar, set_verbosity_error

    from course_utils.data.shapes import SHAPES
    from course_utils.weights.standins import build_standin

    set_verbosity_error()  # the "newly initialized: classifier" warning is what we ask for
    disable_progress_bar()
    backbone = build_standin("google/vit-base-patch16-224")
    labels = dict(enumerate(SHAPES))
    new = dict(num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(seed)
    pretrained = ViTForImageClassification.from_pretrained(backbone, ignore_mismatched_sizes=True, **new)
    torch.manual_seed(seed)
    scratch = ViTForImageClassification(HFViTConfig.from_pretrained(backbone, **new))
    return {"pretrained": pretrained, "scratch": scratch}


def finetune_run(size: int, seed: int) -> dict[str, list[float]]:
    """Both starts trained on the first ``size`` training shapes with ``FINETUNE_TRAINING`` (seed ``seed``): each
    one's test accuracy after every epoch."""
    from course_utils.data.digits import normalize
    from course_utils.data.shapes import make_shapes
    from course_utils.models.classifiers import ImagesToLogits

    train, test = make_shapes(size, size=16, seed=0), make_shapes(FINETUNE_TEST, size=16, seed=1)
    curves = {}
    for name, net in finetune_models(seed).items():
        run = train_classifier(ImagesToLogits(net), normalize(train.images), train.shape,
                               replace(FINETUNE_TRAINING, seed=seed), normalize(test.images), test.shape,
                               progress=False)
        curves[name] = [round(a, 4) for a in run.test_accuracy]
    return curves


def run_finetuning(out: Path = EXPERIMENTS, seeds=SEEDS) -> dict:
    """Both starts at every training size for every seed; writes ``finetuning.json``."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    curves = {name: [[None] * len(seeds) for _ in FINETUNE_SIZES] for name in ("pretrained", "scratch")}
    runs = [(i, size, j, seed) for i, size in enumerate(FINETUNE_SIZES) for j, seed in enumerate(seeds)]
    for i, size, j, seed in tqdm(runs, desc="fine-tuning against scratch, 3 seeds"):
        for name, curve in finetune_run(size, seed).items():
            curves[name][i][j] = curve
    return _write(out, "finetuning", {
        "what": "chapter 04: test accuracy on the 5 shapes after every epoch, of chapter 04's digits ViT fine-tuned "
                "with a new head and of the same architecture trained from scratch, on several numbers of training "
                "images, for several seeds",
        "training": asdict(FINETUNE_TRAINING), "sizes": list(FINETUNE_SIZES), "test_images": FINETUNE_TEST,
        "seeds": list(seeds),
        "accuracy": curves,  # accuracy[start][size index][seed index][epoch]
    }, start)


# ---------------------------------------------------------------- chapter 05: plain and hybrid mini-CLIP

STEMS_TRAINING = ClipTrainConfig(steps=800, batch_size=128, lr=2e-3, warmup=0.3, eval_every=100, seed=0)
STEMS_RESOLUTION = 16  # pixels: 4-pixel patches make 16 tokens


def stems_model(stem_channels: int, seed: int):
    """A fresh 16-pixel mini-CLIP: plain (``stem_channels=0``) or with a conv stem, initialised from ``seed``."""
    torch.manual_seed(seed)
    return build_clip(MiniCLIPConfig(image_resolution=STEMS_RESOLUTION, stem_channels=stem_channels))


def run_clip_stems(out: Path = EXPERIMENTS, seeds=SEEDS, stem_channels: int = 16) -> dict:
    """Plain and hybrid mini-CLIPs trained with ``STEMS_TRAINING`` for every seed; writes ``clip-stems.json``."""
    runs = {"plain": [], "hybrid": []}
    start = time.perf_counter()
    for seed in seeds:
        for name, stem in (("plain", 0), ("hybrid", stem_channels)):
            history = train_clip(stems_model(stem, seed), replace(STEMS_TRAINING, seed=seed),
                                 desc=f"mini-CLIP {name}, seed {seed}")
            runs[name].append({"seed": seed, "seconds": round(history.seconds, 1), "eval_step": history.eval_step,
                               "seen": history.seen_accuracy, "heldout": history.heldout_accuracy,
                               "loss": [round(x, 5) for x in history.loss],
                               "logit_scale": [round(x, 4) for x in history.logit_scale]})
    return _write(out, "clip-stems", {
        "what": "chapter 05: zero-shot accuracy of a plain and a hybrid (conv stem) mini-CLIP on seen and held-out "
                "colour-shape pairs, the same training for several seeds",
        "config": asdict(MiniCLIPConfig(image_resolution=STEMS_RESOLUTION)), "stem_channels": stem_channels,
        "training": asdict(STEMS_TRAINING), "seeds": list(seeds), "runs": runs,
    }, start)


# ---------------------------------------------------------------- chapter 06: DDPM against DDIM

SAMPLERS_WIDTHS = (16, 32)  # the lecture's denoiser: UNet2DModel on 8 x 8 digits, these channels
SAMPLERS_TRAINING = DiffusionTrainConfig(steps=900, batch_size=128, lr=2e-3, seed=0)
SAMPLERS_N = 100  # samples per sampler
DDIM_STEPS = (10, 25, 50)


def samplers_model(seed: int) -> torch.nn.Module:
    """A fresh copy of chapter 06's denoiser, initialised from ``seed``."""
    from course_utils.models.diffusion import build_denoiser

    torch.manual_seed(seed)
    return build_denoiser(image_size=8, channels=1, widths=SAMPLERS_WIDTHS)


def samplers_run(unet, judge, betas, n: int = SAMPLERS_N) -> dict:
    """Chapter 06's comparison for one trained ``unet``: DDPM over all steps (noise seed 1) and DDIM at each of
    ``DDIM_STEPS`` (noise seed 3), each judged (share confident, digits seen) and timed."""
    from course_utils.eval.metrics import sample_quality
    from course_utils.models.diffusion import sample_ddim, sample_ddpm

    shape, results = (n, 1, 8, 8), {}
    runs = [("DDPM, 1000 steps", lambda g: sample_ddpm(unet, shape, betas, generator=g, progress=False), 1)]
    runs += [(f"DDIM, {k} steps", lambda g, k=k: sample_ddim(unet, shape, betas, k, generator=g, progress=False), 3)
             for k in DDIM_STEPS]
    for name, sample, noise_seed in runs:
        start = time.perf_counter()
        images = sample(torch.Generator().manual_seed(noise_seed)).images
        seconds = time.perf_counter() - start
        quality = sample_quality(judge, images)
        results[name] = {"confident": round(quality.confident, 4), "classes": quality.classes,
                         "seconds": round(seconds, 2)}
    return results


def samplers_judge():
    """The judge of chapter 06: a digit classifier trained on the real training digits only (8 x 8, in [-1, 1])."""
    from course_utils.data.digits import digits_split
    from course_utils.training.classifier import train_digit_judge

    split = digits_split(8)
    return train_digit_judge(split.x_train * 2 - 1, split.y_train, epochs=20)


def run_samplers(out: Path = EXPERIMENTS, seeds=SEEDS) -> dict:
    """Train chapter 06's denoiser for every seed and compare its samplers; writes ``samplers.json``."""
    from course_utils.data.digits import digits
    from course_utils.models.diffusion import linear_betas
    from course_utils.training.diffusion import train_diffusion

    images, betas, judge = digits(8)[0] * 2 - 1, linear_betas(1000), samplers_judge()
    start, runs = time.perf_counter(), []
    for seed in seeds:
        unet = samplers_model(seed)
        history = train_diffusion(unet, images, betas, replace(SAMPLERS_TRAINING, seed=seed),
                                  desc=f"DDPM on digits, seed {seed}")
        runs.append({"seed": seed, "training_seconds": round(history.seconds, 1),
                     "first_losses": [round(x, 5) for x in history.loss[:5]], **samplers_run(unet, judge, betas)})
    return _write(out, "samplers", {
        "what": "chapter 06: the share of DDPM and DDIM samples that a digit classifier (trained on real digits only) "
                "reads with probability above 0.9, and the digits they cover, for denoisers trained from several seeds",
        "widths": list(SAMPLERS_WIDTHS), "training": asdict(SAMPLERS_TRAINING), "samples": SAMPLERS_N,
        "seeds": list(seeds), "runs": runs,
    }, start)


# ---------------------------------------------------------------- chapter 07: classifier-free guidance

GUIDANCE_SCALES = (1.0, 2.0, 3.0, 5.0, 7.5)
GUIDANCE_SEEDS = (1, 2, 3)  # the starting noise of the sampled images
GUIDANCE_SAMPLING = {"steps": 25, "seen_per_pair": 2, "heldout_per_pair": 4}  # DDIM steps; images per prompt


def guidance_run(parts, judge, scale: float, seed: int) -> dict:
    """One guidance scale, one seed: the judged adherence on seen and held-out prompts, and the held-out diversity."""
    from course_utils.eval import metrics

    seen, held = (metrics.prompt_adherence(parts, judge, pairs=pairs, per_pair=GUIDANCE_SAMPLING[f"{pairs}_per_pair"],
                                           guidance_scale=scale, steps=GUIDANCE_SAMPLING["steps"], seed=seed)
                  for pairs in ("seen", "heldout"))
    return {"scale": scale, "seed": seed, "seen": seen["both"], "seen_colour": seen["colour"],
            "seen_shape": seen["shape"], "heldout": held["both"],
            "diversity": round(metrics.diversity(judge, held["images"], GUIDANCE_SAMPLING["heldout_per_pair"]), 4),
            "seconds_per_64": round(seen["seconds"] / seen["n"] * 64, 2)}


def run_guidance(parts, judge, out: Path = EXPERIMENTS, seeds=GUIDANCE_SEEDS) -> dict:
    """The recipe's small Stable Diffusion (``parts``, from ``recipes.load_sd``) at every guidance scale for every seed,
    judged by ``judge`` (``recipes.load_judge``); writes ``guidance.json``."""
    start = time.perf_counter()
    runs = [[guidance_run(parts, judge, scale, seed) for seed in seeds] for scale in GUIDANCE_SCALES]
    return _write(out, "guidance", {
        "what": "chapter 07: prompt adherence (colour and shape both right, by the judge) on the 21 seen and 4 held-out "
                "colour-shape prompts, and diversity, of the recipe's small Stable Diffusion at each guidance scale, "
                "for several seeds of the starting noise",
        "scales": list(GUIDANCE_SCALES), "seeds": list(seeds), "sampling": GUIDANCE_SAMPLING,
        "runs": runs,  # runs[scale index][seed index]
    }, start)


# ---------------------------------------------------------------- chapter 02: post-norm, pre-norm and warm-up

NORM_ORDERS = ("post-norm", "pre-norm")
NORM_LRS = (2e-3, 5e-3, 1e-2)  # peak learning rates
NORM_WARMUPS = {"no warm-up": 0.0, "warm-up": 0.1}  # the one-cycle schedule's warm-up, a fraction of the steps
NORM_DEPTH = 6  # encoder blocks: deeper than the tiny ViT's four
NORM_TRAINING = replace(DIGITS_TRAINING, epochs=10)  # 230 steps of chapter 03's recipe; lr and warm-up vary


def norm_model(order: str) -> ViT:
    """A fresh tiny ViT, ``NORM_DEPTH`` blocks deep, in either order (seed torch first): "pre-norm" is ViT's own
    block; "post-norm" swaps in the original transformer's (``TransformerEncoderBlock(pre_norm=False)``). Both keep
    the embedding, the final LayerNorm and the head."""
    from course_utils.models.transformer import TransformerEncoderBlock

    if order not in NORM_ORDERS:
        raise ValueError(f"unknown order {order!r}: expected one of {list(NORM_ORDERS)}")
    config = replace(ViTConfig.tiny(), depth=NORM_DEPTH)
    model = ViT(config)
    if order == "post-norm":
        model.blocks = torch.nn.ModuleList([TransformerEncoderBlock(config.dim, config.num_heads, config.mlp_dim,
                                                                    pre_norm=False) for _ in range(config.depth)])
    return model


def norm_run(order: str, lr: float, warmup: str, seed: int, data=None) -> tuple[float, float]:
    """Train ``norm_model(order)`` on all the training digits with ``NORM_TRAINING`` at peak learning rate ``lr``,
    with or without warm-up (a key of ``NORM_WARMUPS``); its test accuracy and its last epoch's training loss."""
    data = data if data is not None else digits_data(size=16, channels=3)
    torch.manual_seed(seed)
    model = norm_model(order)
    history = train_classifier(model, data.x_train, data.y_train,
                               replace(NORM_TRAINING, lr=lr, warmup=NORM_WARMUPS[warmup], seed=seed), progress=False)
    return evaluate(model, data.x_test, data.y_test), history.loss[-1]


def run_norm_warmup(out: Path = EXPERIMENTS, seeds=SEEDS) -> dict:
    """Both orders, with and without warm-up, at every learning rate, for every seed; writes ``norm-warmup.json``."""
    from tqdm.auto import tqdm

    data = digits_data(size=16, channels=3)
    start = time.perf_counter()
    accuracy, loss = ({order: {w: [[None] * len(seeds) for _ in NORM_LRS] for w in NORM_WARMUPS} for order in NORM_ORDERS}
                      for _ in range(2))
    runs = [(i, lr, j, s, order, w) for i, lr in enumerate(NORM_LRS) for j, s in enumerate(seeds)
            for order in NORM_ORDERS for w in NORM_WARMUPS]
    for i, lr, j, seed, order, warmup in tqdm(runs, desc="post-norm and pre-norm, with and without warm-up"):
        acc, last = norm_run(order, lr, warmup, seed, data)
        accuracy[order][warmup][i][j], loss[order][warmup][i][j] = round(acc, 4), round(last, 4)
    return _write(out, "norm-warmup", {
        "what": "chapter 02: test accuracy on the digits of a 6-block tiny ViT with post-norm or pre-norm blocks, "
                "trained with and without a learning-rate warm-up at several peak learning rates, for several seeds",
        "config": asdict(replace(ViTConfig.tiny(), depth=NORM_DEPTH)), "training": asdict(NORM_TRAINING),
        "orders": list(NORM_ORDERS), "lrs": list(NORM_LRS), "warmups": NORM_WARMUPS,
        "seeds": list(seeds), "test_images": len(data.x_test),
        "accuracy": accuracy,  # accuracy[order][warm-up][lr index][seed index]
        "loss": loss,  # the last epoch's mean training loss, the same layout
    }, start)


# ---------------------------------------------------------------- the command

def run(args) -> int:
    """``python -m course_utils recipe NAME``: a recorded experiment (numbers over three seeds) here; every other name
    is a recipe of weights, in ``recipes.run``. (This way round, the recipes never import the experiments, which
    import the stand-ins, which import the recipes.)"""
    from course_utils.device import default_threads
    from course_utils.weights import recipes

    runners = {"norm-warmup": run_norm_warmup, "cnn-vs-vit": run_cnn_vs_vit, "finetuning": run_finetuning,
               "clip-stems": run_clip_stems, "samplers": run_samplers,
               "guidance": lambda out: run_guidance(recipes.load_sd(), recipes.load_judge(), out)}
    if args.name not in runners or args.measure:  # recipes.run refuses --measure but for sd
        return recipes.run(args)
    torch.set_num_threads(default_threads())  # OMP_NUM_THREADS, when set, wins
    record = runners[args.name](args.out or EXPERIMENTS)
    print(f"{args.name}: {record['seconds'] / 60:.1f} min, written to {args.out or EXPERIMENTS}")
    return 0


# ---------------------------------------------------------------- records

def _write(out: Path, name: str, record: dict, start: float) -> dict:
    """Write ``NAME.json``: ``record`` with the command that made it (after "what"), its time and the machine."""
    record = {"what": record["what"], "script": f"python -m course_utils recipe {name} (course_utils/weights/experiments.py)",
              **record, "seconds": round(time.perf_counter() - start, 1), "machine": _machine()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_record(out / f"{name}.json", record)
    return record


def experiment_record(name: str, folder: Path = EXPERIMENTS) -> dict:
    """A committed experiment's record (``norm-warmup``, ``cnn-vs-vit``, ``finetuning``, ``clip-stems``, ``samplers`` or ``guidance``)."""
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no recorded experiment {name!r} at {path}: run `python -m course_utils recipe {name}`")
    return read_record(path)
