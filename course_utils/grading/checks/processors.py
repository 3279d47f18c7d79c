"""Checks for exercise 04: an image processor by hand, ``pixel_values_by_hand(image, processor)``, and an experiment
on the recorded fine-tuning sweep, ``images_to_match(accuracy, sizes, size)`` (at the end of this file).

The contract: ``image`` is an (H, W, 3) uint8 NumPy array; ``processor`` a transformers image processor of the
ViT kind (``ViTImageProcessor``, ``DeiTImageProcessor``, ...). Return what ``processor(images=image,
return_tensors="pt").pixel_values`` holds, a float32 tensor (1, 3, h, w), by following the processor's settings:
resize to ``size["height"] x size["width"]`` with its ``resample`` filter (when ``do_resize``); crop the centre
``crop_size`` (when the processor has ``do_center_crop`` and it is true); multiply by ``rescale_factor`` (when
``do_rescale``); subtract ``image_mean`` and divide by ``image_std`` per channel (when ``do_normalize``).

Resizing is the one step whose numbers depend on the library: PIL, torchvision and ``F.interpolate`` round
differently, by up to a few 8-bit levels at sharp edges. So values are compared in 8-bit levels after
normalisation: on average within half a level, nowhere further than ten. Every step's mistake moves them further.
"""
from __future__ import annotations

import statistics

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from course_utils.grading.checks import (
    CheckFailed,
    answers_on_records,
    call,
    explain_answers,
    first_choice,
    fmt_shape,
    keep_rng,
    mean,
    passed,
    require_callable,
)

__all__ = ["check_pixel_values", "sample_processors", "sample_images", "check_images_to_match"]

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def sample_images() -> dict[str, np.ndarray]:
    """A smooth synthetic picture (45 x 61: gradients and a disc) and the cat photo (300 x 451), uint8 (H, W, 3)."""
    from course_utils.data.photos import photo
    yy, xx = np.mgrid[0:45, 0:61]
    disc = ((xx - 30) ** 2 + (yy - 20) ** 2 < 150) * 200 + 20
    smooth = np.stack([xx * 4, yy * 5, disc], axis=-1).clip(0, 255).astype(np.uint8)
    cat = (photo("chelsea").permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return {"a 45 x 61 test pattern": smooth, "the 300 x 451 cat photo": cat}


def sample_processors() -> dict[str, object]:
    """The processors the check runs, by what they test: fixed-size resize, centre crop, odd sizes, flags off."""
    from transformers import DeiTImageProcessor, ViTImageProcessor
    return {
        "ViT's processor (224 x 224, bilinear, mean and std 0.5)": ViTImageProcessor(
            size={"height": 224, "width": 224}, resample=Image.Resampling.BILINEAR, image_mean=HALF[0], image_std=HALF[1]),
        "DeiT's processor (256 x 256 bicubic, centre crop 224, ImageNet statistics)": DeiTImageProcessor(
            size={"height": 256, "width": 256}, crop_size={"height": 224, "width": 224},
            resample=Image.Resampling.BICUBIC, image_mean=IMAGENET[0], image_std=IMAGENET[1]),
        "a processor with do_rescale=False, do_normalize=False and height != width (24 x 40)": ViTImageProcessor(
            size={"height": 24, "width": 40}, resample=Image.Resampling.BILINEAR, do_rescale=False, do_normalize=False),
        "a processor with its own statistics and crop (40 x 72, crop 30 x 48)": DeiTImageProcessor(
            size={"height": 40, "width": 72}, crop_size={"height": 30, "width": 48},
            resample=Image.Resampling.BILINEAR, image_mean=(0.2, 0.4, 0.6), image_std=(0.3, 0.2, 0.1)),
    }


def _by_hand(image, p, *, resample=None, crop="centre", rescale_first=True, stats=None, normalize=None, swap=False,
             aliased=False, rescale=None):
    """The grader's own version, with a named mistake switched on by its keyword; (1, 3, h, w) float32."""
    h, w = p.size["height"], p.size["width"]
    if aliased:  # F.interpolate's default: no antialiasing when it shrinks
        mode = {Image.Resampling.BICUBIC: "bicubic"}.get(Image.Resampling(p.resample), "bilinear")
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(h, w), mode=mode).clamp(0, 255)[0] if p.do_resize else x[0]
    else:
        pil = Image.fromarray(image)
        if p.do_resize:
            pil = pil.resize((h, w) if swap else (w, h), Image.Resampling(p.resample if resample is None else resample))
        x = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float()  # (3, H, W), 0..255
    if getattr(p, "do_center_crop", False) and crop:
        ch, cw = p.crop_size["height"], p.crop_size["width"]
        top, left = ((x.shape[1] - ch) // 2, (x.shape[2] - cw) // 2) if crop == "centre" else (0, 0)
        x = x[:, top:top + ch, left:left + cw]
    mean, std = (torch.tensor(s).view(3, 1, 1) for s in (stats or (p.image_mean, p.image_std)))
    normalize = p.do_normalize if normalize is None else normalize
    rescale = p.do_rescale if rescale is None else rescale
    if rescale_first:
        x = x * p.rescale_factor if rescale else x
        x = (x - mean) / std if normalize else x
    else:
        x = (x - mean) / std if normalize else x
        x = x * p.rescale_factor if rescale else x
    return x[None]


def _levels(a: torch.Tensor, b: torch.Tensor, p) -> tuple[float, float]:
    """Mean and largest |a - b|, in 8-bit levels as they look after normalisation."""
    level = (p.rescale_factor if p.do_rescale else 1.0) / (min(p.image_std) if p.do_normalize else 1.0)
    d = (a.detach().double() - b.double()).abs() / level
    return d.mean().item(), d.max().item()


def _agrees(a, b, p) -> bool:
    mean, largest = _levels(a, b, p)
    return mean <= 0.5 and largest <= 10


def _mistakes(p):
    """(keywords of _by_hand, what the mistake is called) for the classic ones that apply to processor p."""
    out = [({"rescale_first": False}, "normalised before rescaling: the mean and std are for pixels in [0, 1], "
            "so multiply by rescale_factor first, then subtract the mean and divide by the std"),
           ({"swap": True}, "height and width are swapped in the resize: PIL's resize takes (width, height)")]
    if p.do_normalize:
        for stats, name in [(HALF, "0.5"), (IMAGENET, "ImageNet's")]:
            if tuple(p.image_mean) != stats[0]:
                out.append(({"stats": stats}, f"normalised with {name} mean and std instead of this processor's: "
                                              "read processor.image_mean and processor.image_std"))
    else:
        out.append(({"normalize": True}, "normalised although processor.do_normalize is False: follow the "
                                         "processor's do_* settings"))
    if not p.do_rescale:
        out.append(({"rescale": True}, "rescaled although processor.do_rescale is False: follow the processor's "
                                       "do_* settings"))
    if getattr(p, "do_center_crop", False):
        out.append(({"crop": "corner"}, "the crop is taken from the top-left corner: crop the centre, "
                                        "(H - crop height) // 2 from the top and (W - crop width) // 2 from the left"))
    names = {Image.Resampling.NEAREST: "nearest-neighbour sampling", Image.Resampling.BILINEAR: "the bilinear filter",
             Image.Resampling.BICUBIC: "the bicubic filter"}
    for other, name in names.items():
        if other != Image.Resampling(p.resample):
            out.append(({"resample": other}, f"resized with {name}, where this processor's resample is "
                        f"{int(p.resample)} ({names.get(Image.Resampling(p.resample), 'another filter')}): "
                        "use Image.Resampling(processor.resample)"))
    out.append(({"aliased": True}, "resized without antialiasing (F.interpolate's default): shrinking needs it, as "
                                   "PIL and torchvision do; pass antialias=True"))
    return out


@keep_rng()
def check_pixel_values(pixel_values_by_hand) -> None:
    """Check ``pixel_values_by_hand(image, processor)`` against the processors' own pixel_values."""
    require_callable(pixel_values_by_hand, "pixel_values_by_hand")
    images = sample_images()
    for pname, p in sample_processors().items():
        for iname, image in images.items():
            original = image.copy()
            p.preprocess = _forbidden  # the processor's own pipeline is what is being rebuilt
            try:
                out = call(pixel_values_by_hand, image, p, what="your pixel_values_by_hand",
                           where=f"for {iname} and {pname}")
            finally:
                del p.preprocess
            if not np.array_equal(image, original):
                raise CheckFailed("your pixel_values_by_hand changed the image it was given: work on a copy")
            _compare(out, p.__call__(images=image, return_tensors="pt")["pixel_values"], image, p,
                     f"{iname} through {pname}")
        passed(pname)
    passed("the image you were given is left unchanged")


def _forbidden(*args, **kwargs):
    raise CheckFailed("pixel_values_by_hand calls the processor itself: do its steps yourself, from its settings")


def _compare(out, ref, image, p, where: str) -> None:
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"expected a torch.Tensor (1, 3, h, w), got {type(out).__name__} for {where}")
    want = tuple(ref.shape)
    got = tuple(out.shape)
    if got != want:
        if got == want[1:]:
            hint = "add the batch dimension: pixel_values is a batch of one, (1, 3, h, w)"
        elif got in (want[:1] + want[2:] + want[1:2], want[2:] + want[1:2]):
            hint = "channels come first in pixel_values: permute (h, w, 3) to (3, h, w)"
        elif got[-2:] == want[-2:][::-1]:
            hint = "height and width are swapped: size['height'] rows, size['width'] columns (PIL's resize takes (width, height))"
        elif getattr(p, "do_center_crop", False) and got[-2:] == (p.size["height"], p.size["width"]):
            hint = "the centre crop is missing: after resizing, this processor crops its crop_size (do_center_crop is True)"
        else:
            hint = "resize to size['height'] x size['width'], then crop to crop_size when do_center_crop is True"
        raise CheckFailed(f"expected shape {fmt_shape(want)}, got {fmt_shape(got)} for {where}: {hint}")
    if out.dtype != torch.float32:
        raise CheckFailed(f"expected float32 values, like pixel_values, got {out.dtype} for {where}")
    if _agrees(out, ref, p):
        return
    for keywords, mistake in _mistakes(p):
        variant = _by_hand(image, p, **keywords)
        if variant.shape == out.shape and _agrees(out, variant, p):
            raise CheckFailed(f"{mistake} (for {where})")
    if p.do_rescale and out.abs().max() > 20:
        raise CheckFailed(f"values up to {out.abs().max().item():.0f}: not rescaled to [0, 1] by rescale_factor "
                          f"(1/255) before normalising (for {where})")
    mean, largest = _levels(out, ref, p)
    raise CheckFailed(f"the values differ from the processor's pixel_values by {mean:.1f} 8-bit levels on average, "
                      f"{largest:.0f} at most (resize libraries differ by under half a level on average and ten at "
                      f"most) for {where}: resize, crop the centre, rescale, normalise, in that order, as the "
                      "processor's settings say")


# ------------------------------------------------------------------ images_to_match: an experiment on fine-tuning

def _final(runs):
    return [curve[-1] for curve in runs]


def _to_match(accuracy, sizes, size, *, target=None, reached=None, summary=_final, seeds=mean, strict=False,
              above_only=False, same_start=False, **slips):
    """The contract's answer, and (through the keywords, ``slips`` those of ``first_choice``) the answers of the
    classic mistakes. ``accuracy[start][size index][seed index][epoch]``."""
    i = list(sizes).index(size)
    goal = (target or seeds)(summary(accuracy["pretrained"][i]))
    scratch = "pretrained" if same_start else "scratch"
    hits = [k for k, runs in enumerate(accuracy[scratch])
            if (not above_only or k > i) and ((reached or seeds)(summary(runs)) > goal if strict
                                             else (reached or seeds)(summary(runs)) >= goal)]
    return first_choice(hits, list(sizes), **slips)


def _curves(*finals, epochs=4, start=0.2):
    """Made-up learning curves that rise in a straight line to the given final accuracies (one list per seed)."""
    return [[round(start + (f - start) * (e + 1) / epochs, 4) for e in range(epochs)] for f in finals]


def _record(pretrained, scratch, **curves):
    """A made-up record from each start's final accuracies (a number for three equal seeds, or a list per seed);
    ``curves`` replaces a whole run's curves: ``pretrained_0`` for the pretrained runs at the first size."""
    record = {name: [_curves(*(f if isinstance(f, list) else [f] * 3)) for f in finals]
              for name, finals in (("pretrained", pretrained), ("scratch", scratch))}
    for key, runs in curves.items():
        name, i = key.rsplit("_", 1)
        record[name][int(i)] = runs
    return record


_SIZES = [50, 100, 200, 400]
_MATCH_CASES = [  # (what the case is about, accuracy, size); ties only in the one case made for them, in binary fractions
    ("worth twice the data", _record([0.5, 0.6, 0.7, 0.8], [0.4, 0.52, 0.62, 0.72]), 50),
    ("worth four times the data", _record([0.6, 0.7, 0.8, 0.9], [0.4, 0.5, 0.6, 0.82]), 100),
    ("never matched", _record([0.6, 0.7, 0.8, 0.95], [0.4, 0.5, 0.6, 0.68]), 100),
    ("an exact tie reaches", _record([0.5, 0.625, 0.75, 0.875], [0.25, 0.5, 0.625, 0.75]), 100),
    ("pre-training hurts", _record([0.3, 0.4, 0.5, 0.6], [0.35, 0.52, 0.62, 0.72]), 200),
    ("one lucky seed from scratch", _record([0.5, 0.6, 0.7, 0.8], [0.4, [0.42, 0.42, 0.6], 0.62, 0.72]), 50),
    ("one unlucky pretrained seed", _record([0.5, [0.74, 0.74, 0.5], 0.8, 0.9], [0.4, 0.55, 0.68, 0.76]), 100),
    ("the first seed misleads", _record([0.5, 0.6, 0.7, 0.8], [0.4, [0.6, 0.4, 0.4], 0.62, 0.72]), 50),
    ("the last epoch is not the best", _record([0.5, 0.7, 0.8, 0.9], [0.4, 0.5, 0.66, 0.78],
                                               scratch_2=[[0.2, 0.75, 0.7, 0.66]] * 3), 100),
    ("fast to learn, then level", _record([0.55, 0.7, 0.8, 0.9], [0.4, 0.56, 0.66, 0.76],
                                          pretrained_0=[[0.45, 0.5, 0.52, 0.55]] * 3), 50),
    ("a mean reached, not every seed", _record([0.5, 0.6, 0.7, 0.8], [0.4, [0.45, 0.45, 0.62], 0.64, 0.72]), 50),
]
_first, _best, _worst = (lambda seeds: seeds[0]), max, min


_MATCH_MISTAKES = [  # (the mistake's answer on one case, the message)
    (lambda a, s, n: _to_match(a, s, n, index=True),
     "returns the position in `sizes`, not the number of images: return sizes[i]"),
    (lambda a, s, n: _to_match(a, s, n, strict=True),
     "a model from scratch that exactly equals the pretrained one has reached it: use >=, not >"),
    (lambda a, s, n: _to_match(a, s, n, summary=lambda runs: [mean(curve) for curve in runs]),
     "averages each run over its epochs: the contract compares the accuracy after the last epoch"),
    (lambda a, s, n: _to_match(a, s, n, summary=lambda runs: [max(curve) for curve in runs]),
     "takes each run's best epoch: the contract compares the accuracy after the last epoch (the best epoch is "
     "chosen by looking at the test set)"),
    (lambda a, s, n: _to_match(a, s, n, seeds=_first),
     "uses one seed (the first): average each start's final accuracy over the seeds, then compare the means"),
    (lambda a, s, n: _to_match(a, s, n, seeds=_best),
     "uses the best seed: average over the seeds, then compare the means"),
    (lambda a, s, n: _to_match(a, s, n, target=_best),
     "compares with the pretrained model's best seed: compare mean with mean"),
    (lambda a, s, n: _to_match(a, s, n, reached=_best),
     "counts a size as reached when one scratch seed gets there: compare the scratch mean with the pretrained mean"),
    (lambda a, s, n: _to_match(a, s, n, reached=_worst),
     "asks every scratch seed to reach the target: compare the scratch mean with the pretrained mean"),
    (lambda a, s, n: _to_match(a, s, n, seeds=statistics.median),
     "takes the median over the seeds: the contract asks for the mean"),
    (lambda a, s, n: _to_match(a, s, n, above_only=True),
     "only looks at sizes above `size`: when pre-training does not help, scratch matches it at `size` or below"),
    (lambda a, s, n: _to_match(a, s, n, last_if_never=True),
     "when no size in the record matches, return None, not the largest size"),
    (lambda a, s, n: _to_match(a, s, n, largest=True),
     "returns the largest size that matches: the smallest is the answer"),
]


def check_images_to_match(images_to_match) -> None:
    """Check ``images_to_match(accuracy, sizes, size)`` -> the smallest of ``sizes`` at which training from scratch
    reaches (mean over the seeds of the final epoch, ``>=``) the pretrained model's mean at ``size``, or None, on eleven
    made-up records (nested lists, as in the JSON record); a mistake is named only when it gives every answer the
    student gave."""
    require_callable(images_to_match, "images_to_match")
    answers = answers_on_records(images_to_match, "images_to_match",
                                 [(case, (accuracy, _SIZES, size)) for case, accuracy, size in _MATCH_CASES],
                                 "the accuracy record or the sizes")
    explain_answers(answers, [_to_match(a, _SIZES, n) for _, a, n in _MATCH_CASES], [case for case, *_ in _MATCH_CASES],
                    [([mistake(a, list(_SIZES), n) for _, a, n in _MATCH_CASES], message)
                     for mistake, message in _MATCH_MISTAKES],
                    "the smallest size at which the scratch runs' mean final accuracy is at least the pretrained runs' "
                    "mean final accuracy at `size` (None if never)")
    passed(f"the smallest size at which training from scratch catches up, from the means over the seeds of the last "
           f"epoch, on {len(_MATCH_CASES)} made-up records (ties reach, None when never)")
