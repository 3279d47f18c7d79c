"""The chapter 07 checks, both ways: every correct style passes with the very same printout, and
every classic mistake fails with a message that names it."""

import pytest
import torch
from check_helpers import fails, run

from course_utils.grading.checks import sd as C
from course_utils.grading.checks.sd import (
    check_denoising_loss,
    check_encode_prompts,
    check_guided_noise,
)


@pytest.fixture(scope="module")
def text():
    from course_utils.weights.recipes import text_parts

    return text_parts()


def _ids(tokenizer, prompts, **kw):
    return tokenizer(prompts, return_tensors="pt", **kw).input_ids


# ----------------------------------------------------------------------------- encode_prompts, right

def encode_batch(tokenizer, text_encoder, prompts):
    ids = _ids(tokenizer, prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)
    with torch.no_grad():
        return text_encoder(ids)[0]


def encode_loop(tokenizer, text_encoder, prompts):
    """One prompt at a time, keyword arguments, no no_grad."""
    rows = []
    for p in prompts:
        ids = tokenizer(p, padding="max_length", truncation=True, return_tensors="pt")["input_ids"]
        rows.append(text_encoder(input_ids=ids).last_hidden_state[0])
    return torch.stack(rows)


def test_every_correct_encoder_prints_the_same(text):
    outputs = {run(lambda f: check_encode_prompts(f, *text), fn) for fn in (encode_batch, encode_loop)}
    assert len(outputs) == 1, outputs
    assert outputs.pop().count("✓") == 2


# ----------------------------------------------------------------------------- encode_prompts, wrong

WRONG_ENCODERS = {
    "padded to the longest prompt": (
        lambda t, e, p: e(_ids(t, p, padding=True, truncation=True)).last_hidden_state, "padding=\"max_length\""),
    "pooled output": (
        lambda t, e, p: e(_ids(t, p, padding="max_length", truncation=True)).pooler_output, "one vector per prompt"),
    "token ids": (lambda t, e, p: _ids(t, p, padding="max_length", truncation=True), "token ids"),
    "not truncated": (
        lambda t, e, p: e(_ids(t, p, padding="max_length")).last_hidden_state, "truncat"),
    "attention mask passed": (
        lambda t, e, p: e(**t(p, padding="max_length", truncation=True, return_tensors="pt")).last_hidden_state,
        "no attention mask"),
    "before the final norm": (
        lambda t, e, p: e(_ids(t, p, padding="max_length", truncation=True),
                          output_hidden_states=True).hidden_states[-1], "final layer norm"),
    "a list, not a tensor": (
        lambda t, e, p: list(e(_ids(t, p, padding="max_length", truncation=True)).last_hidden_state), "expected a tensor"),
}


@pytest.mark.parametrize("name", WRONG_ENCODERS)
def test_encoder_mistakes_are_named(text, name):
    fn, fragment = WRONG_ENCODERS[name]
    fails(lambda f: check_encode_prompts(f, *text), fn, fragment)


def test_unfinished_encoder_says_so(text):
    def stub(tokenizer, text_encoder, prompts):
        raise NotImplementedError()

    fails(lambda f: check_encode_prompts(f, *text), stub, "not implemented")


# ----------------------------------------------------------------------------- guided_noise, right

def guided_doubled(unet, latents, t, cond, uncond, guidance_scale):
    eps = unet(torch.cat([latents] * 2), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
    eps_uncond, eps_cond = eps.chunk(2)
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def guided_two_calls(unet, latents, t, cond, uncond, guidance_scale):
    """Two calls, cond first in the batch, written as a weighted sum."""
    with torch.no_grad():
        both = unet(torch.cat([latents, latents]), t, encoder_hidden_states=torch.cat([cond, uncond]))[0]
    eps_cond, eps_uncond = both[: len(latents)], both[len(latents):]
    return (1 - guidance_scale) * eps_uncond + guidance_scale * eps_cond


def guided_lerp(unet, latents, t, cond, uncond, guidance_scale):
    c = unet(latents, t, encoder_hidden_states=cond).sample
    u = unet(latents, t, encoder_hidden_states=uncond).sample
    return torch.lerp(u, c, float(guidance_scale))


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_every_correct_guidance_prints_the_same():
    outputs = {run(check_guided_noise, fn) for fn in (guided_doubled, guided_two_calls, guided_lerp)}
    assert len(outputs) == 1, outputs
    assert outputs.pop().count("✓") == 4


# ----------------------------------------------------------------------------- guided_noise, wrong

def _two(unet, latents, t, cond, uncond):
    return (unet(latents, t, encoder_hidden_states=cond).sample, unet(latents, t, encoder_hidden_states=uncond).sample)


def swapped_halves(unet, latents, t, cond, uncond, s):
    eps = unet(torch.cat([latents] * 2), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
    eps_cond, eps_uncond = eps.chunk(2)  # the halves the wrong way round
    return eps_uncond + s * (eps_cond - eps_uncond)


def in_place(unet, latents, t, cond, uncond, s):
    latents += 0.0 * latents + 1.0
    c, u = _two(unet, latents, t, cond, uncond)
    return u + s * (c - u)


WRONG_GUIDANCE = {
    "conditional only": (lambda un, l, t, c, u, s: _two(un, l, t, c, u)[0], C.COND_ONLY),
    "unconditional only": (lambda un, l, t, c, u, s: _two(un, l, t, c, u)[1], C.UNCOND_ONLY),
    "swapped halves": (swapped_halves, C.SWAPPED),
    "(1 + s) convention": (lambda un, l, t, c, u, s: (lambda ec, eu: ec + s * (ec - eu))(*_two(un, l, t, c, u)), C.ONE_PLUS),
    "scale ignored": (lambda un, l, t, c, u, s: (lambda ec, eu: eu + (ec - eu))(*_two(un, l, t, c, u)), C.COND_ONLY),
    "doubled batch returned": (
        lambda un, l, t, c, u, s: un(torch.cat([l, l]), t, encoder_hidden_states=torch.cat([u, c])).sample, "twice the batch"),
    "changes latents": (in_place, "changed latents in place"),
    "scale on the wrong term": (
        lambda un, l, t, c, u, s: (lambda ec, eu: s * eu + (ec - eu))(*_two(un, l, t, c, u)), C.WRONG_GUIDANCE),
}


@pytest.mark.parametrize("name", WRONG_GUIDANCE)
def test_guidance_mistakes_are_named(name):
    fn, message = WRONG_GUIDANCE[name]
    fails(check_guided_noise, fn, message.split("{")[0][:60])


def test_guidance_with_int_t_only_fails_clearly():
    def tensor_t_only(unet, latents, t, cond, uncond, s):
        t.item()  # breaks for a Python int
        return guided_doubled(unet, latents, t, cond, uncond, s)

    fails(check_guided_noise, tensor_t_only, "t = 500")


# ------------------------------------------------------------------ denoising_loss: caption dropout and the epsilon loss

def make_loss(style="add_noise", draw_uniform=True, inverted=False, target="noise", swap_order=False, mix="sqrt",
              detach=False, noise_like=False):
    """The loss in two correct styles ("add_noise" with torch.where; "by-hand" with an index assignment and the
    mean written out); the other keywords plant one classic mistake each."""

    def denoising_loss(unet, scheduler, latents, cond, uncond, p_drop, generator):
        B, T = len(latents), scheduler.config.num_train_timesteps
        if swap_order:
            t = torch.randint(0, T, (B,), generator=generator)
            u = torch.rand(B, generator=generator)
        else:
            u = torch.rand(B, generator=generator) if draw_uniform else torch.ones(B)
            t = torch.randint(0, T, (B,), generator=generator)
        noise = torch.randn_like(latents) if noise_like else torch.randn(latents.shape, generator=generator)
        drop = u >= p_drop if inverted else u < p_drop
        if style == "add_noise":
            context = torch.where(drop.view(B, 1, 1), uncond, cond)
            x_t = scheduler.add_noise(latents, noise, t)
        else:
            context = cond.clone()
            context[drop] = uncond[0]
            abar = scheduler.alphas_cumprod[t][:, None, None, None]
            x_t = abar.sqrt() * latents + (1 - abar).sqrt() * noise
        if mix == "linear":
            abar = scheduler.alphas_cumprod[t][:, None, None, None]
            x_t = abar * latents + (1 - abar) * noise
        prediction = unet(x_t, t, encoder_hidden_states=context).sample
        loss = ((prediction - (noise if target == "noise" else latents)) ** 2).mean()
        return loss.detach() if detach else loss

    return denoising_loss


@pytest.mark.parametrize("style", ["add_noise", "by-hand"])
def test_denoising_loss_correct_styles_pass(style):
    out = run(check_denoising_loss, make_loss(style=style))
    assert out.count("✓") == 2, out


LOSS_MISTAKES = {
    "no caption dropout": (dict(draw_uniform=False), "no caption is dropped"),
    "dropout inverted": (dict(inverted=True), "dropped with probability 1 - p_drop"),
    "predicts x0": (dict(target="latents"), "the target is the clean latents"),
    "linear mixing": (dict(mix="linear"), "x_t mixes by abar_t and 1 - abar_t"),
    "draw order": (dict(swap_order=True), "draws its random numbers in another order"),
    "detached": (dict(detach=True), "no gradient reaches the UNet"),
    "noise from the global generator": (dict(noise_like=True), "the noise does not come from `generator`"),
}


@pytest.mark.parametrize("case", LOSS_MISTAKES)
def test_denoising_loss_mistakes_are_named(case):
    keywords, words = LOSS_MISTAKES[case]
    fails(check_denoising_loss, make_loss(**keywords), words)


@pytest.mark.slow
def test_the_right_loss_reteaches_the_prompt_and_x0_does_not():
    """The judged short run: the contract's loss (in the by-hand style) raises the judge's colour-right share by far
    more than the check's 20 points; with x0 as the target it does not."""
    from course_utils.weights.recipes import load_judge, load_sd
    parts, judge = load_sd(), load_judge()
    printed = run(lambda fn: C.check_denoising_training(fn, parts, judge), make_loss(style="by-hand"))
    assert "re-taught a UNet that had forgotten its prompt" in printed
    fails(lambda fn: C.check_denoising_training(fn, parts, judge, steps=20), make_loss(target="latents"),
          "not up by 20 points")


def test_the_forgetful_unet_forgets_only_the_prompt():
    from course_utils.weights.recipes import load_sd
    parts = load_sd()
    forgetful = dict(C.forgetful_unet(parts).named_parameters())
    changed = {name for name, p in parts.unet.named_parameters() if not torch.equal(p, forgetful[name])}
    assert changed and all(name.split(".")[-2] in ("to_k", "to_v") and "attn2" in name for name in changed), changed


# ------------------------------------------------------------------ clear_gain (an experiment on guidance)

def gain_loop(runs, scales, key="seen"):
    best_without = max(run[key] for run in runs[0])
    for scale, seeds in zip(scales[1:], runs[1:]):
        if min(run[key] for run in seeds) > best_without:
            return scale
    return None


def gain_numpy(runs, scales, key="seen"):
    import numpy as np

    values = np.array([[run[key] for run in seeds] for seeds in runs])  # (scales, seeds)
    clear = np.flatnonzero(values[1:].min(1) > values[0].max()) + 1
    return float(scales[clear[0]]) if len(clear) else None


def gain_pairs(runs, scales, key="seen"):
    """Every pair of seeds, written out."""
    for i in range(1, len(scales)):
        if all(new[key] > old[key] for new in runs[i] for old in runs[0]):
            return scales[i]
    return None


@pytest.mark.parametrize("fn", [gain_loop, gain_numpy, gain_pairs], ids=lambda f: f.__name__)
def test_correct_clear_gain_passes_in_three_styles(fn):
    assert "✓ the smallest scale whose every seed beats every seed" in run(C.check_clear_gain, fn)


def _values(seeds, key):
    return [run[key] for run in seeds]


def gain_means(runs, scales, key="seen"):
    base = sum(_values(runs[0], key)) / len(runs[0])
    return next((s for s, seeds in zip(scales[1:], runs[1:]) if sum(_values(seeds, key)) / len(seeds) > base), None)


def gain_worst_vs_worst(runs, scales, key="seen"):
    return next((s for s, seeds in zip(scales[1:], runs[1:]) if min(_values(seeds, key)) > min(_values(runs[0], key))),
                None)


def gain_best_vs_best(runs, scales, key="seen"):
    return next((s for s, seeds in zip(scales[1:], runs[1:]) if max(_values(seeds, key)) > max(_values(runs[0], key))),
                None)


def gain_some_pair(runs, scales, key="seen"):
    return next((s for s, seeds in zip(scales[1:], runs[1:]) if max(_values(seeds, key)) > min(_values(runs[0], key))),
                None)


def gain_first_seed(runs, scales, key="seen"):
    return next((s for s, seeds in zip(scales[1:], runs[1:]) if seeds[0][key] > runs[0][0][key]), None)


def gain_ties(runs, scales, key="seen"):
    return next((s for s, seeds in zip(scales[1:], runs[1:]) if min(_values(seeds, key)) >= max(_values(runs[0], key))),
                None)


def gain_previous(runs, scales, key="seen"):
    return next((scales[i] for i in range(1, len(scales))
                 if min(_values(runs[i], key)) > max(_values(runs[i - 1], key))), None)


def gain_index(runs, scales, key="seen"):
    answer = gain_loop(runs, scales, key)
    return None if answer is None else scales.index(answer)


def gain_largest(runs, scales, key="seen"):
    clear = [s for s, seeds in zip(scales[1:], runs[1:]) if min(_values(seeds, key)) > max(_values(runs[0], key))]
    return clear[-1] if clear else None


def gain_last_if_never(runs, scales, key="seen"):
    return gain_loop(runs, scales, key) or scales[-1]


def gain_always_seen(runs, scales, key="seen"):
    return gain_loop(runs, scales, "seen")


def gain_sorts_in_place(runs, scales, key="seen"):
    for seeds in runs:
        seeds.sort(key=lambda run: run[key])
    return gain_loop(runs, scales, key)


def gain_either_way(runs, scales, key="seen"):
    base = _values(runs[0], key)
    return next((s for s, seeds in zip(scales[1:], runs[1:])
                 if min(_values(seeds, key)) > max(base) or max(_values(seeds, key)) < min(base)), None)


def gain_skips_the_last(runs, scales, key="seen"):
    return gain_loop(runs[:-1], scales[:-1], key)


def gain_wrong_default(runs, scales, key="heldout"):
    return gain_loop(runs, scales, key)


def gain_scale_before(runs, scales, key="seen"):
    answer = gain_loop(runs, scales, key)
    return None if answer is None else scales[scales.index(answer) - 1]


def gain_includes_the_baseline(runs, scales, key="seen"):
    """Starts at scales[0]: harmless (no seed beats its own best), so it must pass."""
    best_without = max(_values(runs[0], key))
    return next((s for s, seeds in zip(scales, runs) if min(_values(seeds, key)) > best_without), None)


def test_starting_at_the_baseline_is_harmless():
    assert "✓" in run(C.check_clear_gain, gain_includes_the_baseline)


@pytest.mark.parametrize("fn, message", [
    (gain_means, "compares the means"),
    (gain_worst_vs_worst, "compares the worst seeds of both"),
    (gain_best_vs_best, "compares the best seeds of both"),
    (gain_some_pair, "some seed beats some seed"),
    (gain_first_seed, "compares the first seeds only"),
    (gain_ties, "a tie is not a clear gain"),
    (gain_previous, "compares each scale with the one before it"),
    (gain_index, "not the scale"),
    (gain_largest, "the smallest is the answer"),
    (gain_last_if_never, "return None, not the last scale"),
    (gain_always_seen, "always reads 'seen'"),
    (gain_sorts_in_place, "changed its input in place"),
    (gain_either_way, "counts a clear drop as a gain"),
    (gain_skips_the_last, "never looks at the last scale"),
    (gain_wrong_default, "raised KeyError"),
    (gain_scale_before, "expected 2.0: the smallest scale after scales[0]"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_clear_gain_mistakes_are_named(fn, message):
    fails(C.check_clear_gain, fn, message)


def test_clear_gain_on_the_recorded_sweep():
    """What the exercise finds on the course's record: adherence gains clearly from s = 2, diversity never."""
    from course_utils.weights.experiments import experiment_record

    record = experiment_record("guidance")
    assert [gain_loop(record["runs"], record["scales"], key) for key in ("seen", "heldout", "diversity")] == [
        2.0, 2.0, None]
