"""The course's stand-ins: for each real checkpoint, a small model of the same architecture that the same public call
loads (``course_utils.weights.resolver.resolve`` hands one out where the real weights cannot be had).

``STANDINS`` is the registry, filled below, one ``register_standin`` per checkpoint: a builder that trains the model with
the course's own code on the course's own data and saves it in the library's own format, and one line saying what it
is. Builders import their heavy dependencies when called, so importing this module costs nothing."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from course_utils.paths import course_cache_dir
from course_utils.training.records import write_record
from course_utils.weights.cache import build_checked, folder_problem, sha256_file

# ---------------------------------------------------------------- the registry

@dataclass(frozen=True)
class StandIn:
    build: Callable[[Path], None]  # writes the stand-in's files into the folder it is given
    about: str                     # what the stand-in is, for the banner
    version: str                   # bump to rebuild cached copies when the recipe changes
    entry: str = ""                # the file inside the folder that the loading call takes ("" = the folder)


STANDINS: dict[str, StandIn] = {}


class CheckpointUnavailable(RuntimeError):
    """Neither the real checkpoint nor a stand-in can be had."""


def register_standin(name: str, build: Callable[[Path], None], about: str, version: str = "1", entry: str = "") -> None:
    """Register how to build the stand-in for the real checkpoint ``name``.

    ``build(folder)`` writes files that the library's own loading call accepts; it is called once, and the folder reused
    until ``version`` changes. ``entry`` names the file inside the folder that the loading call takes (``clip.load`` wants a
    file, ``from_pretrained`` the folder)."""
    STANDINS[name] = StandIn(build=build, about=about, version=version, entry=entry)


def standin_dir(name: str) -> Path:
    safe = name.replace("/", "--")
    return course_cache_dir() / "standins" / f"{safe}-v{STANDINS[name].version}"


def standin_built(name: str) -> bool:
    """True when the stand-in for ``name`` is built and intact (every file as its manifest says)."""
    return name in STANDINS and standin_problem(name) is None


def standin_problem(name: str) -> str | None:
    """What is wrong with the cached stand-in for ``name`` ("is damaged (...)"), or None when it is intact."""
    return folder_problem(standin_dir(name), STANDINS[name].version)


def build_standin(name: str, rebuild: bool = False, build: Callable[[Path], None] | None = None) -> Path:
    """The stand-in's folder, built first when missing and rebuilt (with a message) when half-built, outdated or damaged.
    ``build`` replaces the registered builder for this call (a lecture installing the model it has just trained);
    ``rebuild=True`` replaces a cached copy."""
    if name not in STANDINS:
        raise CheckpointUnavailable(f"the course registers no stand-in for {name!r}")
    return build_checked(standin_dir(name), STANDINS[name].version, build or STANDINS[name].build,
                         f"the cached stand-in for {name}", rebuild)


# ---------------------------------------------------------------- chapter 03: google/vit-base-patch16-224

VIT_NAME = "google/vit-base-patch16-224"
VIT_TRAINING = None  # None: the lecture's recipe, course_utils.training.classifier.DIGITS_TRAINING (tests set a shorter one)


def _build_vit(folder, model=None, history=None, training=None):
    """The lecture's digits ViT (chapter 03) saved with ``save_pretrained`` beside a ``ViTImageProcessor`` config, id2label
    and training.json; trained first unless the lecture hands over its ``model``, ``history`` and ``training`` config."""
    from course_utils.data.digits import DIGITS_LABELS
    from course_utils.interop.hf_vit import export_pretrained
    from course_utils.training.classifier import DIGITS_TRAINING, train_digits_vit
    from course_utils.weights.recipes import digits_notes

    if model is None:
        training = VIT_TRAINING or DIGITS_TRAINING
        model, history = train_digits_vit(training=training, progress=True)
    export_pretrained(model, folder, DIGITS_LABELS)
    write_record(folder / "training.json", digits_notes(
        VIT_NAME, "course_utils.training.classifier.train_digits_vit (chapter 03's lecture run)", model.config.image_size,
        training or DIGITS_TRAINING, history, model=asdict(model.config)))


def save_vit_standin(model, history, training=None):
    """Install a trained digits ViT (the lecture's) as the stand-in for google/vit-base-patch16-224,
    replacing any cached copy; returns its folder. ``resolve`` hands it out from then on."""
    return build_standin(VIT_NAME, rebuild=True, build=lambda folder: _build_vit(folder, model, history, training))


register_standin(VIT_NAME, build=_build_vit, version="1",
                 about="a 4-layer ViT trained by the course on digits (16 px, 10 classes)")


# ---------------------------------------------------------------- chapter 04: Swin, BEiT, DeiT, ConvNeXt

CLASSIFIER_TRAINING = None  # None: the committed recipe weights; a TrainConfig trains afresh (tests set a short one)
CLASSIFIER_STANDINS: dict[str, str] = {}  # real checkpoint -> the course_utils.models.classifiers family standing in for it
CLASSIFIERS_DIR = Path(__file__).parent / "classifiers"  # recipes.CLASSIFIERS_DIR: python -m course_utils recipe classifiers
_CLASSIFIER_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "training.json")


def committed_classifier(name: str) -> Path:
    """The folder of the committed recipe weights for ``name`` (``recipes.train_classifiers`` writes it)."""
    return CLASSIFIERS_DIR / name.replace("/", "--")


def _build_classifier(folder, name, model=None, history=None, training=None):
    """The tiny ``course_utils.models.classifiers`` family that stands in for ``name``, saved as :func:`_build_vit` saves the
    ViT. A lecture hands over its ``model``, ``history`` and ``training``; otherwise the committed recipe weights are
    copied (about 2 minutes of training on 2 cores, done once by ``python -m course_utils recipe classifiers``), unless
    ``training`` or ``CLASSIFIER_TRAINING`` asks for a fresh training."""
    import shutil

    from course_utils.models.classifiers import FAMILIES
    from course_utils.training.classifier import FAMILY_TRAINING, train_family
    from course_utils.weights.recipes import export_classifier

    family = FAMILIES[CLASSIFIER_STANDINS[name]]
    training = training or CLASSIFIER_TRAINING
    if model is None and training is None:
        source = committed_classifier(name)
        missing = [f for f in _CLASSIFIER_FILES if not (source / f).is_file()]
        if missing:
            raise CheckpointUnavailable(f"the committed stand-in for {name} lacks {missing} in {source}: "
                                        "run `python -m course_utils recipe classifiers`")
        for file in _CLASSIFIER_FILES:
            shutil.copyfile(source / file, Path(folder) / file)
        return
    training = training or FAMILY_TRAINING[family.name]
    if model is None:
        model, history = train_family(family, training, progress=True)
    export_classifier(name, model, family, training, history, folder)


def save_classifier_standin(name, model, history, training=None):
    """Install a transformers classifier a lecture trained (of the family registered for ``name``) as the
    stand-in for ``name``, replacing any cached copy; returns its folder."""
    return build_standin(name, rebuild=True,
                         build=lambda folder: _build_classifier(folder, name, model, history, training))


def _weights_version(prefix: str, *files: Path, digits: int = 12) -> str:
    """A stand-in's version from the committed weights it is built from: a new recipe run gives a new version, so
    cached copies are rebuilt."""
    if not all(f.is_file() for f in files):
        return prefix + "missing"
    return prefix + "".join(sha256_file(f)[:digits] for f in files)


def _register_classifier(name: str, family: str, about: str) -> None:
    CLASSIFIER_STANDINS[name] = family
    register_standin(name, build=lambda folder: _build_classifier(folder, name), about=about,
                     version=_weights_version("c-", committed_classifier(name) / "model.safetensors"))


_register_classifier("microsoft/swin-base-patch4-window7-224", "swin",
                     about="a 2-stage Swin trained by the course on digits (32 px, 10 classes)")
_register_classifier("microsoft/beit-base-patch16-224", "beit",
                     about="a 4-layer BEiT trained by the course on digits (16 px, 10 classes)")
_register_classifier("facebook/deit-base-patch16-224", "deit",  # a ViTForImageClassification, as published
                     about="a 4-layer ViT (DeiT-B is one: no distillation token) trained by the course on digits "
                           "(16 px, 10 classes)")
_register_classifier("facebook/convnext-tiny-224", "convnext",
                     about="a 2-stage ConvNeXt trained by the course on digits (32 px, 10 classes)")


# ---------------------------------------------------------------- chapter 05: openai CLIP ViT-B/32, both libraries

def _build_clip(folder, name):
    """The recipe mini-CLIP for ``name``: as a TorchScript archive, ``model.pt``, which ``clip.load(path)`` accepts
    (ViT-B/32), or as transformers' ``CLIPModel`` with a ``CLIPProcessor`` (openai's vocabulary)."""
    from course_utils.interop.clip_formats import save_for_clip, save_for_transformers
    from course_utils.weights.recipes import load_miniclip, miniclip_record

    if name == "ViT-B/32":
        save_for_clip(load_miniclip(), folder / "model.pt")
    else:
        save_for_transformers(load_miniclip(), folder)
    record = miniclip_record()
    write_record(folder / "training.json", {
        "what": f"stand-in for {name}, built by course_utils.weights.standins from the committed recipe mini-CLIP",
        **{k: record[k] for k in ("script", "config", "training", "seconds", "machine", "parameters", "quality")}})


_MINICLIP_ABOUT = "the course's recipe mini-CLIP trained on captioned shapes (32 px, 2-layer ViT and text transformer)"
# recipes.MINICLIP_DIR; hashes the 6.8 MB weights once per process (about 20 ms)
_MINICLIP_VERSION = _weights_version("1-", Path(__file__).parent / "miniclip" / "model.safetensors")
for _name in ("ViT-B/32", "openai/clip-vit-base-patch32"):
    register_standin(_name, build=lambda folder, name=_name: _build_clip(folder, name), about=_MINICLIP_ABOUT,
                     version=_MINICLIP_VERSION, entry="model.pt" if _name == "ViT-B/32" else "")


# ---------------------------------------------------------------- chapter 07: Stable Diffusion 1.x

def _build_sd(folder):
    """The recipe's small Stable Diffusion as a ``StableDiffusionPipeline`` folder (``save_pretrained``)."""
    from course_utils.models.sd import pipeline
    from course_utils.weights.recipes import load_sd, sd_record

    pipeline(load_sd()).save_pretrained(folder, safe_serialization=True)
    record = sd_record()
    notes = {"what": "stand-in for Stable Diffusion 1.x, built by course_utils.weights.standins from the committed recipe",
             **{k: record.get(k) for k in ("script", "machine", "quality")},
             "vae": {k: record["vae"].get(k) for k in ("config", "parameters", "seconds")},
             "unet": {k: record["unet"].get(k) for k in ("config", "parameters", "seconds", "steps_done")}}
    write_record(folder / "training.json", notes)


_SD_ABOUT = ("the course's small Stable Diffusion: mini-CLIP text encoder, VAE and UNet trained on captioned "
             "shapes (32 px images, 16x16x4 latents)")
_SD_DIR = Path(__file__).parent / "sd"  # recipes.SD_DIR
register_standin("stable-diffusion-v1-5/stable-diffusion-v1-5", build=_build_sd, about=_SD_ABOUT,
                 version=_weights_version("1-", _SD_DIR / "unet.safetensors", _SD_DIR / "vae.safetensors", digits=6))
