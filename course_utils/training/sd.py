"""Training the small Stable Diffusion: the VAE, then the text-conditioned UNet (chapter 07 and its recipe)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from course_utils.data.shapes import make_shapes
from course_utils.eval.metrics import prompt_adherence
from course_utils.models.sd import PromptCache, SDParts, encode_images
from course_utils.training.loop import fit, min_snr_weights
from course_utils.training.remember import remembered

__all__ = ["VAETrainConfig", "train_vae", "SDTrainConfig", "SD_VAE_TRAINING", "SD_TRAINING", "SDHistory", "train_unet"]


@dataclass
class VAETrainConfig:
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    kl_weight: float = 1e-6  # SD's autoencoder weights its KL term by about 1e-6 too: a nearly plain autoencoder
    seed: int = 0


def train_vae(vae, config: VAETrainConfig = VAETrainConfig(), progress: bool = True, desc: str = "VAE") -> dict:
    """Reconstruct fresh 32 px shapes (all 25 pairs) through the latent; sets ``scaling_factor`` at the end.

    Loss: the mean squared error in [-1, 1] pixels plus ``kl_weight`` times the KL to N(0, I) (SD's
    autoencoder adds perceptual and adversarial terms, which photographs need and shapes do not).
    Returns a record.
    """
    torch.manual_seed(config.seed)
    device = next(vae.parameters()).device

    def loss(step: int) -> torch.Tensor:
        x = make_shapes(config.batch_size, 32, seed=20_000 + step, split="all").images.to(device) * 2 - 1
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        return F.mse_loss(recon, x) + config.kl_weight * posterior.kl().mean()

    run = fit(vae, loss, config.steps, lr=config.lr, warmup=max(0.05, 2 / config.steps), schedule="one-cycle",
              progress=progress, desc=desc)
    # SD scales latents to unit variance before diffusion (Rombach et al., section 4.3.2 and appendix G)
    with torch.no_grad():
        x = make_shapes(512, 32, seed=31_337, split="all").images.to(device) * 2 - 1
        z = vae.encode(x).latent_dist.mean
        recon = vae.decode(z).sample
    scale = (1.0 / z.std()).item()
    vae.register_to_config(scaling_factor=round(scale, 5))
    return {"training": asdict(config), "seconds": round(run.seconds, 1),
            "reconstruction_mse": round(F.mse_loss(recon, x).item() / 4, 6),  # in [0, 1] pixel units
            "scaling_factor": round(scale, 5), "loss_every_100": [round(v, 5) for v in run.loss[::100]]}


@dataclass
class SDTrainConfig:
    steps: int = 4000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    drop_caption: float = 0.1  # share of captions replaced by "" so the same UNet also predicts unconditionally
    snr_gamma: float = 5.0  # min-SNR weighting (Hang et al., ICCV 2023); 0 for the plain simple loss
    ema: float = 0.999  # exponential moving average of the weights, used for sampling
    split: str = "train"  # held-out colour-shape pairs never seen
    seed: int = 0
    eval_every: int = 0
    eval_per_pair: int = 8


SD_VAE_TRAINING = VAETrainConfig(steps=1500, batch_size=32)
SD_TRAINING = SDTrainConfig(steps=4000, batch_size=64, lr=1e-3, eval_every=500, eval_per_pair=4)


@dataclass
class SDHistory:
    loss: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)  # {"step", "seconds", "colour", "shape", "both"}
    seconds: float = 0.0


@remembered
def train_unet(parts: SDParts, config: SDTrainConfig = SDTrainConfig(), judge=None, progress: bool = True,
               desc: str = "UNet", on_eval=None) -> tuple[torch.nn.Module, SDHistory]:
    """Text-conditioned latent diffusion on the captioned shapes, epsilon objective.

    Each step draws fresh images and captions, encodes the images with the (frozen) VAE, noises the
    latents at random t and trains ``parts.unet`` to predict the noise from (x_t, t, caption tokens).
    A share ``drop_caption`` of the captions is replaced by "", so that the same UNet also predicts
    without a prompt: the training half of classifier-free guidance (Ho and Salimans 2022).
    Returns the EMA copy of the UNet (what samples best) and the history; ``parts.unet`` is the raw one.
    With ``eval_every`` and a ``judge``, measures prompt adherence along the way (guidance 3, 20 DDIM steps).
    """
    from diffusers import DDPMScheduler

    torch.manual_seed(config.seed)
    device = parts.device
    unet, vae = parts.unet, parts.vae.eval()
    train_sched = DDPMScheduler.from_config(parts.scheduler.config)
    prompts = PromptCache(parts.tokenizer, parts.text_encoder)
    prompts([""])
    gen = torch.Generator().manual_seed(config.seed)

    def loss(step: int) -> torch.Tensor:
        data = make_shapes(config.batch_size, 32, seed=1_000_000 + config.seed * 1_000_003 + step, split=config.split)
        captions = [("" if torch.rand((), generator=gen) < config.drop_caption else c) for c in data.captions]
        context = prompts(captions).to(device)  # (B, L, E)
        z0 = encode_images(vae, data.images)  # (B, 4, 16, 16)
        noise = torch.randn_like(z0)
        t = torch.randint(0, train_sched.config.num_train_timesteps, (len(z0),), device=device)
        zt = train_sched.add_noise(z0, noise, t)
        per_sample = F.mse_loss(unet(zt, t, encoder_hidden_states=context).sample, noise,
                                reduction="none").mean(dim=(1, 2, 3))  # (B,)
        if config.snr_gamma:
            per_sample = per_sample * min_snr_weights(train_sched, t, config.snr_gamma)
        return per_sample.mean()

    def adherence(step: int, ema, run) -> dict:
        sampler = SDParts(parts.tokenizer, parts.text_encoder, vae, ema, parts.scheduler)
        seen = prompt_adherence(sampler, judge, pairs="seen", per_pair=config.eval_per_pair, guidance_scale=3.0,
                                steps=20, progress=False)
        row = {"step": step + 1, "seconds": round(run.seconds, 1),
               "loss": round(sum(run.loss[-50:]) / len(run.loss[-50:]), 4)} | {k: seen[k] for k in ("colour", "shape", "both")}
        if on_eval:
            on_eval(row, ema)
        return {k: v for k, v in row.items() if k != "step"}

    run = fit(unet, loss, config.steps, lr=config.lr, weight_decay=0.01,
              warmup=config.warmup, schedule="cosine", clip_grad=1.0, ema=config.ema, ema_after=config.warmup,
              every=config.eval_every if judge is not None else 0, evaluate=adherence if judge is not None else None,
              progress=progress, desc=desc)
    return run.ema, SDHistory(loss=run.loss, evals=run.evals, seconds=run.seconds)
