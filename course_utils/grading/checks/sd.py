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

import torch

from course_utils.grading.checks import (
    CheckFailed,
    call,
    close,
    first_match,
    fmt_shape,
    keep_rng,
    passed,
    randn,
    require_callable,
    require_tensor,
    unchanged,
)

__all__ = ["check_encode_prompts", "check_guided_noise"]

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
