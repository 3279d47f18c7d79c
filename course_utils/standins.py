"""The course's stand-ins, registered with the resolver (see course_utils.hub).

Each entry names the real checkpoint it replaces, a builder that trains a small model of the same
architecture with the course's own code on the course's own data and saves it in the library's
own format, and one line saying what it is. Builders import their heavy dependencies when called,
so importing this module costs nothing.
"""
from __future__ import annotations

from course_utils.hub import register_standin  # noqa: F401  (used by the registrations below)

# Chapters add their registrations here, e.g.
# register_standin("google/vit-base-patch16-224", build=_build_vit, about="...", version="1")



def _notes(name: str, recipe: str, size: int, training, history, **described) -> dict:
    """What a stand-in's training.json records: what it stands in for, how it was trained, how well it did."""
    from dataclasses import asdict

    import torch

    return {
        "what": f"stand-in for {name}, built by course_utils.standins", "recipe": recipe,
        "data": f"scikit-learn digits, {size} x {size}, grey repeated over RGB, normalised to [-1, 1]; "
                "1,438 train / 359 test",
        **described, "training": asdict(training), "torch": torch.__version__,
        "test_accuracy": round(history.test_accuracy[-1], 4), "seconds": round(history.seconds, 1),
    }


# ---------------------------------------------------------------- chapter 03: google/vit-base-patch16-224

VIT_NAME = "google/vit-base-patch16-224"
VIT_TRAINING = None  # None: the lecture's recipe, course_utils.vit.DIGITS_TRAINING (tests set a shorter one)


def _build_vit(folder, model=None, history=None, training=None):
    """The lecture's digits ViT (chapter 03) saved with ``save_pretrained`` beside a ``ViTImageProcessor``
    config, id2label and training.json. Trains it first (the same function and recipe as the lecture)
    unless the lecture hands over the ``model`` it trained, with its ``history`` and ``training`` config."""
    from dataclasses import asdict

    from course_utils.vit import DIGITS_LABELS, DIGITS_TRAINING, export_pretrained, train_digits_vit

    if model is None:
        training = VIT_TRAINING or DIGITS_TRAINING
        model, history = train_digits_vit(training=training, progress=True)
    export_pretrained(model, folder, DIGITS_LABELS, notes=_notes(
        VIT_NAME, "course_utils.vit.train_digits_vit (chapter 03's lecture run)", model.config.image_size,
        training or DIGITS_TRAINING, history, model=asdict(model.config)))


def save_vit_standin(model, history, training=None):
    """Install a trained digits ViT (the lecture's) as the stand-in for google/vit-base-patch16-224,
    replacing any cached copy; returns its folder. ``resolve`` hands it out from then on."""
    from course_utils.hub import build_standin

    return build_standin(VIT_NAME, rebuild=True,
                         build=lambda folder: _build_vit(folder, model, history, training))


register_standin(VIT_NAME, build=_build_vit, version="1",
                 about="a 4-layer ViT trained by the course on digits (16 px, 10 classes)")


# ---------------------------------------------------------------- chapter 04: Swin, BEiT, DeiT, ConvNeXt

CLASSIFIER_TRAINING = None  # None: each family's own recipe, classifiers.<FAMILY>.training (tests set a shorter one)
CLASSIFIER_STANDINS: dict[str, str] = {}  # real checkpoint -> the course_utils.classifiers family standing in for it


def _build_classifier(folder, name, model=None, history=None, training=None):
    """The tiny ``course_utils.classifiers`` family that stands in for ``name``, trained on digits and saved
    with ``save_pretrained`` beside the real checkpoint's image processor class, id2label and training.json.
    Trains it first unless a lecture hands over the transformers ``model`` it trained, with its
    ``history`` and ``training`` config."""
    from dataclasses import asdict

    from course_utils.classifiers import FAMILIES, export_classifier, train_family

    family = FAMILIES[CLASSIFIER_STANDINS[name]]
    if model is None:
        training = CLASSIFIER_TRAINING or family.training
        model, history = train_family(family, training, progress=True)
    export_classifier(model, family, folder, notes=_notes(
        name, f"course_utils.classifiers.train_family(FAMILIES[{family.name!r}])", family.image_size,
        training or family.training, history,
        family={k: v for k, v in asdict(family).items() if k != "training"}, parameters=model.num_parameters()))


def save_classifier_standin(name, model, history, training=None):
    """Install a transformers classifier a lecture trained (of the family registered for ``name``) as the
    stand-in for ``name``, replacing any cached copy; returns its folder."""
    from course_utils.hub import build_standin

    return build_standin(name, rebuild=True,
                         build=lambda folder: _build_classifier(folder, name, model, history, training))


def _register_classifier(name: str, family: str, about: str, version: str = "1") -> None:
    CLASSIFIER_STANDINS[name] = family
    register_standin(name, build=lambda folder: _build_classifier(folder, name), about=about, version=version)


_register_classifier("microsoft/swin-base-patch4-window7-224", "swin",
                     about="a 2-stage Swin trained by the course on digits (32 px, 10 classes)")
_register_classifier("microsoft/beit-base-patch16-224", "beit",
                     about="a 4-layer BEiT trained by the course on digits (16 px, 10 classes)")
_register_classifier("facebook/deit-base-patch16-224", "deit", version="2",  # 2: a ViTForImageClassification, as published
                     about="a 4-layer ViT (DeiT-B is one: no distillation token) trained by the course on digits "
                           "(16 px, 10 classes)")
_register_classifier("facebook/convnext-tiny-224", "convnext",
                     about="a 2-stage ConvNeXt trained by the course on digits (32 px, 10 classes)")


# ---------------------------------------------------------------- chapter 05: openai CLIP ViT-B/32, both libraries

def _clip_notes(name: str) -> dict:
    from course_utils.recipes import miniclip_record

    record = miniclip_record()
    return {"what": f"stand-in for {name}, built by course_utils.standins from the committed recipe mini-CLIP",
            **{k: record[k] for k in ("script", "config", "training", "seconds", "machine", "parameters", "quality")}}


def _build_clip_archive(folder):
    """The recipe mini-CLIP as a TorchScript archive, ``model.pt``, which ``clip.load(path)`` accepts."""
    import json

    from course_utils.clipformats import save_for_clip
    from course_utils.recipes import load_miniclip

    save_for_clip(load_miniclip(), folder / "model.pt")
    (folder / "training.json").write_text(json.dumps(_clip_notes("ViT-B/32"), indent=1) + "\n")


def _build_clip_hf(folder):
    """The recipe mini-CLIP as transformers' ``CLIPModel`` with a ``CLIPProcessor`` (openai's vocabulary)."""
    from course_utils.clipformats import save_for_transformers
    from course_utils.recipes import load_miniclip

    save_for_transformers(load_miniclip(), folder, notes=_clip_notes("openai/clip-vit-base-patch32"))


def _recipe_version() -> str:
    """The stand-ins follow the committed weights: a new recipe run gives a new version, so cached copies are rebuilt."""
    from pathlib import Path

    from course_utils.hub import _sha256

    weights = Path(__file__).parent / "weights" / "miniclip" / "model.safetensors"  # recipes.MINICLIP_DIR
    return "1-" + (_sha256(weights)[:12] if weights.is_file() else "missing")


_MINICLIP_ABOUT = "the course's recipe mini-CLIP trained on captioned shapes (32 px, 2-layer ViT and text transformer)"
_MINICLIP_VERSION = _recipe_version()  # hashes the 6.8 MB weights once per process (about 20 ms)
register_standin("ViT-B/32", build=_build_clip_archive, about=_MINICLIP_ABOUT, version=_MINICLIP_VERSION, entry="model.pt")
register_standin("openai/clip-vit-base-patch32", build=_build_clip_hf, about=_MINICLIP_ABOUT,
                 version=_MINICLIP_VERSION)


# ---------------------------------------------------------------- chapter 07: Stable Diffusion 1.x

def _sd_version() -> str:
    from pathlib import Path

    from course_utils.hub import _sha256

    folder = Path(__file__).parent / "weights" / "sd"  # recipes.SD_DIR
    files = [folder / "unet.safetensors", folder / "vae.safetensors"]
    if not all(f.is_file() for f in files):
        return "1-missing"
    return "1-" + "".join(_sha256(f)[:6] for f in files)


def _build_sd(folder):
    """The recipe's small Stable Diffusion as a ``StableDiffusionPipeline`` folder (``save_pretrained``)."""
    import json

    from course_utils.recipes import load_sd, sd_record
    from course_utils.sd import pipeline

    pipeline(load_sd()).save_pretrained(folder, safe_serialization=True)
    record = sd_record()
    notes = {"what": "stand-in for Stable Diffusion 1.x, built by course_utils.standins from the committed recipe",
             **{k: record.get(k) for k in ("script", "machine", "quality")},
             "vae": {k: record["vae"].get(k) for k in ("config", "parameters", "seconds")},
             "unet": {k: record["unet"].get(k) for k in ("config", "parameters", "seconds", "steps_done")}}
    (folder / "training.json").write_text(json.dumps(notes, indent=1, default=str) + "\n")


_SD_ABOUT = ("the course's small Stable Diffusion: mini-CLIP text encoder, VAE and UNet trained on captioned "
             "shapes (32 px images, 16x16x4 latents)")
register_standin("stable-diffusion-v1-5/stable-diffusion-v1-5", build=_build_sd, about=_SD_ABOUT,
                 version=_sd_version())
