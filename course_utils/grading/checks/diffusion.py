"""Checks for exercise 06, diffusion (Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
2020; Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022).

    check_q_sample(q_sample)
    check_ddpm_step(ddpm_step)
    check_classifier_free_guidance(classifier_free_guidance)
    check_ddim_step(ddim_step)
    check_fewest_ddim_steps(fewest_ddim_steps)

The contract of the student's code (steps counted from 0, as in diffusers: ``betas[t]`` is the
paper's beta_{t+1}):

(a) ``q_sample(x0, t, noise, alphas_cumprod)``: x0 and noise (B, C, H, W), t a (B,) long tensor,
    alphas_cumprod (T,); returns sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, abar_t = alphas_cumprod[t]
    taken per sample.
(b) ``ddpm_step(x_t, t, eps, betas, noise)``: t an int; returns
    1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps) + sigma_t noise with alpha_t = 1 - beta_t,
    abar_t = prod_{s<=t} alpha_s, sigma_t = sqrt(beta_t), and no noise at t = 0.
(c) ``classifier_free_guidance(eps_uncond, eps_cond, guidance_scale)``:
    eps_uncond + guidance_scale (eps_cond - eps_uncond).
(d) ``ddim_step(x_t, t, t_prev, eps, alphas_cumprod)``: Song et al.'s eq. 12 with eta = 0; t_prev = -1 gives x0_hat.
(e) ``fewest_ddim_steps(ddpm, ddim, steps, within=0.15)``, an experiment read from a record: ddpm[j] is trained model
    j's share of confident DDPM samples, ddim[i][j] its share with DDIM in steps[i] steps; returns the first steps[i] at
    which every model's DDIM loses at most ``within`` against its own DDPM (ddpm[j] - ddim[i][j] <= within), or None.

Any correct implementation passes (gather or indexing, ``view`` or ``[:, None, None, None]``, ``torch.where`` or
``if`` for t = 0); the mistakes recognised are the message constants below.
"""
from __future__ import annotations

import torch

from course_utils.grading.checks import (
    CheckFailed,
    answers_on_records,
    call,
    close,
    explain_answers,
    first_choice,
    first_match,
    fmt_shape,
    keep_rng,
    mean,
    passed,
    randn,
    require_callable,
    require_tensor,
    unchanged,
)
from course_utils.models.diffusion import alphas_cumprod as _cumprod
from course_utils.models.diffusion import classifier_free_guidance as _cfg
from course_utils.models.diffusion import ddpm_step as _step
from course_utils.models.diffusion import q_sample as _q_sample

__all__ = ["check_q_sample", "check_ddpm_step", "check_classifier_free_guidance", "check_ddim_step",
           "check_fewest_ddim_steps"]

# Shape legend: B batch, C channels, H height, W width, T diffusion steps.

# ------------------------------------------------------------------ what the mistakes are called
WRONG_SHAPE = "expected a result of shape {want}, the shape of x, got {got}"

Q_BROADCAST = ("abar_t does not broadcast against the images: alphas_cumprod[t] is (B,); reshape it to "
               "(B, 1, 1, 1) (.view(-1, 1, 1, 1) or [:, None, None, None]) so each sample gets its own")
Q_NOT_PER_SAMPLE = ("every sample is noised with the same abar: take alphas_cumprod[t] for each sample's own t "
                    "(t is a (B,) tensor)")
Q_NO_SQRT = ("the square roots are missing: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, so that x_t has "
             "variance 1 (abar_t and 1 - abar_t are variances, not scales)")
Q_NOISE_NO_SQRT = "the noise is scaled by 1 - abar_t: its scale is sqrt(1 - abar_t)"
Q_SIGNAL_NO_SQRT = "x_0 is scaled by abar_t: its scale is sqrt(abar_t)"
Q_ONE_MINUS_SQRT = "the noise is scaled by 1 - sqrt(abar_t): its scale is sqrt(1 - abar_t)"
Q_SWAPPED = ("the coefficients are swapped: x_0 gets sqrt(abar_t) (near 1 at small t) and the noise "
             "sqrt(1 - abar_t)")
Q_OFF_BY_ONE = ("abar is taken at the wrong step (t - 1 or t + 1): use alphas_cumprod[t], the steps are "
                "counted from 0 as in diffusers")
Q_NO_SIGNAL_SCALE = "x_0 is not scaled: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps"
Q_ALPHAS = ("the result matches abar recomputed as a cumulative product of alphas_cumprod: the argument is "
            "already abar_t for every t, index it directly")
Q_WRONG = "x_t differs from sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, with abar_t = alphas_cumprod[t] per sample"

STEP_NOISE_AT_ZERO = ("noise is added at t = 0: the last step returns the mean, x_0 = 1/sqrt(alpha_0) "
                      "(x_1 - beta_0 / sqrt(1 - abar_0) eps), with no sigma z")
STEP_NO_NOISE = "no noise is added at t > 0: add sigma_t z with sigma_t = sqrt(beta_t) (z is the noise argument)"
STEP_SIGMA_BETA = "the noise is scaled by beta_t: sigma_t^2 = beta_t, so sigma_t = sqrt(beta_t)"
STEP_SIGMA_TILDE = ("the noise is scaled by the posterior's sqrt(beta~_t): a fine choice too (DDPM section 3.2), "
                    "but this exercise uses sigma_t = sqrt(beta_t)")
STEP_ABAR_FACTOR = "the mean is divided by sqrt(abar_t): the factor is 1/sqrt(alpha_t), one step's alpha_t = 1 - beta_t"
STEP_NO_SQRT_ALPHA = "the mean is divided by alpha_t: divide by sqrt(alpha_t)"
STEP_NO_SQRT_ONE_MINUS_ABAR = "eps is scaled by beta_t / (1 - abar_t): the denominator is sqrt(1 - abar_t)"
STEP_ALPHA_IN_EPS = ("eps is scaled by beta_t / sqrt(1 - alpha_t): the denominator uses the cumulative "
                     "abar_t = prod (1 - beta_s), not one step's alpha_t")
STEP_SIGN = "a sign is wrong: x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps) + sigma_t z"
STEP_OFF_BY_ONE = "beta, alpha or abar is taken at the wrong step: use index t for all three (steps count from 0)"
STEP_ABAR_OF_BETAS = "abar is the cumulative product of alpha = 1 - beta, not of beta"
STEP_ABAR_SUM = "abar is the cumulative product of alpha = 1 - beta (torch.cumprod), not a sum"
STEP_WRONG = ("x_{t-1} differs from 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps) + sqrt(beta_t) z "
              "with alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s")

CFG_SWAPPED = ("the arguments are swapped: guidance starts from eps_uncond and moves towards eps_cond, "
               "eps_uncond + w (eps_cond - eps_uncond)")
CFG_ONE_PLUS_W = ("this is the paper's (1 + w) convention, (1 + w) eps_cond - w eps_uncond: the course and diffusers "
                  "write eps_uncond + w (eps_cond - eps_uncond), so that w = 1 means no guidance")
CFG_SCALE_ON_UNCOND = "the scale multiplies eps_uncond: it multiplies the difference eps_cond - eps_uncond"
CFG_NO_BASE = "eps_uncond is not added back: eps_uncond + w (eps_cond - eps_uncond)"
CFG_SIGN = "a sign is wrong: eps_uncond + w (eps_cond - eps_uncond) moves towards eps_cond"
CFG_WRONG = "the result differs from eps_uncond + w (eps_cond - eps_uncond)"


def _tensor_result(result, want_shape) -> torch.Tensor:
    if tuple(require_tensor(result).shape) != tuple(want_shape):
        raise CheckFailed(WRONG_SHAPE.format(want=fmt_shape(want_shape), got=fmt_shape(result)))
    return result.detach()


# ---------------------------------------------------------------------- q_sample

def _q_variants(x0, t, noise, abar):
    """The classic wrong x_t, each with its message."""
    a = abar[t].view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    return [
        (a * x0 + (1 - a) * noise, Q_NO_SQRT),
        (a.sqrt() * x0 + (1 - a) * noise, Q_NOISE_NO_SQRT),
        (a * x0 + (1 - a).sqrt() * noise, Q_SIGNAL_NO_SQRT),
        (a.sqrt() * x0 + (1 - a.sqrt()) * noise, Q_ONE_MINUS_SQRT),
        ((1 - a).sqrt() * x0 + a.sqrt() * noise, Q_SWAPPED),
        (_q_sample(x0, (t - 1) % len(abar), noise, abar), Q_OFF_BY_ONE),
        (_q_sample(x0, (t + 1).clamp(max=len(abar) - 1), noise, abar), Q_OFF_BY_ONE),
        (x0 + (1 - a).sqrt() * noise, Q_NO_SIGNAL_SCALE),
        (_q_sample(x0, t, noise, torch.cumprod(abar, 0)), Q_ALPHAS),
        (_q_sample(x0, t, noise, torch.cumprod(1 - abar, 0)), Q_ALPHAS),
    ] + [(_q_sample(x0, torch.full_like(t, int(s)), noise, abar), Q_NOT_PER_SAMPLE) for s in t] + [
        (abar[t].mean().sqrt() * x0 + (1 - abar[t].mean()).sqrt() * noise, Q_NOT_PER_SAMPLE)]


def check_q_sample(q_sample) -> None:
    """Check ``q_sample(x0, t, noise, alphas_cumprod)`` against DDPM's closed form (eq. 4)."""
    require_callable(q_sample, "q_sample")
    with keep_rng():
        gen = torch.Generator().manual_seed(6)
        B, C, H, W = 4, 2, 3, 5
        abar = _cumprod(torch.linspace(0.05, 0.4, 10))  # (T,), T = 10: very different abar per step
        x0, noise = randn(B, C, H, W, generator=gen), randn(B, C, H, W, generator=gen)
        t = torch.tensor([7, 0, 3, 9])  # (B,)
        originals = {"x0": x0, "t": t, "noise": noise, "alphas_cumprod": abar}
        given = {name: x.clone() for name, x in originals.items()}
        where = f"for x0 of shape {fmt_shape(x0)}, t of shape {fmt_shape(t)} and alphas_cumprod of shape {fmt_shape(abar)}"
        try:
            result = call(q_sample, *given.values(), what="your q_sample", where=where)
        except CheckFailed as e:
            if "size of tensor" in str(e) or "broadcast" in str(e) or "shape" in str(e):
                raise CheckFailed(f"{Q_BROADCAST} ({e})") from e
            raise
        result = _tensor_result(result, x0.shape)
        unchanged(given, originals, hint="compute a new tensor")
        passed(f"returns x_t of shape {fmt_shape(x0)}, the shape of x0, and leaves its inputs unchanged")
        if not close(result, _q_sample(x0, t, noise, abar)):
            first_match(result, _q_variants(x0, t, noise, abar), Q_WRONG)
        passed("equals sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, each sample at its own step t")

        x0, noise = randn(3, 1, 8, 8, generator=gen), randn(3, 1, 8, 8, generator=gen)
        t = torch.tensor([1, 5, 2])
        result = call(q_sample, x0, t, noise, abar, what="your q_sample", where="for x0 of shape (3, 1, 8, 8)")
        if not close(_tensor_result(result, x0.shape), _q_sample(x0, t, noise, abar)):
            raise CheckFailed(Q_WRONG + " (for a batch of 3 images of shape (1, 8, 8): is a shape hard-coded?)")
        passed("works for any batch and image shape, e.g. (3, 1, 8, 8)")


# ---------------------------------------------------------------------- ddpm_step

def _step_variants(x_t, t, eps, betas, noise):
    """The classic wrong x_{t-1} at step t > 0, each with its message."""
    abar_all = _cumprod(betas)  # (T,)
    beta, alpha, abar = betas[t], 1 - betas[t], abar_all[t]
    mean = (x_t - beta / (1 - abar).sqrt() * eps) / alpha.sqrt()
    sigma = beta.sqrt()
    tilde = ((1 - abar_all[t - 1]) / (1 - abar) * beta).sqrt()

    def full(b, a, ab):
        return (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt() + b.sqrt() * noise

    return [
        (mean, STEP_NO_NOISE),
        (mean + beta * noise, STEP_SIGMA_BETA),
        (mean + tilde * noise, STEP_SIGMA_TILDE),
        ((x_t - beta / (1 - abar).sqrt() * eps) / abar.sqrt() + sigma * noise, STEP_ABAR_FACTOR),
        ((x_t - beta / (1 - abar).sqrt() * eps) / alpha + sigma * noise, STEP_NO_SQRT_ALPHA),
        ((x_t - beta / (1 - abar) * eps) / alpha.sqrt() + sigma * noise, STEP_NO_SQRT_ONE_MINUS_ABAR),
        ((x_t - beta / (1 - alpha).sqrt() * eps) / alpha.sqrt() + sigma * noise, STEP_ALPHA_IN_EPS),
        ((x_t + beta / (1 - abar).sqrt() * eps) / alpha.sqrt() + sigma * noise, STEP_SIGN),
        (mean - sigma * noise, STEP_SIGN),
        ((x_t + beta / (1 - abar).sqrt() * eps) / alpha.sqrt() - sigma * noise, STEP_SIGN),
        (full(betas[t - 1], 1 - betas[t - 1], abar_all[t - 1]), STEP_OFF_BY_ONE),
        (full(betas[t + 1], 1 - betas[t + 1], abar_all[t + 1]), STEP_OFF_BY_ONE),
        (full(beta, alpha, abar_all[t - 1]), STEP_OFF_BY_ONE),
        (full(beta, alpha, abar_all[t + 1]), STEP_OFF_BY_ONE),
        (full(beta, alpha, torch.cumprod(betas, 0)[t]), STEP_ABAR_OF_BETAS),
        (full(beta, alpha, (1 - betas).cumsum(0)[t].clamp(max=0.999)), STEP_ABAR_SUM),
        (full(beta, alpha, 1 - betas[: t + 1].sum()), STEP_ABAR_SUM),
    ]


def check_ddpm_step(ddpm_step) -> None:
    """Check ``ddpm_step(x_t, t, eps, betas, noise)`` against DDPM's ancestral step (algorithm 2)."""
    require_callable(ddpm_step, "ddpm_step")
    with keep_rng():
        gen = torch.Generator().manual_seed(7)
        B, C, H, W = 3, 2, 4, 4
        betas = torch.linspace(0.05, 0.3, 8)  # (T,), T = 8: large steps, so every mistake shows
        x_t, eps, noise = (randn(B, C, H, W, generator=gen) for _ in range(3))
        t = 5
        originals = {"x_t": x_t, "eps": eps, "betas": betas, "noise": noise}
        given = {name: x.clone() for name, x in originals.items()}
        where = f"for x_t of shape {fmt_shape(x_t)} at t = {t} with betas of shape {fmt_shape(betas)}"
        result = _tensor_result(call(ddpm_step, given["x_t"], t, given["eps"], given["betas"], given["noise"],
                                     what="your ddpm_step", where=where), x_t.shape)
        unchanged(given, originals, hint="compute a new tensor")
        passed(f"returns x_(t-1) of shape {fmt_shape(x_t)}, the shape of x_t, and leaves its inputs unchanged")
        if not close(result, _step(x_t, t, eps, betas, noise)):
            first_match(result, _step_variants(x_t, t, eps, betas, noise), STEP_WRONG)
        passed("equals 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps) + sqrt(beta_t) z at t = 5")

        last = call(ddpm_step, x_t.clone(), len(betas) - 1, eps.clone(), betas.clone(), noise.clone(),
                    what="your ddpm_step", where=f"at the first reverse step, t = {len(betas) - 1}")
        if not close(_tensor_result(last, x_t.shape), _step(x_t, len(betas) - 1, eps, betas, noise)):
            first_match(last, _step_variants(x_t, len(betas) - 1, eps, torch.cat([betas, betas[-1:]]), noise)[:10],
                         STEP_WRONG + f" (at t = {len(betas) - 1})")
        passed(f"works at the first reverse step, t = T - 1 = {len(betas) - 1}")

        zero = call(ddpm_step, x_t.clone(), 0, eps.clone(), betas.clone(), noise.clone(), what="your ddpm_step",
                    where="at the last step, t = 0")
        zero = _tensor_result(zero, x_t.shape)
        mean0 = _step(x_t, 0, eps, betas, noise)  # the mean: no noise at t = 0
        if not close(zero, mean0):
            if close(zero, mean0 + betas[0].sqrt() * noise) or close(zero, mean0 + betas[0] * noise):
                raise CheckFailed(STEP_NOISE_AT_ZERO)
            raise CheckFailed(STEP_WRONG + " (at t = 0, where abar_0 = alpha_0 = 1 - beta_0)")
        passed("adds no noise at the last step, t = 0")


# ---------------------------------------------------------------------- classifier_free_guidance

def check_classifier_free_guidance(classifier_free_guidance) -> None:
    """Check ``classifier_free_guidance(eps_uncond, eps_cond, guidance_scale)`` (Ho & Salimans 2022)."""
    require_callable(classifier_free_guidance, "classifier_free_guidance")
    with keep_rng():
        gen = torch.Generator().manual_seed(8)
        u, c = randn(2, 4, 3, 3, generator=gen), randn(2, 4, 3, 3, generator=gen)
        w = 7.5
        given = {"eps_uncond": u.clone(), "eps_cond": c.clone()}
        result = _tensor_result(call(classifier_free_guidance, *given.values(), w, what="your classifier_free_guidance",
                                     where=f"for predictions of shape {fmt_shape(u)} and guidance_scale {w}"), u.shape)
        unchanged(given, {"eps_uncond": u, "eps_cond": c}, hint="compute a new tensor")
        passed(f"returns a prediction of shape {fmt_shape(u)}, the shape of its inputs, and leaves them unchanged")
        if not close(result, _cfg(u, c, w)):
            first_match(result, [
                (c + w * (u - c), CFG_SWAPPED),
                (u + (1 + w) * (c - u), CFG_ONE_PLUS_W),
                (c + w * (c - u), CFG_ONE_PLUS_W),
                (w * u + (c - u), CFG_SCALE_ON_UNCOND),
                (c + w * u - u, CFG_SCALE_ON_UNCOND),
                (w * (c - u), CFG_NO_BASE),
                (u - w * (c - u), CFG_SIGN),
                (u + w * (u - c), CFG_SIGN),
            ], CFG_WRONG)
        passed("equals eps_uncond + w (eps_cond - eps_uncond) for w = 7.5")
        for scale, want, name in ((0.0, u, "eps_uncond"), (1.0, c, "eps_cond")):
            got = call(classifier_free_guidance, u.clone(), c.clone(), scale, what="your classifier_free_guidance",
                       where=f"for guidance_scale {scale}")
            if not close(_tensor_result(got, u.shape), want):
                raise CheckFailed(CFG_WRONG + f" (guidance_scale {scale:g} should give {name})")
        passed("w = 0 gives eps_uncond and w = 1 gives eps_cond: no guidance")


# ------------------------------------------------------------------ ddim_step

def _ddim_variants(x_t, t, t_prev, eps, abar):
    """The classic wrong DDIM steps, each with its message (a mistake that cannot show at this t_prev is None)."""
    a_t = abar[t]
    a_prev = abar[t_prev] if t_prev >= 0 else torch.ones(())
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return [
        (a_prev.sqrt() * x0,
         "the direction term is missing: x_{t_prev} = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps"),
        (a_prev.sqrt() * (x_t - (1 - a_t).sqrt() * eps) / a_t + (1 - a_prev).sqrt() * eps,
         "x0_hat divides by abar_t: it is (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)"),
        (a_prev.sqrt() * x0 + (1 - a_t).sqrt() * eps,
         "the direction uses abar_t: the noise that remains at t_prev is sqrt(1 - abar_prev) eps"),
        ((abar[-1].sqrt() * x0 + (1 - abar[-1]).sqrt() * eps) if t_prev < 0 else None,
         "t_prev = -1 read alphas_cumprod[-1], the LAST step's abar (Python counts from the end): past the end abar "
         "is 1, a clean image"),
        (x0, "this is x0_hat itself: move to t_prev, sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps"),
    ]


def check_ddim_step(ddim_step) -> None:
    """Check ``ddim_step(x_t, t, t_prev, eps, alphas_cumprod)`` against Song et al.'s eq. 12 with eta = 0."""
    from course_utils.models.diffusion import ddim_step as _ddim
    from course_utils.models.diffusion import linear_betas

    require_callable(ddim_step, "ddim_step")
    with keep_rng():
        abar = _cumprod(linear_betas(1000))
        gen = torch.Generator().manual_seed(17)
        x_t, eps = randn(3, 1, 8, 8, generator=gen), randn(3, 1, 8, 8, generator=gen)
        for t, t_prev, what in [(999, 949, "one of 20 steps"), (900, 500, "a long skip"), (40, -1, "the last step")]:
            copies = {"x_t": x_t.clone(), "eps": eps.clone(), "alphas_cumprod": abar.clone()}
            got = call(ddim_step, x_t, t, t_prev, eps, abar, what="your ddim_step", where=f"at t = {t}, t_prev = {t_prev}")
            unchanged({"x_t": x_t, "eps": eps, "alphas_cumprod": abar}, copies)
            if require_tensor(got).shape != x_t.shape:
                raise CheckFailed(WRONG_SHAPE.format(want=fmt_shape(x_t), got=fmt_shape(got)))
            if not close(got, _ddim(x_t, t, t_prev, eps, abar), atol=1e-5):
                at = f"at t = {t}, t_prev = {t_prev}"
                first_match(got, [(v, f"{message} ({at})") for v, message in _ddim_variants(x_t, t, t_prev, eps, abar)],
                            f"x_t_prev differs from sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps {at}", atol=1e-5)
            passed(f"{what}: t = {t} -> t_prev = {t_prev}")
    passed("leaves x_t, eps and alphas_cumprod unchanged")


# ------------------------------------------------------------------ fewest_ddim_steps: an experiment on samplers

def _own_ddpm(ddpm, row):
    """Each trained model's loss against its own DDPM: ddpm[j] - ddim[i][j]."""
    return [base - new for base, new in zip(ddpm, row)]


def _fewest(ddpm, ddim, steps, within=0.15, *, losses=_own_ddpm, every=all, inclusive=True, skip_last=False,
            **slips):
    """The contract's answer, and (through the keywords, ``slips`` those of ``first_choice``) the answers of the
    classic mistakes."""
    hits = [i for i, row in enumerate(ddim[:len(ddim) - skip_last])
            if every(loss <= within if inclusive else loss < within for loss in losses(ddpm, row))]
    return first_choice(hits, steps, **slips)


_STEPS = [10, 25, 50]
_FEWEST_CASES = [  # (what the case is about, ddpm (models,), ddim (steps, models), steps, within)
    ("every model within at 25, the means at 10", [0.75, 0.86, 0.70],
     [[0.70, 0.66, 0.61], [0.69, 0.74, 0.66], [0.72, 0.77, 0.68]], _STEPS, 0.15),
    ("DDIM ahead on one model", [0.60, 0.80, 0.78], [[0.70, 0.77, 0.74], [0.72, 0.79, 0.77], [0.74, 0.80, 0.78]],
     _STEPS, 0.05),
    ("a loss of exactly `within`", [0.75, 0.875, 0.625], [[0.5, 0.625, 0.375], [0.625, 0.75, 0.5], [0.75, 0.875, 0.625]],
     _STEPS, 0.25),
    ("never within", [0.80, 0.85, 0.75], [[0.50, 0.55, 0.45], [0.60, 0.66, 0.50], [0.62, 0.68, 0.55]], _STEPS, 0.15),
    ("the best models are not the same", [0.90, 0.70, 0.80], [[0.70, 0.68, 0.85], [0.82, 0.66, 0.78],
                                                              [0.86, 0.69, 0.79]], _STEPS, 0.13),
    ("one model within, the others not", [0.80, 0.80, 0.80], [[0.75, 0.50, 0.55], [0.78, 0.72, 0.58],
                                                              [0.79, 0.77, 0.76]], _STEPS, 0.10),
    ("the first model misleads", [0.70, 0.90, 0.85], [[0.68, 0.60, 0.62], [0.69, 0.74, 0.76], [0.70, 0.86, 0.83]],
     _STEPS, 0.08),
    ("within at 10, not at 25", [0.80, 0.82, 0.78], [[0.77, 0.79, 0.75], [0.70, 0.72, 0.60], [0.79, 0.81, 0.77]],
     _STEPS, 0.06),
    ("four models, five step counts", [0.70, 0.80, 0.75, 0.85],
     [[0.30, 0.40, 0.35, 0.45], [0.50, 0.60, 0.55, 0.62], [0.60, 0.66, 0.62, 0.71], [0.66, 0.73, 0.71, 0.78],
      [0.69, 0.79, 0.74, 0.84]], [5, 10, 20, 50, 100], 0.03),
    ("within only at the last", [0.80, 0.70, 0.90], [[0.50, 0.45, 0.60], [0.60, 0.50, 0.70], [0.78, 0.66, 0.89]],
     _STEPS, 0.05),
]
_FEWEST_MISTAKES = [  # (the mistake's answer on one case, the message)
    (lambda p, d, s, w: _fewest(p, d, s, w, index=True),
     "returns the position in `steps`, not the step count: return steps[i]"),
    (lambda p, d, s, w: _fewest(p, d, s, w, losses=lambda base, row: [mean(base) - mean(row)]),
     "compares the means over the models: a mean hides the one model that loses most; compare each model's DDIM "
     "with its own DDPM, ddpm[j] - ddim[i][j], and ask it of every model"),
    (lambda p, d, s, w: _fewest(p, d, s, w, losses=lambda base, row: [max(base) - new for new in row]),
     "compares every model's DDIM with the best model's DDPM: compare each with its own DDPM, ddpm[j] with "
     "ddim[i][j]"),
    (lambda p, d, s, w: _fewest(p, d, s, w, losses=lambda base, row: [mean(base) - new for new in row]),
     "compares every model's DDIM with the mean DDPM: compare each with its own DDPM, ddpm[j] with ddim[i][j]"),
    (lambda p, d, s, w: _fewest(p, d, s, w, losses=lambda base, row: [base[0] - row[0]]),
     "looks at the first model only: every model must lose at most `within`"),
    (lambda p, d, s, w: _fewest(p, d, s, w, losses=lambda base, row: _own_ddpm(sorted(base), sorted(row))),
     "pairs the models after sorting their shares: the model with the best DDPM need not have the best DDIM; pair "
     "them by position, ddpm[j] with ddim[i][j]"),
    (lambda p, d, s, w: _fewest(p, d, s, w, every=any),
     "asks it of some model: every model must lose at most `within` (all, not any)"),
    (lambda p, d, s, w: _fewest(p, d, s, w, losses=lambda base, row: [abs(b - n) for b, n in zip(base, row)]),
     "counts DDIM ahead of DDPM as a loss: the loss is ddpm[j] - ddim[i][j], not its absolute value (a model whose "
     "DDIM does better is within)"),
    (lambda p, d, s, w: _fewest(p, d, s, w, losses=lambda base, row: _own_ddpm(row, base)),
     "takes the difference the wrong way round: DDIM's loss is ddpm[j] - ddim[i][j]"),
    (lambda p, d, s, w: _fewest(p, d, s, w, inclusive=False),
     "a loss of exactly `within` counts as within: use <=, not <"),
    (lambda p, d, s, w: _fewest(p, d, s, w, largest=True),
     "returns the largest such step count: the fewest is the answer, the first one going up"),
    (lambda p, d, s, w: _fewest(p, d, s, w, last_if_never=True),
     "when no step count is within, return None, not the last step count"),
    (lambda p, d, s, w: _fewest(p, d, s), "uses a fixed 0.15: use the `within` you are given"),
    (lambda p, d, s, w: _fewest(p, d, s, w, skip_last=True),
     "never looks at the last step count: go through all of them"),
]


def check_fewest_ddim_steps(fewest_ddim_steps) -> None:
    """Check ``fewest_ddim_steps(ddpm, ddim, steps, within=0.15)`` -> the first ``steps[i]`` at which every trained
    model's DDIM share loses at most ``within`` against the same model's DDPM share, or None, on ten made-up records;
    a mistake is named only when it gives every answer the student gave."""
    require_callable(fewest_ddim_steps, "fewest_ddim_steps")
    answers = answers_on_records(fewest_ddim_steps, "fewest_ddim_steps",  # the first record: the default within=0.15
                                 [(case, (ddpm, ddim, steps) + ((within,) if n else ()))
                                  for n, (case, ddpm, ddim, steps, within) in enumerate(_FEWEST_CASES)],
                                 "ddpm, ddim or steps")
    explain_answers(answers, [_fewest(p, d, s, w) for _, p, d, s, w in _FEWEST_CASES],
                    [case for case, *_ in _FEWEST_CASES],
                    [([mistake(p, d, list(s), w) for _, p, d, s, w in _FEWEST_CASES], message)
                     for mistake, message in _FEWEST_MISTAKES],
                    "the first step count at which every model's DDIM loses at most `within` against its own DDPM, "
                    "ddpm[j] - ddim[i][j] <= within for every j (None if none)")
    passed(f"the fewest DDIM steps at which every model is within `within` of its own DDPM, on {len(_FEWEST_CASES)} "
           "made-up records (DDIM ahead is within, a loss of exactly `within` counts, None when never)")
