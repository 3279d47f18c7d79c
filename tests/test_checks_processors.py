"""Exercise 04's check, both ways: the processor by hand in three libraries' styles passes (PIL, torchvision,
F.interpolate), and each classic mistake is named."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from check_helpers import fails, run
from PIL import Image

from course_utils.grading.checks import processors as C
from course_utils.grading.checks.processors import check_pixel_values


def with_pil(image, p, *, batch=True, channels_first=True, crop=True, centre=True, rescale_first=True,
             stats=None, flags=True, resample=None, swap=False, dtype=torch.float32):
    """A correct answer in PIL; each keyword switches on one classic mistake."""
    pil = Image.fromarray(image)
    if p.do_resize or not flags:
        h, w = p.size["height"], p.size["width"]
        pil = pil.resize((h, w) if swap else (w, h), Image.Resampling(p.resample if resample is None else resample))
    x = np.asarray(pil).astype(np.float32)  # (H, W, 3)
    if crop and getattr(p, "do_center_crop", False):
        ch, cw = p.crop_size["height"], p.crop_size["width"]
        top, left = ((x.shape[0] - ch) // 2, (x.shape[1] - cw) // 2) if centre else (0, 0)
        x = x[top:top + ch, left:left + cw]
    mean, std = (np.array(s, dtype=np.float32) for s in (stats or (p.image_mean, p.image_std)))
    normalize = p.do_normalize or not flags
    if rescale_first:
        x = x * p.rescale_factor if p.do_rescale else x
        x = (x - mean) / std if normalize else x
    else:
        x = ((x - mean) / std if normalize else x) * p.rescale_factor
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.permute(2, 0, 1) if channels_first else t
    return (t[None] if batch else t).to(dtype)


def with_torchvision(image, p):
    x = torch.from_numpy(image).permute(2, 0, 1)  # (3, H, W) uint8
    modes = {0: TF.InterpolationMode.NEAREST, 2: TF.InterpolationMode.BILINEAR, 3: TF.InterpolationMode.BICUBIC}
    if p.do_resize:
        x = TF.resize(x, [p.size["height"], p.size["width"]], interpolation=modes[int(p.resample)], antialias=True)
    if getattr(p, "do_center_crop", False):
        x = TF.center_crop(x, [p.crop_size["height"], p.crop_size["width"]])
    x = x.float() * p.rescale_factor if p.do_rescale else x.float()
    if p.do_normalize:
        x = TF.normalize(x, list(p.image_mean), list(p.image_std))
    return x.unsqueeze(0)


def with_interpolate(image, p, antialias=True):
    """F.interpolate: correct with antialias=True; at its default, False, shrinking aliases (a mistake)."""
    x = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None]
    mode = {2: "bilinear", 3: "bicubic"}[int(p.resample)]
    x = F.interpolate(x, size=(p.size["height"], p.size["width"]), mode=mode, antialias=antialias).clamp(0, 255)
    x = x * p.rescale_factor if p.do_rescale else x
    if getattr(p, "do_center_crop", False):
        ch, cw = p.crop_size["height"], p.crop_size["width"]
        top, left = (x.shape[2] - ch) // 2, (x.shape[3] - cw) // 2
        x = x[..., top:top + ch, left:left + cw]
    if p.do_normalize:
        x = (x - torch.tensor(p.image_mean).view(1, 3, 1, 1)) / torch.tensor(p.image_std).view(1, 3, 1, 1)
    return x


@pytest.mark.parametrize("answer", [with_pil, with_torchvision, with_interpolate], ids=lambda f: f.__name__)
def test_correct_answers_in_any_library_pass(answer):
    out = run(check_pixel_values, answer)
    assert out.count("✓") == 5, out


MISTAKES = {
    "no batch dimension": ({"batch": False}, "add the batch dimension"),
    "channels last": ({"channels_first": False}, "channels come first"),
    "no centre crop": ({"crop": False}, "the centre crop is missing"),
    "corner crop": ({"centre": False}, "top-left corner"),
    "normalise then rescale": ({"rescale_first": False}, "normalised before rescaling"),
    "0.5 statistics always": ({"stats": ((0.5,) * 3, (0.5,) * 3)}, "with 0.5 mean and std instead of this processor's"),
    "ImageNet statistics always": ({"stats": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))},
                                   "with ImageNet's mean and std"),
    "ignores the do_ flags": ({"flags": False}, "normalised although processor.do_normalize is False"),
    "nearest neighbour": ({"resample": 0}, "nearest-neighbour"),
    "bilinear always": ({"resample": 2}, "resized with the bilinear filter, where this processor's resample is 3"),
    "width and height swapped": ({"swap": True}, "swapped"),
    "float64": ({"dtype": torch.float64}, "expected float32"),
}


@pytest.mark.parametrize("case", MISTAKES)
def test_classic_mistakes_are_named(case):
    keywords, words = MISTAKES[case]
    fails(check_pixel_values, lambda image, p: with_pil(image, p, **keywords), words)


def test_forgetting_to_rescale_and_other_slips_are_named():
    def no_rescale(image, p):
        out = with_pil(image, p)
        return (out * torch.tensor(p.image_std).view(1, 3, 1, 1) + torch.tensor(p.image_mean).view(1, 3, 1, 1)) * 255
    fails(check_pixel_values, no_rescale, "not rescaled")
    fails(check_pixel_values, lambda image, p: with_pil(image, p).numpy(), "expected a torch.Tensor")
    fails(check_pixel_values, lambda image, p: with_pil(image, p) + 0.1, "differ from the processor's pixel_values")

    def in_place(image, p):
        image[:] = 0
        return with_pil(image, p)
    fails(check_pixel_values, in_place, "changed the image")
    fails(check_pixel_values, 3, "expected the function pixel_values_by_hand")


def test_the_processor_is_not_called_and_the_filter_and_flags_are_followed():
    fails(check_pixel_values, lambda image, p: p(images=image, return_tensors="pt")["pixel_values"],
          "calls the processor itself")

    fails(check_pixel_values, lambda image, p: with_interpolate(image, p, antialias=False), "without antialiasing")

    def always_rescaled(image, p):  # ignores do_rescale=False
        class Rescaled:
            def __getattr__(self, name):
                return True if name == "do_rescale" else getattr(p, name)
        return with_pil(image, Rescaled())
    fails(check_pixel_values, always_rescaled, "rescaled although processor.do_rescale is False")


# ------------------------------------------------------------------ images_to_match (an experiment on fine-tuning)

def match_loop(accuracy, sizes, size):
    def final_mean(runs):
        return sum(curve[-1] for curve in runs) / len(runs)

    target = final_mean(accuracy["pretrained"][sizes.index(size)])
    for n, runs in zip(sizes, accuracy["scratch"]):
        if final_mean(runs) >= target:
            return n
    return None


def match_numpy(accuracy, sizes, size):
    import numpy as np

    final = {start: np.array(runs)[:, :, -1].mean(1) for start, runs in accuracy.items()}  # (sizes,) each
    reached = np.flatnonzero(final["scratch"] >= final["pretrained"][sizes.index(size)])
    return int(sizes[reached[0]]) if len(reached) else None


def match_statistics(accuracy, sizes, size):
    """statistics.fmean and a generator expression with next()."""
    import statistics

    target = statistics.fmean(c[-1] for c in accuracy["pretrained"][list(sizes).index(size)])
    return next((n for n, runs in zip(sizes, accuracy["scratch"]) if statistics.fmean(c[-1] for c in runs) >= target),
                None)


@pytest.mark.parametrize("fn", [match_loop, match_numpy, match_statistics], ids=lambda f: f.__name__)
def test_correct_images_to_match_passes_in_three_styles(fn):
    assert "✓ the smallest size at which training from scratch catches up" in run(C.check_images_to_match, fn)


def _final_mean(runs, pick=lambda curve: curve[-1], over=lambda v: sum(v) / len(v)):
    return over([pick(curve) for curve in runs])


def _match(accuracy, sizes, size, *, target=None, reached=None, sizes_from=0, strict=False):
    target = target or _final_mean
    reached = reached or _final_mean
    goal = target(accuracy["pretrained"][sizes.index(size)])
    for k in range(sizes_from, len(sizes)):
        value = reached(accuracy["scratch"][k])
        if value > goal if strict else value >= goal:
            return sizes[k]
    return None


def match_index(accuracy, sizes, size):
    answer = match_loop(accuracy, sizes, size)
    return None if answer is None else sizes.index(answer)


def match_strict(accuracy, sizes, size):
    return _match(accuracy, sizes, size, strict=True)


def match_over_epochs(accuracy, sizes, size):
    mean_curve = lambda runs: _final_mean(runs, pick=lambda c: sum(c) / len(c))  # noqa: E731
    return _match(accuracy, sizes, size, target=mean_curve, reached=mean_curve)


def match_best_epoch(accuracy, sizes, size):
    best = lambda runs: _final_mean(runs, pick=max)  # noqa: E731
    return _match(accuracy, sizes, size, target=best, reached=best)


def match_first_seed(accuracy, sizes, size):
    first = lambda runs: runs[0][-1]  # noqa: E731
    return _match(accuracy, sizes, size, target=first, reached=first)


def match_best_pretrained_seed(accuracy, sizes, size):
    return _match(accuracy, sizes, size, target=lambda runs: _final_mean(runs, over=max))


def match_any_scratch_seed(accuracy, sizes, size):
    return _match(accuracy, sizes, size, reached=lambda runs: _final_mean(runs, over=max))


def match_every_scratch_seed(accuracy, sizes, size):
    return _match(accuracy, sizes, size, reached=lambda runs: _final_mean(runs, over=min))


def match_median(accuracy, sizes, size):
    import statistics

    median = lambda runs: _final_mean(runs, over=statistics.median)  # noqa: E731
    return _match(accuracy, sizes, size, target=median, reached=median)


def match_only_above(accuracy, sizes, size):
    return _match(accuracy, sizes, size, sizes_from=sizes.index(size) + 1)


def match_last_if_never(accuracy, sizes, size):
    answer = match_loop(accuracy, sizes, size)
    return sizes[-1] if answer is None else answer


def match_largest(accuracy, sizes, size):
    target = _final_mean(accuracy["pretrained"][sizes.index(size)])
    hits = [n for n, runs in zip(sizes, accuracy["scratch"]) if _final_mean(runs) >= target]
    return hits[-1] if hits else None


def match_pops_in_place(accuracy, sizes, size):
    for runs in accuracy["scratch"]:
        for curve in runs:
            curve.sort()  # "the final accuracy is the largest": it is not, and the record changes
    return match_loop(accuracy, sizes, size)


def match_returns_a_list(accuracy, sizes, size):
    answer = match_loop(accuracy, sizes, size)
    return [answer]


@pytest.mark.parametrize("fn, message", [
    (match_index, "not the number of images"),
    (match_strict, "use >=, not >"),
    (match_over_epochs, "averages each run over its epochs"),
    (match_best_epoch, "takes each run's best epoch"),
    (match_first_seed, "uses one seed (the first)"),
    (match_best_pretrained_seed, "compares with the pretrained model's best seed"),
    (match_any_scratch_seed, "counts a size as reached when one scratch seed gets there"),
    (match_every_scratch_seed, "asks every scratch seed to reach the target"),
    (match_median, "takes the median over the seeds"),
    (match_only_above, "only looks at sizes above `size`"),
    (match_last_if_never, "return None, not the largest size"),
    (match_largest, "the smallest is the answer"),
    (match_pops_in_place, "changed its input in place"),
    (match_returns_a_list, "should return a number"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_images_to_match_mistakes_are_named(fn, message):
    fails(C.check_images_to_match, fn, message)


def test_images_to_match_on_the_recorded_sweep():
    """What the exercise finds on the course's record: pre-training is worth about twice the data."""
    from course_utils.weights.experiments import experiment_record

    record = experiment_record("finetuning")
    assert {n: match_loop(record["accuracy"], record["sizes"], n) for n in record["sizes"]} == {
        100: 400, 200: 400, 400: 800, 800: 1600, 1600: None}
