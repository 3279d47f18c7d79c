"""Checks for exercise 07, Stable Diffusion (Rombach et al., 2022; Ho and Salimans, 2022).

    check_encode_prompts(encode_prompts, tokenizer, text_encoder)
    check_guided_noise(guided_noise)

The contract of the student's code:

(a) ``encode_prompts(tokenizer, text_encoder, prompts)``: prompts a list of N strings; returns the
    text encoder's last hidden state (N, L, E) for the prompts tokenised exactly as
    ``StableDiffusionPipeline`` does: padded to ``tokenizer.model_max_length`` tokens (L) and
    truncated to it, no attention mask passed to the encoder.
(b) ``guided_noise(unet, latents, t, cond, uncond, guidance_scale)``: latents (B, C, h, w), t a
    timestep (an int or a 0-dim tensor), cond and uncond (B, L, E) token embeddings of the prompts
    and of the empty prompt; returns the classifier-free-guided noise prediction (B, C, h, w),
    eps_uncond + guidance_scale * (eps_cond - eps_uncond), where eps = unet(latents, t,
    encoder_hidden_states=...).sample.

Any correct implementation passes (one UNet call on a doubled batch or two calls, torch.no_grad or not).
"""
from __future__ import annotations

from dataclasses import dataclass

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

__all__ = ["check_encode_prompts", "check_guided_noise", "check_denoising_loss", "check_denoising_training",
           "check_clear_gain"]

# Shape legend: N prompts, L tokens, E text width; B latents, C latent channels, h x w latent positions.

# ------------------------------------------------------------------ what the mistakes are called
NOT_TENSOR = "expected a tensor, got {kind}"
RETURNED_IDS = ("you returned the token ids (integers): run the text encoder on them and return its "
                "last hidden state")
POOLED = ("you returned one vector per prompt, shape {got}: Stable Diffusion's UNet attends to every token, "
          "so return the whole sequence, text_encoder(ids).last_hidden_state, (N, L, E)")
NOT_PADDED = ("the sequence has {got} tokens, not tokenizer.model_max_length = {want}: pad every prompt to "
              "the full length (padding=\"max_length\"), as the pipeline does and as the UNet was trained")
TOO_LONG = ("a prompt longer than {want} tokens gave {got} tokens: truncate to tokenizer.model_max_length "
            "(truncation=True)")
LONG_PROMPT_FAILS = ("a prompt longer than the text encoder's {want} positions failed: truncate it "
                     "(tokenizer(..., truncation=True))")
PROMPTS_SHAPE = "expected token embeddings of shape {want} (prompts x tokens x width), got {got}"
MASKED = ("the padding positions differ from the pipeline's: StableDiffusionPipeline passes no attention mask "
          "to SD 1.x's text encoder, and the UNet was trained on the unmasked states")
BEFORE_FINAL_NORM = ("these are the hidden states before the final layer norm (hidden_states[-1]): "
                     "SD 1.x uses last_hidden_state, after it")
WRONG_EMBEDDINGS = ("the embeddings differ from the pipeline's: tokenizer(prompts, padding=\"max_length\", "
                    "max_length=tokenizer.model_max_length, truncation=True), then text_encoder(ids).last_hidden_state")

NOISE_SHAPE = "expected a noise prediction of shape {want}, like the latents, got {got}"
DOUBLED = ("the result has twice the batch, shape {got}: after one UNet call on the doubled batch, split it "
           "into the unconditional and conditional halves and combine them")
COND_ONLY = ("this is the conditional prediction alone: classifier-free guidance combines it with the "
             "unconditional one, eps_uncond + s * (eps_cond - eps_uncond)")
UNCOND_ONLY = ("this is the unconditional prediction alone: the prompt's embeddings (cond) are not used; "
               "combine both, eps_uncond + s * (eps_cond - eps_uncond)")
SWAPPED = ("the conditional and unconditional predictions are swapped: guidance moves away from the empty "
           "prompt, eps_uncond + s * (eps_cond - eps_uncond) (check which half of a doubled batch is which)")
ONE_PLUS = ("this is eps_cond + s * (eps_cond - eps_uncond), the (1 + s) convention of some papers: the "
            "pipeline's guidance_scale s multiplies the difference from eps_uncond, eps_uncond + s * (eps_cond - eps_uncond)")
WRONG_GUIDANCE = "the prediction differs from eps_uncond + guidance_scale * (eps_cond - eps_uncond)"


# ------------------------------------------------------------------ encode_prompts

def _reference_embeddings(tokenizer, text_encoder, prompts):
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt")
    with torch.no_grad():
        out = text_encoder(ids.input_ids, output_hidden_states=True)
        masked = text_encoder(ids.input_ids, attention_mask=ids.attention_mask).last_hidden_state
    return out.last_hidden_state, out.hidden_states[-1], masked


def check_encode_prompts(encode_prompts, tokenizer, text_encoder) -> None:
    """Check ``encode_prompts(tokenizer, text_encoder, prompts)`` against the pipeline's prompt encoding."""
    require_callable(encode_prompts, "encode_prompts")
    L = tokenizer.model_max_length
    long = "a small red circle on the left and " + " and ".join(["a large blue square at the top"] * 4)
    short = ["a red circle", "a large green cross at the bottom"]
    got = call(encode_prompts, tokenizer, text_encoder, short, what="your encode_prompts", where="for two short prompts")
    N, _, E = _reference_embeddings(tokenizer, text_encoder, short)[0].shape
    _shape(got, N, L, E)
    prompts = short + [long]
    want, before_norm, masked = _reference_embeddings(tokenizer, text_encoder, prompts)
    N = len(prompts)
    try:
        got = encode_prompts(tokenizer, text_encoder, prompts)
    except Exception as error:  # noqa: BLE001 - it worked on the short prompts: the long one is the trouble
        raise CheckFailed(LONG_PROMPT_FAILS.format(want=L)) from error
    _shape(got, N, L, E)
    passed(f"returns one embedding per token, {fmt_shape(want)}: {N} prompts padded or truncated to {L} tokens")
    got = got.detach().float().cpu()
    if not close(got, want, atol=1e-4):
        if close(got, masked, atol=1e-4):
            raise CheckFailed(MASKED)
        if close(got, before_norm, atol=1e-4):
            raise CheckFailed(BEFORE_FINAL_NORM)
        raise CheckFailed(WRONG_EMBEDDINGS)
    passed("equals the text encoder's last hidden state, as StableDiffusionPipeline computes it")


def _shape(got, N: int, L: int, E: int) -> None:
    """CheckFailed unless ``got`` is a float tensor (N, L, E), naming the mistake when it is not."""
    if not require_tensor(got, NOT_TENSOR).is_floating_point():
        raise CheckFailed(RETURNED_IDS)
    if got.ndim == 2 and got.shape == (N, E):
        raise CheckFailed(POOLED.format(got=fmt_shape(got)))
    if got.ndim == 3 and got.shape[0] == N and got.shape[2] == E and got.shape[1] != L:
        raise CheckFailed((TOO_LONG if got.shape[1] > L else NOT_PADDED).format(got=got.shape[1], want=L))
    if tuple(got.shape) != (N, L, E):
        raise CheckFailed(PROMPTS_SHAPE.format(want=fmt_shape((N, L, E)), got=fmt_shape(got)))


# ------------------------------------------------------------------ guided_noise

def _tiny_unet():
    """A small random UNet2DConditionModel (seeded): the check needs a function of (latents, t, text), not a good one."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=12,
                                attention_head_dim=2, norm_num_groups=8).eval()


def check_guided_noise(guided_noise) -> None:
    """Check ``guided_noise(unet, latents, t, cond, uncond, guidance_scale)`` against classifier-free guidance."""
    require_callable(guided_noise, "guided_noise")
    with keep_rng():
        unet = _tiny_unet()
        gen = torch.Generator().manual_seed(7)
        B, C, L, E = 3, 4, 5, 12
        latents = randn(B, C, 8, 8, generator=gen)
        cond, uncond = randn(B, L, E, generator=gen), randn(B, L, E, generator=gen)
        with torch.no_grad():
            eps_c = unet(latents, 500, encoder_hidden_states=cond).sample
            eps_u = unet(latents, 500, encoder_hidden_states=uncond).sample
        copies = [x.clone() for x in (latents, cond, uncond)]
        for t in (torch.tensor(500), 500):
            s = 7.5
            got = call(guided_noise, unet, latents, t, cond, uncond, s, what="your guided_noise",
                       where=f"with t = {t!r} and guidance_scale {s}")
            unchanged({"latents": latents, "cond": cond, "uncond": uncond}, dict(zip(("latents", "cond", "uncond"), copies)),
                      its_input=False)
            if require_tensor(got, NOT_TENSOR).shape == (2 * B, C, 8, 8):
                raise CheckFailed(DOUBLED.format(got=fmt_shape(got)))
            if got.shape != latents.shape:
                raise CheckFailed(NOISE_SHAPE.format(want=fmt_shape(latents), got=fmt_shape(got)))
            got = got.detach()
            want = eps_u + s * (eps_c - eps_u)
            if not close(got, want, atol=1e-4):
                first_match(got, [(eps_c, COND_ONLY), (eps_u, UNCOND_ONLY), (eps_c + s * (eps_u - eps_c), SWAPPED),
                                  (eps_c + s * (eps_c - eps_u), ONE_PLUS)], WRONG_GUIDANCE, atol=1e-4)
        passed(f"returns a noise prediction shaped like the latents, {fmt_shape(latents)}, "
               "for t an int or a 0-dim tensor")
        passed("equals eps_uncond + guidance_scale · (eps_cond − eps_uncond) at guidance_scale 7.5")
        for s, target in ((1.0, eps_c), (0.0, eps_u)):  # the conditional prediction, then the unconditional one
            got = call(guided_noise, unet, latents, torch.tensor(500), cond, uncond, s, what="your guided_noise",
                       where=f"with guidance_scale {s}")
            if not close(got.detach(), target, atol=1e-4):
                raise CheckFailed(WRONG_GUIDANCE + f" at guidance_scale {s}")
        passed("guidance_scale 1 gives the conditional prediction, 0 the unconditional one")
        passed("leaves the latents and both embeddings unchanged")


# ------------------------------------------------------------------ denoising_loss: the training half of guidance

DROPOUT_ORDER = ("the dropout's uniform numbers", "the timesteps", "the noise")  # the contract's order of random draws


GLOBAL_SEED = 1234  # the global generator's seed while the student's loss runs: a noise drawn from it is recognised


def _draws(B: int, T: int, shape, generator: torch.Generator, order=(0, 1, 2), uniform=True, global_noise=False):
    """The contract's random draws from ``generator``: (uniform (B,), t (B,), noise shape) in the given order.
    Two classic mistakes: ``uniform=False`` never draws the uniform (nothing is dropped); ``global_noise`` draws the
    noise from the global generator (seeded GLOBAL_SEED) instead of ``generator``."""
    makers = [lambda: torch.rand(B, generator=generator), lambda: torch.randint(0, T, (B,), generator=generator),
              lambda: torch.randn(shape, generator=None if global_noise else generator)]
    out = [torch.ones(B), None, None]  # a uniform that is never drawn drops nothing
    if global_noise:
        torch.manual_seed(GLOBAL_SEED)  # the caller's keep_rng restores the global state
    for k in order:
        if k or uniform:
            out[k] = makers[k]()
    return out


def _reference_loss(unet, scheduler, latents, cond, uncond, p_drop, seed, order=(0, 1, 2), keep_if_below=False,
                    target="noise", sqrt=True, uniform=True, global_noise=False):
    """The contract's loss, from a generator seeded with ``seed``; the keywords switch on classic mistakes."""
    B, T = len(latents), scheduler.config.num_train_timesteps
    u, t, noise = _draws(B, T, latents.shape, torch.Generator().manual_seed(seed), order, uniform, global_noise)
    drop = u >= p_drop if keep_if_below else u < p_drop  # (B,) True: this caption is replaced by the empty one
    context = torch.where(drop.view(B, 1, 1), uncond.expand_as(cond), cond)  # (B, L, E)
    abar = scheduler.alphas_cumprod[t].view(B, 1, 1, 1)
    x_t = abar.sqrt() * latents + (1 - abar).sqrt() * noise if sqrt else abar * latents + (1 - abar) * noise
    prediction = unet(x_t, t, encoder_hidden_states=context).sample
    return ((prediction - (noise if target == "noise" else latents)) ** 2).mean()


@keep_rng()
def check_denoising_loss(denoising_loss) -> None:
    """Check ``denoising_loss(unet, scheduler, latents, cond, uncond, p_drop, generator)`` against the contract's loss
    drawn from the same generator, at p_drop 0, 0.5 and 1."""
    from diffusers import DDPMScheduler

    require_callable(denoising_loss, "denoising_loss")
    unet, scheduler = _tiny_unet(), DDPMScheduler(num_train_timesteps=1000)
    gen = torch.Generator().manual_seed(11)
    B, L, E = 8, 5, 12
    latents, cond, uncond = randn(B, 4, 8, 8, generator=gen), randn(B, L, E, generator=gen), randn(1, L, E, generator=gen)
    copies = {"latents": latents.clone(), "cond": cond.clone(), "uncond": uncond.clone()}
    for p_drop in (0.0, 0.5, 1.0):
        torch.manual_seed(GLOBAL_SEED)  # inside keep_rng: the notebook's own random state is left alone
        got = call(denoising_loss, unet, scheduler, latents, cond, uncond, p_drop, torch.Generator().manual_seed(3),
                   what="your denoising_loss", where=f"with p_drop = {p_drop}")
        unchanged({"latents": latents, "cond": cond, "uncond": uncond}, copies, its_input=False)
        if require_tensor(got, NOT_TENSOR).ndim != 0:
            raise CheckFailed(f"expected the loss as a 0-dim tensor (the mean), got shape {fmt_shape(got)}")
        if not got.requires_grad:
            raise CheckFailed("no gradient reaches the UNet from your loss: keep every step in torch, outside "
                              "torch.no_grad(), and return the tensor (not .item())")
        with torch.no_grad():
            want = _reference_loss(unet, scheduler, latents, cond, uncond, p_drop, 3)
            if close(got.detach(), want, rtol=1e-4, atol=1e-6):
                continue
            mistakes = [({"target": "latents"}, "the target is the clean latents: the UNet predicts the noise, epsilon"),
                        ({"sqrt": False}, "x_t mixes by abar_t and 1 - abar_t: it is sqrt(abar_t) x_0 + sqrt(1 - abar_t) "
                                          "epsilon (scheduler.add_noise does it)"),
                        ({"uniform": False}, "no caption is dropped (and no uniform number drawn for it): replace "
                                             "each caption by the empty one with probability p_drop"),
                        ({"global_noise": True}, "the noise does not come from `generator` (torch.randn_like, or "
                                                 "torch.randn without generator=): draw it with "
                                                 "torch.randn(latents.shape, generator=generator)"),
                        ({"keep_if_below": True}, "the captions are dropped with probability 1 - p_drop: drop where "
                                                  "the uniform number is below p_drop")]
            if 0 < p_drop < 1:
                mistakes.append(({"p_drop": 0.0}, "no caption is dropped: replace each one by the empty caption "
                                                  "where its uniform number is below p_drop"))
            for keywords, mistake in mistakes:
                variant = _reference_loss(unet, scheduler, latents, cond, uncond, seed=3, **{"p_drop": p_drop, **keywords})
                if close(got.detach(), variant, rtol=1e-4, atol=1e-6):
                    raise CheckFailed(f"{mistake} (at p_drop = {p_drop})")
            for order in ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
                if close(got.detach(), _reference_loss(unet, scheduler, latents, cond, uncond, p_drop, 3, order),
                         rtol=1e-4, atol=1e-6):
                    raise CheckFailed("your loss is right but draws its random numbers in another order: draw "
                                      + ", then ".join(DROPOUT_ORDER) + ", as the contract says, so that the same "
                                      "generator gives the same batch")
            raise CheckFailed(f"the loss differs from the contract's at p_drop = {p_drop}: drop captions (draw below "
                              "p_drop), noise x_0 at t, predict the noise, mean squared error")
    passed("the loss of the contract for the same generator: no caption dropped, half of them, all of them")
    passed("a 0-dim tensor that the UNet's gradient flows from; the inputs left unchanged")


RETEACH_STEPS, RETEACH_LR, RETEACH_GAIN = 40, 1e-3, 0.2
RETEACH_JUDGING = {"pairs": "seen", "per_pair": 2, "guidance_scale": 3.0, "steps": 10, "seed": 1}  # 42 images


@dataclass
class Reteaching:
    """What ``check_denoising_training`` ran: the training losses, and the judge's verdicts (``metrics.prompt_adherence``:
    the shares with the colour, the shape, or both right, and the images) before and after."""
    losses: list[float]
    before: dict
    after: dict


def forgetful_unet(parts, seed: int = 0):
    """A copy of the recipe's UNet that has forgotten what the prompt says but not how to draw: the keys and values of
    its cross-attention (``attn2.to_k``, ``attn2.to_v``) redrawn from N(0, 0.02^2)."""
    import copy

    unet = copy.deepcopy(parts.unet)
    generator = torch.Generator().manual_seed(seed)
    for name, module in unet.named_modules():
        if name.endswith(("attn2.to_k", "attn2.to_v")):
            with torch.no_grad():
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.02)
    return unet


def check_denoising_training(denoising_loss, parts, judge, steps: int = RETEACH_STEPS) -> Reteaching:
    """Re-teach a UNet its prompt with the student's loss, and ask ``judge`` (the course's judge of generated shapes,
    ``recipes.load_judge()``, passed in: grading does not load weights) whether it worked.

    The recipe's UNet with its cross-attention keys and values redrawn (``forgetful_unet``) draws shapes but ignores
    the prompt: the judge finds the prompt's colour in about a sixth of its images, by chance. ``steps`` steps of AdamW
    on 32 captioned shapes each, with the student's loss (captions dropped one time in ten), must raise that share by
    ``RETEACH_GAIN`` (measured with the contract's loss, three training seeds: +40 to +47 points; with x0 as the target,
    or every caption dropped, +2). Judged on the 21 seen colour-shape prompts, two images each, guidance 3, 10 DDIM
    steps. About 30 s on one core."""
    from course_utils.data.shapes import make_shapes
    from course_utils.eval.metrics import prompt_adherence
    from course_utils.models.sd import PromptCache, SDParts, encode_images

    require_callable(denoising_loss, "denoising_loss")
    with keep_rng():
        unet = forgetful_unet(parts)
        student = SDParts(parts.tokenizer, parts.text_encoder, parts.vae, unet, parts.scheduler)
        prompts = PromptCache(parts.tokenizer, parts.text_encoder)
        uncond = prompts([""])  # (1, L, E)
        unet.eval()
        before = prompt_adherence(student, judge, **RETEACH_JUDGING)
        optimizer = torch.optim.AdamW(unet.parameters(), lr=RETEACH_LR, foreach=True)  # as in fit
        generator, losses = torch.Generator().manual_seed(0), []
        unet.train()
        for step in range(steps):
            data = make_shapes(32, 32, seed=step, split="train")
            latents, cond = encode_images(parts.vae, data.images, sample=False), prompts(data.captions)
            loss = call(denoising_loss, unet, parts.scheduler, latents, cond, uncond, 0.1, generator,
                        what="your denoising_loss", where=f"at training step {step + 1}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        unet.eval()
        after = prompt_adherence(student, judge, **RETEACH_JUDGING)
    if not after["colour"] >= before["colour"] + RETEACH_GAIN:
        raise CheckFailed(f"{steps} steps with your loss moved the judge's share of images in the prompt's colour from "
                          f"{before['colour']:.0%} to {after['colour']:.0%}, not up by {RETEACH_GAIN * 100:.0f} points: is it the "
                          "noise the UNet learns to predict, from the caption (dropped only one time in ten)?")
    passed(f"{steps} training steps with your loss re-taught a UNet that had forgotten its prompt: the share of its "
           f"images the judge finds in the prompt's colour rose by {RETEACH_GAIN * 100:.0f} points or more")
    return Reteaching(losses, before, after)


# ------------------------------------------------------------------ clear_gain: an experiment on guidance

def _clear_gain(runs, scales, key, *, better=lambda new, base: min(new) > max(base), against_previous=False,
                either_way=False, skip_last=False, **slips):
    """The contract's answer, and (through the keywords, ``slips`` those of ``first_choice``) the answers of the
    classic mistakes."""
    values = [[run[key] for run in seeds] for seeds in runs]  # (scales, seeds)
    base = lambda i: values[i - 1] if against_previous else values[0]  # noqa: E731
    hits = [i for i in range(1, len(scales) - skip_last)
            if better(values[i], base(i)) or either_way and max(values[i]) < min(base(i))]
    return first_choice(hits, scales, **slips)


def _runs(**by_key):
    """A made-up record: each keyword a (scales, seeds) list of values; runs[i][j] the dict of scale i, seed j."""
    return [[dict(zip(by_key, seed)) for seed in zip(*scale)] for scale in zip(*by_key.values())]


_SCALES = [1.0, 2.0, 3.0, 5.0]
_GAIN_CASES = [  # (what the case is about, runs, key)
    ("clear at s = 2", _runs(seen=[[0.80, 0.85, 0.82], [0.90, 0.93, 0.91], [0.95] * 3, [0.96] * 3]), "seen", _SCALES),
    ("the means mislead", _runs(seen=[[0.80, 0.85, 0.82], [0.95, 0.84, 0.86], [0.90, 0.88, 0.92], [0.95] * 3]),
     "seen", _SCALES),
    ("a tie is not clear", _runs(seen=[[0.80, 0.85, 0.82], [0.85, 0.90, 0.88], [0.90] * 3, [0.95] * 3]), "seen", _SCALES),
    ("never clear", _runs(seen=[[0.80, 0.90, 0.85], [0.85, 0.95, 0.88], [0.88, 0.92, 0.86], [0.90, 0.89, 0.87]]),
     "seen", _SCALES),
    ("small steps, a large sum", _runs(seen=[[0.70, 0.72, 0.71], [0.71, 0.80, 0.72], [0.74, 0.75, 0.76],
                                             [0.85] * 3]), "seen", _SCALES),
    ("the first seed misleads", _runs(seen=[[0.70, 0.90, 0.85], [0.80, 0.95, 0.95], [0.95, 0.92, 0.93],
                                            [0.96] * 3]), "seen", _SCALES),
    ("the worst seeds mislead", _runs(seen=[[0.60, 0.90, 0.85], [0.70, 0.88, 0.80], [0.95, 0.92, 0.93],
                                            [0.96] * 3]), "seen", _SCALES),
    ("the best seeds mislead", _runs(seen=[[0.60, 0.90, 0.85], [0.50, 0.95, 0.80], [0.95, 0.92, 0.93],
                                           [0.96] * 3]), "seen", _SCALES),
    ("key='diversity'", _runs(seen=[[0.80, 0.85, 0.82], [0.90, 0.93, 0.91], [0.95] * 3, [0.96] * 3],
                              diversity=[[0.75, 1.0, 0.75], [0.75, 0.875, 0.75], [0.75, 0.94, 0.875],
                                         [0.875, 0.75, 0.75]]), "diversity", _SCALES),
    ("only the last scale is clear", _runs(seen=[[0.80, 0.85, 0.82], [0.84, 0.90, 0.83], [0.86, 0.84, 0.88],
                                                  [0.83, 0.86, 0.90], [0.90, 0.91, 0.92]]), "seen",
     [1.0, 1.5, 2.0, 3.0, 7.5]),
    ("a clear drop first", _runs(seen=[[0.80, 0.85, 0.82], [0.70, 0.75, 0.72], [0.86, 0.90, 0.88], [0.95] * 3]),
     "seen", [1.0, 1.5, 3.0, 7.5]),
]

_GAIN_MISTAKES = [  # (the mistake's answer on one case, the message)
    (lambda r, s, k: _clear_gain(r, s, k, index=True), "returns the position in `scales`, not the scale"),
    (lambda r, s, k: _clear_gain(r, s, k, better=lambda new, base: mean(new) > mean(base)),
     "compares the means: a higher mean can come from one lucky seed; ask that the worst seed at the scale beats "
     "the best seed at scales[0]"),
    (lambda r, s, k: _clear_gain(r, s, k, better=lambda new, base: min(new) > min(base)),
     "compares the worst seeds of both: the worst seed at the scale must beat the best seed at scales[0]"),
    (lambda r, s, k: _clear_gain(r, s, k, better=lambda new, base: max(new) > max(base)),
     "compares the best seeds of both: the worst seed at the scale must beat the best seed at scales[0]"),
    (lambda r, s, k: _clear_gain(r, s, k, better=lambda new, base: max(new) > min(base)),
     "asks only that some seed beats some seed: every seed at the scale must beat every seed at scales[0]"),
    (lambda r, s, k: _clear_gain(r, s, k, better=lambda new, base: new[0] > base[0]),
     "compares the first seeds only: every seed at the scale must beat every seed at scales[0]"),
    (lambda r, s, k: _clear_gain(r, s, k, better=lambda new, base: min(new) >= max(base)),
     "a tie is not a clear gain: the worst seed must be strictly above the best seed at scales[0] (>, not >=)"),
    (lambda r, s, k: _clear_gain(r, s, k, against_previous=True),
     "compares each scale with the one before it: compare every scale with scales[0], the baseline"),
    (lambda r, s, k: _clear_gain(r, s, k, largest=True), "returns the largest such scale: the smallest is the answer"),
    (lambda r, s, k: _clear_gain(r, s, k, last_if_never=True), "when no scale is clear, return None, not the last scale"),
    (lambda r, s, k: _clear_gain(r, s, "seen"), "always reads 'seen': read the measure named by `key`"),
    (lambda r, s, k: _clear_gain(r, s, k, either_way=True),
     "counts a clear drop as a gain: every seed must be above every seed at scales[0], not below"),
    (lambda r, s, k: _clear_gain(r, s, k, skip_last=True), "never looks at the last scale: go through all of them"),
]


def check_clear_gain(clear_gain) -> None:
    """Check ``clear_gain(runs, scales, key="seen")`` -> the smallest scale after ``scales[0]`` at which every seed's
    ``key`` beats every seed's at ``scales[0]`` (the worst above the best), or None, on eleven made-up records shaped
    like ``experiments/guidance.json``; a mistake is named only when it gives every answer the student gave."""
    require_callable(clear_gain, "clear_gain")
    answers = answers_on_records(clear_gain, "clear_gain",  # the first record relies on the default, key="seen"
                                 [(case, (runs, scales) + ((key,) if n else ()))
                                  for n, (case, runs, key, scales) in enumerate(_GAIN_CASES)],
                                 "the runs or the scales")
    explain_answers(answers, [_clear_gain(r, sc, k) for _, r, k, sc in _GAIN_CASES], [c for c, *_ in _GAIN_CASES],
                    [([mistake(r, list(sc), k) for _, r, k, sc in _GAIN_CASES], message)
                     for mistake, message in _GAIN_MISTAKES],
                    "the smallest scale after scales[0] whose worst seed is strictly above the best seed at scales[0] "
                    "(None if none)")
    passed(f"the smallest scale whose every seed beats every seed without guidance, on {len(_GAIN_CASES)} made-up "
           "records (ties are not clear, None when never)")
