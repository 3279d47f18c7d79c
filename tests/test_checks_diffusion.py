"""The chapter 06 checks, both ways: every correct style passes with the very same printout, and
every classic mistake fails with a message that names it."""
import pytest
import torch
from check_helpers import fails, run

from course_utils.grading.checks import diffusion as C
from course_utils.grading.checks.diffusion import (
    check_classifier_free_guidance,
    check_ddim_step,
    check_ddpm_step,
    check_q_sample,
)
from course_utils.models.diffusion import alphas_cumprod, classifier_free_guidance, ddpm_step, q_sample

# ----------------------------------------------------------------------------- q_sample, right

def q_gather(x0, t, noise, alphas_cumprod):
    """gather and [:, None, None, None]."""
    a = alphas_cumprod.gather(0, t)[:, None, None, None]
    return torch.sqrt(a) * x0 + torch.sqrt(1 - a) * noise


def q_reshape(x0, t, noise, alphas_cumprod):
    """Index, then reshape to as many singleton dimensions as x0 has."""
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))
    return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise


def q_loop(x0, t, noise, alphas_cumprod):
    """One sample at a time."""
    return torch.stack([alphas_cumprod[s].sqrt() * x + (1 - alphas_cumprod[s]).sqrt() * n
                        for x, s, n in zip(x0, t, noise)])


def test_every_correct_q_sample_prints_the_same():
    outputs = {run(check_q_sample, fn) for fn in (q_sample, q_gather, q_reshape, q_loop)}
    assert len(outputs) == 1, outputs
    assert outputs.pop().count("✓") == 3


# ----------------------------------------------------------------------------- q_sample, wrong

def _a(abar, t):
    return abar[t].view(-1, 1, 1, 1)


WRONG_Q = {
    "not broadcast": (lambda x0, t, n, ab: ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * n, C.Q_BROADCAST),
    "broadcast over the last dimension only": (lambda x0, t, n, ab: ab[t][:, None].sqrt() * x0
                                               + (1 - ab[t][:, None]).sqrt() * n, C.Q_BROADCAST),
    "one abar for all": (lambda x0, t, n, ab: ab[t[0]].sqrt() * x0 + (1 - ab[t[0]]).sqrt() * n, C.Q_NOT_PER_SAMPLE),
    "mean abar": (lambda x0, t, n, ab: ab[t].mean().sqrt() * x0 + (1 - ab[t].mean()).sqrt() * n, C.Q_NOT_PER_SAMPLE),
    "no square roots": (lambda x0, t, n, ab: _a(ab, t) * x0 + (1 - _a(ab, t)) * n, C.Q_NO_SQRT),
    "noise without sqrt": (lambda x0, t, n, ab: _a(ab, t).sqrt() * x0 + (1 - _a(ab, t)) * n, C.Q_NOISE_NO_SQRT),
    "signal without sqrt": (lambda x0, t, n, ab: _a(ab, t) * x0 + (1 - _a(ab, t)).sqrt() * n, C.Q_SIGNAL_NO_SQRT),
    "1 - sqrt": (lambda x0, t, n, ab: _a(ab, t).sqrt() * x0 + (1 - _a(ab, t).sqrt()) * n, C.Q_ONE_MINUS_SQRT),
    "swapped": (lambda x0, t, n, ab: (1 - _a(ab, t)).sqrt() * x0 + _a(ab, t).sqrt() * n, C.Q_SWAPPED),
    "t - 1": (lambda x0, t, n, ab: q_sample(x0, t - 1, n, ab), C.Q_OFF_BY_ONE),
    "t + 1": (lambda x0, t, n, ab: q_sample(x0, (t + 1).clamp(max=len(ab) - 1), n, ab), C.Q_OFF_BY_ONE),
    "x0 unscaled": (lambda x0, t, n, ab: x0 + (1 - _a(ab, t)).sqrt() * n, C.Q_NO_SIGNAL_SCALE),
    "cumprod again": (lambda x0, t, n, ab: q_sample(x0, t, n, torch.cumprod(1 - ab, 0)), C.Q_ALPHAS),
    "hard-coded batch": (lambda x0, t, n, ab: ab[t].view(4, 1, 1, 1).sqrt() * x0 + (1 - ab[t].view(4, 1, 1, 1)).sqrt() * n,
                         "raised RuntimeError for x0 of shape (3, 1, 8, 8)"),
    "returns a tuple": (lambda x0, t, n, ab: (q_sample(x0, t, n, ab), n), "expected a tensor, got tuple"),
    "not implemented": (lambda x0, t, n, ab: (_ for _ in ()).throw(NotImplementedError()), "not implemented yet"),
}


@pytest.mark.parametrize("name", list(WRONG_Q))
def test_q_sample_mistakes_are_named(name):
    fn, message = WRONG_Q[name]
    fails(check_q_sample, fn, message)


def test_q_sample_in_place_is_named():
    def in_place(x0, t, noise, alphas_cumprod):
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        return x0.mul_(a.sqrt()).add_((1 - a).sqrt() * noise)

    fails(check_q_sample, in_place, "changed its input x0 in place")


def test_passing_a_call_instead_of_the_function_is_named():
    fails(check_q_sample, torch.zeros(1), "expected the function q_sample")


# ----------------------------------------------------------------------------- ddpm_step, right

def step_where(x_t, t, eps, betas, noise):
    """torch.where for t = 0, abar by a product over a slice."""
    beta = betas[t]
    abar = torch.prod(1 - betas[: t + 1])
    mean = 1 / torch.sqrt(1 - beta) * (x_t - beta / torch.sqrt(1 - abar) * eps)
    return torch.where(torch.tensor(t > 0), mean + beta.sqrt() * noise, mean)


def step_floats(x_t, t, eps, betas, noise):
    """Python floats, noise switched off by a factor."""
    beta = float(betas[t])
    abar = float(alphas_cumprod(betas)[t])
    sigma = beta ** 0.5 if t > 0 else 0.0
    return (x_t - beta / (1 - abar) ** 0.5 * eps) / (1 - beta) ** 0.5 + sigma * noise


def step_x0(x_t, t, eps, betas, noise):
    """Through the predicted x_0 and the posterior mean (DDPM eq. 7): the same mean, written differently."""
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = abar[t - 1] if t > 0 else torch.tensor(1.0)
    x0 = (x_t - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
    mean = (abar_prev.sqrt() * betas[t] / (1 - abar[t]) * x0
            + alphas[t].sqrt() * (1 - abar_prev) / (1 - abar[t]) * x_t)
    if t == 0:
        return mean
    return mean + betas[t].sqrt() * noise


def test_every_correct_ddpm_step_prints_the_same():
    outputs = {run(check_ddpm_step, fn) for fn in (ddpm_step, step_where, step_floats, step_x0)}
    assert len(outputs) == 1, outputs
    assert outputs.pop().count("✓") == 4


# ----------------------------------------------------------------------------- ddpm_step, wrong

def _mean(x_t, t, eps, betas, factor=None, denominator=None):
    beta = betas[t]
    abar = alphas_cumprod(betas)[t]
    factor = (1 - beta).sqrt() if factor is None else factor
    denominator = (1 - abar).sqrt() if denominator is None else denominator
    return (x_t - beta / denominator * eps) / factor


def _posterior_sigma(betas, t):
    abar = alphas_cumprod(betas)
    return ((1 - abar[t - 1]) / (1 - abar[t]) * betas[t]).sqrt() if t > 0 else torch.tensor(0.0)


WRONG_STEP = {
    "noise at t = 0": (lambda x, t, e, b, z: _mean(x, t, e, b) + b[t].sqrt() * z, C.STEP_NOISE_AT_ZERO),
    "no noise": (lambda x, t, e, b, z: _mean(x, t, e, b), C.STEP_NO_NOISE),
    "sigma = beta": (lambda x, t, e, b, z: _mean(x, t, e, b) + (b[t] if t > 0 else 0) * z, C.STEP_SIGMA_BETA),
    "posterior sigma": (lambda x, t, e, b, z: _mean(x, t, e, b) + _posterior_sigma(b, t) * z, C.STEP_SIGMA_TILDE),
    "abar in the factor": (lambda x, t, e, b, z: _mean(x, t, e, b, factor=alphas_cumprod(b)[t].sqrt())
                           + (b[t].sqrt() * z if t else 0), C.STEP_ABAR_FACTOR),
    "no sqrt on alpha": (lambda x, t, e, b, z: _mean(x, t, e, b, factor=1 - b[t]) + (b[t].sqrt() * z if t else 0),
                         C.STEP_NO_SQRT_ALPHA),
    "no sqrt on 1 - abar": (lambda x, t, e, b, z: _mean(x, t, e, b, denominator=1 - alphas_cumprod(b)[t])
                            + (b[t].sqrt() * z if t else 0), C.STEP_NO_SQRT_ONE_MINUS_ABAR),
    "alpha in the eps term": (lambda x, t, e, b, z: _mean(x, t, e, b, denominator=b[t].sqrt())
                              + (b[t].sqrt() * z if t else 0), C.STEP_ALPHA_IN_EPS),
    "plus eps": (lambda x, t, e, b, z: ddpm_step(x, t, -e, b, z), C.STEP_SIGN),
    "minus noise": (lambda x, t, e, b, z: ddpm_step(x, t, e, b, -z), C.STEP_SIGN),
    "t - 1": (lambda x, t, e, b, z: ddpm_step(x, t - 1, e, b, z) if t > 0 else ddpm_step(x, t, e, b, z),
              C.STEP_OFF_BY_ONE),
    "cumprod of betas": (lambda x, t, e, b, z: _mean(x, t, e, b, denominator=(1 - torch.cumprod(b, 0)[t]).sqrt())
                         + (b[t].sqrt() * z if t else 0), C.STEP_ABAR_OF_BETAS),
    "1 - sum of betas": (lambda x, t, e, b, z: _mean(x, t, e, b, denominator=b[: t + 1].sum().sqrt())
                         + (b[t].sqrt() * z if t else 0), C.STEP_ABAR_SUM),
    "shape": (lambda x, t, e, b, z: ddpm_step(x, t, e, b, z)[0], "expected a result of shape (3, 2, 4, 4)"),
    "not implemented": (lambda x, t, e, b, z: (_ for _ in ()).throw(NotImplementedError()), "not implemented yet"),
}


@pytest.mark.parametrize("name", list(WRONG_STEP))
def test_ddpm_step_mistakes_are_named(name):
    fn, message = WRONG_STEP[name]
    fails(check_ddpm_step, fn, message)


def test_ddpm_step_in_place_is_named():
    def in_place(x_t, t, eps, betas, noise):
        out = ddpm_step(x_t, t, eps, betas, noise)
        noise.mul_(0)
        return out

    fails(check_ddpm_step, in_place, "changed its input noise in place")


# ----------------------------------------------------------------------------- classifier_free_guidance

def cfg_mix(eps_uncond, eps_cond, guidance_scale):
    """A weighted mix: w eps_cond + (1 - w) eps_uncond."""
    return guidance_scale * eps_cond + (1 - guidance_scale) * eps_uncond


def cfg_lerp(eps_uncond, eps_cond, guidance_scale):
    """torch.lerp extrapolates for w > 1."""
    return torch.lerp(eps_uncond, eps_cond, guidance_scale)


def cfg_chunk(eps_uncond, eps_cond, guidance_scale):
    """As a pipeline does it, from one stacked batch."""
    u, c = torch.cat([eps_uncond, eps_cond]).chunk(2)
    return u + guidance_scale * (c - u)


def test_every_correct_guidance_prints_the_same():
    outputs = {run(check_classifier_free_guidance, fn)
               for fn in (classifier_free_guidance, cfg_mix, cfg_lerp, cfg_chunk)}
    assert len(outputs) == 1, outputs
    assert outputs.pop().count("✓") == 3


WRONG_CFG = {
    "swapped": (lambda u, c, w: c + w * (u - c), C.CFG_SWAPPED),
    "1 + w": (lambda u, c, w: (1 + w) * c - w * u, C.CFG_ONE_PLUS_W),
    "from eps_cond": (lambda u, c, w: c + w * (c - u), C.CFG_ONE_PLUS_W),
    "scale on eps_uncond": (lambda u, c, w: w * u + (c - u), C.CFG_SCALE_ON_UNCOND),
    "no base": (lambda u, c, w: w * (c - u), C.CFG_NO_BASE),
    "sign": (lambda u, c, w: u - w * (c - u), C.CFG_SIGN),
    "conditional only": (lambda u, c, w: c * 1.0, C.CFG_WRONG),
    "in place": (lambda u, c, w: u.add_(w * (c - u)), "changed its input eps_uncond in place"),
    "not implemented": (lambda u, c, w: (_ for _ in ()).throw(NotImplementedError()), "not implemented yet"),
}


@pytest.mark.parametrize("name", list(WRONG_CFG))
def test_guidance_mistakes_are_named(name):
    fn, message = WRONG_CFG[name]
    fails(check_classifier_free_guidance, fn, message)


# ------------------------------------------------------------------ ddim_step

def ddim_answer(style="formula", mistake=None):
    def ddim_step(x_t, t, t_prev, eps, alphas_cumprod):
        a_t = alphas_cumprod[t]
        if mistake == "last index":
            a_prev = alphas_cumprod[t_prev]
        else:
            a_prev = alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
        if style == "ratio":  # the same step written as a ratio of scales
            return (a_prev / a_t).sqrt() * x_t + ((1 - a_prev).sqrt() - (a_prev * (1 - a_t) / a_t).sqrt()) * eps
        x0 = (x_t - (1 - a_t).sqrt() * eps) / (a_t if mistake == "x0 without sqrt" else a_t.sqrt())
        if mistake == "predicted x0":
            return x0
        if mistake == "no direction":
            return a_prev.sqrt() * x0
        direction = (1 - (a_t if mistake == "direction at t" else a_prev)).sqrt() * eps
        if mistake == "in place":
            x_t.mul_(1.0)
            eps.add_(1.0)
        return a_prev.sqrt() * x0 + direction
    return ddim_step


@pytest.mark.parametrize("style", ["formula", "ratio"])
def test_ddim_step_correct_styles_pass(style):
    assert run(check_ddim_step, ddim_answer(style)).count("✓") == 4


@pytest.mark.parametrize("mistake, words", [
    ("no direction", "the direction term is missing"),
    ("x0 without sqrt", "x0_hat divides by abar_t"),
    ("direction at t", "the direction uses abar_t"),
    ("last index", "alphas_cumprod[-1], the LAST step's abar"),
    ("predicted x0", "this is x0_hat itself"),
    ("in place", "changed its input eps in place"),
])
def test_ddim_step_mistakes_are_named(mistake, words):
    fails(check_ddim_step, ddim_answer(mistake=mistake), words)


# ----------------------------------------------------------------------------- fewest_ddim_steps (an experiment)

def fewest_loop(ddpm, ddim, steps, within=0.15):
    for S, row in zip(steps, ddim):
        ok = True
        for j in range(len(ddpm)):
            if ddpm[j] - row[j] > within:
                ok = False
        if ok:
            return S
    return None


def fewest_all(ddpm, ddim, steps, within=0.15):
    return next((S for S, row in zip(steps, ddim) if all(p - d <= within for p, d in zip(ddpm, row))), None)


def fewest_numpy(ddpm, ddim, steps, within=0.15):
    import numpy as np

    loss = np.asarray(ddpm)[None, :] - np.asarray(ddim)  # (steps, models)
    hits = np.flatnonzero((loss <= within).all(axis=1))
    return steps[hits[0]] if len(hits) else None


def fewest_torch(ddpm, ddim, steps, within=0.15):
    worst = (torch.tensor(ddpm, dtype=torch.float64) - torch.tensor(ddim, dtype=torch.float64)).max(dim=1).values
    hits = (worst <= within).nonzero()
    return steps[int(hits[0])] if len(hits) else None


def test_every_correct_fewest_ddim_steps_prints_the_same():
    outputs = {run(C.check_fewest_ddim_steps, fn) for fn in (fewest_loop, fewest_all, fewest_numpy, fewest_torch)}
    assert len(outputs) == 1, outputs
    assert outputs.pop().startswith("✓ the fewest DDIM steps at which every model is within")


def _average(values):
    return sum(values) / len(values)


def _first_hit(steps, ddim, ok):
    return next((S for S, row in zip(steps, ddim) if ok(row)), None)


def fewest_means(ddpm, ddim, steps, within=0.15):
    return _first_hit(steps, ddim, lambda row: _average(ddpm) - _average(row) <= within)


def fewest_best_ddpm(ddpm, ddim, steps, within=0.15):
    return _first_hit(steps, ddim, lambda row: max(ddpm) - min(row) <= within)


def fewest_mean_ddpm(ddpm, ddim, steps, within=0.15):
    return _first_hit(steps, ddim, lambda row: all(_average(ddpm) - d <= within for d in row))


def fewest_first_model(ddpm, ddim, steps, within=0.15):
    return _first_hit(steps, ddim, lambda row: ddpm[0] - row[0] <= within)


def fewest_sorted_pairs(ddpm, ddim, steps, within=0.15):
    return _first_hit(steps, ddim, lambda row: all(p - d <= within for p, d in zip(sorted(ddpm), sorted(row))))


def fewest_any(ddpm, ddim, steps, within=0.15):
    return _first_hit(steps, ddim, lambda row: any(p - d <= within for p, d in zip(ddpm, row)))


def fewest_abs(ddpm, ddim, steps, within=0.15):
    return _first_hit(steps, ddim, lambda row: all(abs(p - d) <= within for p, d in zip(ddpm, row)))


def fewest_flipped(ddpm, ddim, steps, within=0.15):
    return _first_hit(steps, ddim, lambda row: all(d - p <= within for p, d in zip(ddpm, row)))


def fewest_strict(ddpm, ddim, steps, within=0.15):
    return _first_hit(steps, ddim, lambda row: all(p - d < within for p, d in zip(ddpm, row)))


def fewest_index(ddpm, ddim, steps, within=0.15):
    answer = fewest_all(ddpm, ddim, steps, within)
    return None if answer is None else steps.index(answer)


def fewest_largest(ddpm, ddim, steps, within=0.15):
    hits = [S for S, row in zip(steps, ddim) if all(p - d <= within for p, d in zip(ddpm, row))]
    return hits[-1] if hits else None


def fewest_last_if_never(ddpm, ddim, steps, within=0.15):
    return fewest_all(ddpm, ddim, steps, within) or steps[-1]


def fewest_fixed_threshold(ddpm, ddim, steps, within=0.15):
    return fewest_all(ddpm, ddim, steps, 0.15)


def fewest_skips_the_last(ddpm, ddim, steps, within=0.15):
    return fewest_all(ddpm, ddim[:-1], steps[:-1], within)


def fewest_sorts_in_place(ddpm, ddim, steps, within=0.15):
    ddpm.sort()
    for row in ddim:
        row.sort()
    return fewest_all(ddpm, ddim, steps, within)


def fewest_returns_a_bool(ddpm, ddim, steps, within=0.15):
    return fewest_all(ddpm, ddim, steps, within) is not None


def fewest_wrong_default(ddpm, ddim, steps, within=0.10):
    return fewest_all(ddpm, ddim, steps, within)


def fewest_next_step_count(ddpm, ddim, steps, within=0.15):
    hit = fewest_all(ddpm, ddim, steps, within)
    return None if hit is None else steps[min(steps.index(hit) + 1, len(steps) - 1)]


@pytest.mark.parametrize("fn, message", [
    (fewest_means, "compares the means over the models"),
    (fewest_best_ddpm, "with the best model's DDPM"),
    (fewest_mean_ddpm, "with the mean DDPM"),
    (fewest_first_model, "looks at the first model only"),
    (fewest_sorted_pairs, "pairs the models after sorting their shares"),
    (fewest_any, "asks it of some model"),
    (fewest_abs, "counts DDIM ahead of DDPM as a loss"),
    (fewest_flipped, "the wrong way round"),
    (fewest_strict, "use <=, not <"),
    (fewest_index, "not the step count"),
    (fewest_largest, "the fewest is the answer"),
    (fewest_last_if_never, "return None, not the last step count"),
    (fewest_fixed_threshold, "uses a fixed 0.15"),
    (fewest_skips_the_last, "never looks at the last step count"),
    (fewest_sorts_in_place, "changed its input in place"),
    (fewest_returns_a_bool, "got bool"),
    (fewest_wrong_default, "expected 25: the first step count"),
    (fewest_next_step_count, "expected 25: the first step count"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_fewest_ddim_steps_mistakes_are_named(fn, message):
    fails(C.check_fewest_ddim_steps, fn, message)


def test_every_fewest_ddim_steps_mistake_gives_a_wrong_answer_of_its_own():
    """Each mistake is wrong on some record, and no two mistakes give the same answers (else one hides the other)."""
    right = [C._fewest(p, d, s, w) for _, p, d, s, w in C._FEWEST_CASES]
    answers = [tuple(mistake(p, d, list(s), w) for _, p, d, s, w in C._FEWEST_CASES) for mistake, _ in C._FEWEST_MISTAKES]
    assert all(a != tuple(right) for a in answers)
    assert len(set(answers)) == len(answers)


def test_fewest_ddim_steps_on_the_recorded_samplers():
    """What the exercise finds on the course's record: pairs say 25 steps, the means alone would say 10."""
    from course_utils.weights.experiments import experiment_record

    runs = experiment_record("samplers")["runs"]
    steps = [10, 25, 50]
    ddpm = [run["DDPM, 1000 steps"]["confident"] for run in runs]
    ddim = [[run[f"DDIM, {S} steps"]["confident"] for run in runs] for S in steps]
    assert fewest_all(ddpm, ddim, steps, 0.15) == fewest_numpy(ddpm, ddim, steps, 0.15) == 25
    assert fewest_means(ddpm, ddim, steps, 0.15) == 10
    assert fewest_all(ddpm, ddim, steps, 0.20) == 10 and fewest_all(ddpm, ddim, steps, 0.08) is None
