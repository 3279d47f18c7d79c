"""A Stable Diffusion built small, from parts the course trains: text encoder, UNet, VAE, scheduler.

Stable Diffusion (Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models",
CVPR 2022) is three networks and a scheduler:

- a **text encoder** (CLIP's, frozen) turns the prompt into a sequence of token embeddings;
- a **UNet** predicts the noise in a latent image at step t, and reads the prompt through
  cross-attention: its queries come from the image positions, keys and values from the tokens;
- a **VAE** maps images to latents (8 times smaller per side in SD, 4 channels) and back, so the
  diffusion runs where it is cheap;
- the **scheduler** (DDPM for training, DDIM or another for sampling) holds the noise schedule.

Here the same four parts come from ``diffusers`` and ``transformers`` built small, for the course's
32 px captioned shapes:

- text encoder: the course's recipe mini-CLIP text transformer (chapter 05), as transformers'
  ``CLIPTextModel``, with a ``CLIPTokenizer`` built from the ``clip`` package's vocabulary;
- VAE: diffusers' ``AutoencoderKL``, 32 x 32 x 3 -> 16 x 16 x 4 (``VAEConfig``), 3 times fewer numbers;
- UNet: diffusers' ``UNet2DConditionModel`` on 16 x 16 x 4 latents (``UNetConfig``);
- scheduler: ``DDPMScheduler`` with the cosine schedule for training, ``DDIMScheduler`` for sampling.

``pipeline(parts)`` assembles a real ``diffusers.StableDiffusionPipeline`` from them. Training is in
``course_utils.training.sd``; the recipe (``python -m course_utils recipe sd``) trains VAE and UNet once, and
``course_utils.weights.recipes.load_sd`` loads the committed weights (``course_utils/weights/sd/``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from course_utils.models.diffusion import classifier_free_guidance

__all__ = ["VAEConfig", "UNetConfig", "build_vae", "build_unet", "embed_prompts", "noise_schedulers", "SD_VAE", "SD_UNET", "SDParts", "pipeline", "seconds_per_image", "PromptCache", "encode_images", "decode_latents", "generate"]


# Shape legend: B batch, C channels, H x W pixels (32 x 32), h x w latent positions (16 x 16),
# L tokens of the prompt, E text width (64), T diffusion steps. The recipe's latents are 16 x 16 x 4.


TRAIN_STEPS_T = 1000  # the diffusion process's T, as in DDPM and SD


@dataclass
class VAEConfig:
    block_out_channels: tuple[int, ...] = (32, 64)  # one downsampling: 32 px -> 16 x 16 latents
    latent_channels: int = 4
    layers_per_block: int = 1
    norm_num_groups: int = 16


@dataclass
class UNetConfig:
    sample_size: int = 16  # latent side
    in_channels: int = 4  # latent channels
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # 16 -> 8 -> 4 latent positions
    layers_per_block: int = 1
    cross_attention_dim: int = 64  # the mini-CLIP text width
    heads: tuple[int, ...] = (1, 2, 2)  # attention heads per level: 32 features per head
    norm_num_groups: int = 16
    cross_attention_levels: tuple[bool, ...] = (False, True, True)  # the prompt is read at 8 x 8 and 4 x 4
    # also pool the prompt's tokens into the time embedding, which every ResNet block adds (diffusers'
    # addition_embed_type="text"): a global path for global attributes such as colour
    pooled_text: bool = False


def build_vae(config: VAEConfig = VAEConfig()):
    from diffusers import AutoencoderKL

    n = len(config.block_out_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=config.block_out_channels,
                         layers_per_block=config.layers_per_block, latent_channels=config.latent_channels,
                         norm_num_groups=config.norm_num_groups, sample_size=32)


def build_unet(config: UNetConfig = UNetConfig()):
    from diffusers import UNet2DConditionModel

    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in config.cross_attention_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.cross_attention_levels))
    return UNet2DConditionModel(sample_size=config.sample_size, in_channels=config.in_channels,
                                out_channels=config.in_channels,
                                down_block_types=down, up_block_types=up,
                                mid_block_type="UNetMidBlock2DCrossAttn",
                                block_out_channels=config.block_out_channels, layers_per_block=config.layers_per_block,
                                cross_attention_dim=config.cross_attention_dim,
                                # diffusers' UNet2DConditionModel reads its `attention_head_dim` as the NUMBER of
                                # heads (a naming slip kept for old checkpoints: SD 1.x's 8 means 8 heads of 40+)
                                attention_head_dim=config.heads, norm_num_groups=config.norm_num_groups,
                                **(dict(addition_embed_type="text", addition_embed_type_num_heads=2)
                                   if config.pooled_text else {}))


@torch.no_grad()
def embed_prompts(tokenizer, encoder, prompts: list[str]) -> torch.Tensor:
    """Prompts -> (N, L, E) token embeddings, exactly as StableDiffusionPipeline computes them."""
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return encoder(ids.to(encoder.device))[0]


def noise_schedulers():
    """(DDPMScheduler for training, DDIMScheduler for sampling) sharing the cosine schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(num_train_timesteps=TRAIN_STEPS_T, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon")
    return DDPMScheduler(**common, clip_sample=False), DDIMScheduler(**common, clip_sample=False,
                                                                     set_alpha_to_one=False, steps_offset=1)


SD_VAE = VAEConfig()
SD_UNET = UNetConfig()


@dataclass
class SDParts:
    """The four parts of a Stable Diffusion, plus the VAE's latent scaling (SD 1.x: 0.18215)."""
    tokenizer: object
    text_encoder: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module
    scheduler: object  # for sampling (DDIM)

    def to(self, device):
        for m in (self.text_encoder, self.vae, self.unet):
            m.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device


def pipeline(parts: SDParts):
    """A real ``diffusers.StableDiffusionPipeline`` assembled from the course's parts (no safety checker:
    the course's images are coloured shapes)."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer,
                                   unet=parts.unet, scheduler=parts.scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def seconds_per_image(pipe, steps: int, guidance: bool = True) -> float:
    """What one image costs ``pipe`` on its device at its default size, measured before sampling: one UNet
    call (on two latents with guidance: the prompt's and the empty prompt's, in one batch) times
    ``steps``, plus one VAE decode, each timed after a first call that warms up."""
    unet, device, dtype = pipe.unet, pipe.unet.device, pipe.unet.dtype
    size = unet.config.sample_size
    latents = torch.randn(2 if guidance else 1, unet.config.in_channels, size, size, device=device, dtype=dtype)
    context = torch.randn(len(latents), pipe.tokenizer.model_max_length, unet.config.cross_attention_dim,
                          device=device, dtype=dtype)

    def timed(call) -> float:  # the second of two calls: the first pays for warming up (CUDA's kernels)
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            with torch.no_grad():
                call()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - start)
        return seconds[-1]

    per_step = timed(lambda: unet(latents, 500, encoder_hidden_states=context))  # (2, 4, h, w): one step
    decode = timed(lambda: pipe.vae.decode(latents[:1] / pipe.vae.config.scaling_factor))  # -> (1, 3, 8h, 8w)
    return steps * per_step + decode


class PromptCache:
    """Token embeddings (L, E) of each prompt, computed once: the text encoder is frozen."""

    def __init__(self, tokenizer, encoder):
        self.tokenizer, self.encoder, self.table = tokenizer, encoder, {}

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        missing = sorted({p for p in prompts if p not in self.table})
        if missing:
            for p, e in zip(missing, embed_prompts(self.tokenizer, self.encoder, missing)):
                self.table[p] = e.cpu()
        return torch.stack([self.table[p] for p in prompts])  # (N, L, E)


@torch.no_grad()
def encode_images(vae, images: torch.Tensor, sample: bool = True) -> torch.Tensor:
    """(B, 3, 32, 32) in [0, 1] -> scaled latents (B, 4, 16, 16) with the recipe VAE."""
    dist = vae.encode(images.to(next(vae.parameters()).device) * 2 - 1).latent_dist
    return (dist.sample() if sample else dist.mean) * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents (B, 4, 16, 16) with the recipe VAE -> images (B, 3, 32, 32) in [0, 1]."""
    return ((vae.decode(latents / vae.config.scaling_factor).sample + 1) / 2).clamp(0, 1)


@torch.no_grad()
def generate(parts: SDParts, prompts: list[str], guidance_scale: float = 3.0, steps: int = 25, seed: int = 0,
             batch_size: int = 128, progress: bool = False):
    """DDIM sampling with classifier-free guidance: images (N, 3, 32, 32) in [0, 1].

    The same computation as ``pipeline(parts)(prompts, ...)``, batched and without PIL, for measuring.
    """
    from diffusers import DDIMScheduler

    device = parts.device
    cache = PromptCache(parts.tokenizer, parts.text_encoder)
    gen = torch.Generator().manual_seed(seed)
    size = parts.unet.config.sample_size
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i:i + batch_size]
        cond = cache(chunk).to(device)
        uncond = cache([""] * len(chunk)).to(device)
        scheduler = DDIMScheduler.from_config(parts.scheduler.config)
        scheduler.set_timesteps(steps)
        z = torch.randn(len(chunk), parts.unet.config.in_channels, size, size, generator=gen).to(device)
        for t in tqdm(scheduler.timesteps, desc="sampling", disable=not progress, mininterval=1, leave=False):
            if guidance_scale == 1.0:
                eps = parts.unet(z, t, encoder_hidden_states=cond).sample
            else:
                both = parts.unet(torch.cat([z, z]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
                eps_uncond, eps_cond = both.chunk(2)
                eps = classifier_free_guidance(eps_uncond, eps_cond, guidance_scale)
            z = scheduler.step(eps, t, z).prev_sample
        out.append(decode_latents(parts.vae, z).cpu())
    return torch.cat(out)
