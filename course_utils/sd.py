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

``pipeline(parts)`` assembles a real ``diffusers.StableDiffusionPipeline`` from them. The recipe
(``python -m course_utils recipe sd``) trains VAE and UNet once; the committed weights live in
``course_utils/weights/sd/``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_utils.remember import remembered
from course_utils.shapes import HELD_OUT, PAIRS, make_shapes

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


def text_parts(max_length: int = 16):
    """The frozen text side: (tokenizer, CLIPTextModel) from the committed mini-CLIP recipe.

    The mini-CLIP was trained with 16-token contexts; the tokenizer pads every prompt to
    ``max_length`` tokens with its end token, as Stable Diffusion's does to 77.
    """
    from transformers import CLIPTextConfig, CLIPTextModel

    from course_utils.clipformats import clip_tokenizer, hf_config, hf_state_dict
    from course_utils.recipes import load_miniclip

    clip = load_miniclip()
    config = hf_config(clip.config).text_config
    config.max_position_embeddings = max_length
    # CLIPModel's "text_model.*" tensors; transformers 5's CLIPTextModel names them without the prefix
    state = {k.removeprefix("text_model."): v for k, v in hf_state_dict(clip).items() if k.startswith("text_model.")}
    state["embeddings.position_embedding.weight"] = state["embeddings.position_embedding.weight"][:max_length]
    encoder = CLIPTextModel(CLIPTextConfig(**config.to_dict()))
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"mini-CLIP text weights do not fit CLIPTextModel: {missing} {unexpected}")
    tokenizer = clip_tokenizer()
    tokenizer.model_max_length = max_length
    return tokenizer, encoder.eval().requires_grad_(False)


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


# ---------------------------------------------------------------- the recipe's configuration

SD_VAE = VAEConfig()
SD_UNET = UNetConfig()


# ---------------------------------------------------------------- the parts, together

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


# ---------------------------------------------------------------- the VAE

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
    opt = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps,
                                                pct_start=max(0.05, 2 / config.steps))
    start, losses = time.perf_counter(), []
    vae.train()
    for step in tqdm(range(config.steps), desc=desc, disable=not progress, mininterval=1):
        x = make_shapes(config.batch_size, 32, seed=20_000 + step, split="all").images.to(device) * 2 - 1
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        loss = F.mse_loss(recon, x) + config.kl_weight * posterior.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    vae.eval()
    # SD scales latents to unit variance before diffusion (Rombach et al., section 4.3.2 and appendix G)
    with torch.no_grad():
        x = make_shapes(512, 32, seed=31_337, split="all").images.to(device) * 2 - 1
        z = vae.encode(x).latent_dist.mean
        recon = vae.decode(z).sample
    scale = (1.0 / z.std()).item()
    vae.register_to_config(scaling_factor=round(scale, 5))
    return {"training": asdict(config), "seconds": round(time.perf_counter() - start, 1),
            "reconstruction_mse": round(F.mse_loss(recon, x).item() / 4, 6),  # in [0, 1] pixel units
            "scaling_factor": round(scale, 5), "loss_every_100": [round(v, 5) for v in losses[::100]]}


@torch.no_grad()
def encode_images(vae, images: torch.Tensor, sample: bool = True) -> torch.Tensor:
    """(B, 3, 32, 32) in [0, 1] -> scaled latents (B, 4, 16, 16) with the recipe VAE."""
    dist = vae.encode(images.to(next(vae.parameters()).device) * 2 - 1).latent_dist
    return (dist.sample() if sample else dist.mean) * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents (B, 4, 16, 16) with the recipe VAE -> images (B, 3, 32, 32) in [0, 1]."""
    return ((vae.decode(latents / vae.config.scaling_factor).sample + 1) / 2).clamp(0, 1)


# ---------------------------------------------------------------- the UNet

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


def _ema_update(ema_model, model, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema_model.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


@remembered
def train_unet(parts: SDParts, config: SDTrainConfig = SDTrainConfig(), judge=None, progress: bool = True,
               desc: str = "UNet", on_eval=None) -> tuple[torch.nn.Module, SDHistory]:
    """Text-conditioned latent diffusion on the captioned shapes, epsilon objective.

    Each step draws fresh images and captions, encodes the images with the (frozen) VAE, noises the
    latents at random t and trains ``parts.unet`` to predict the noise from (x_t, t, caption tokens).
    Returns the EMA copy of the UNet (what samples best) and the history; ``parts.unet`` is the raw one.
    With ``eval_every`` and a ``judge``, measures prompt adherence along the way (guidance 3, 20 DDIM steps).
    """
    import copy

    from diffusers import DDPMScheduler

    torch.manual_seed(config.seed)
    device = parts.device
    unet, vae = parts.unet.train(), parts.vae.eval()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    train_sched = DDPMScheduler.from_config(parts.scheduler.config)
    abar = train_sched.alphas_cumprod.to(device)
    snr = abar / (1 - abar)
    prompts = PromptCache(parts.tokenizer, parts.text_encoder)
    prompts([""])
    opt = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=0.01)
    cosine = lambda s: min(1.0, (s + 1) / config.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / config.steps)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    history, start = SDHistory(), time.perf_counter()
    gen = torch.Generator().manual_seed(config.seed)
    for step in tqdm(range(config.steps), desc=desc, disable=not progress, mininterval=1):
        data = make_shapes(config.batch_size, 32, seed=1_000_000 + config.seed * 1_000_003 + step, split=config.split)
        captions = [("" if torch.rand((), generator=gen) < config.drop_caption else c) for c in data.captions]
        context = prompts(captions).to(device)  # (B, L, E)
        z0 = encode_images(vae, data.images)  # (B, 4, 16, 16)
        noise = torch.randn_like(z0)
        t = torch.randint(0, train_sched.config.num_train_timesteps, (len(z0),), device=device)
        zt = train_sched.add_noise(z0, noise, t)
        pred = unet(zt, t, encoder_hidden_states=context).sample
        per_sample = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))  # (B,)
        if config.snr_gamma:
            per_sample = per_sample * snr[t].clamp(max=config.snr_gamma) / snr[t]
        loss = per_sample.mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        _ema_update(ema, unet, config.ema if step > config.warmup else 0.0)
        history.loss.append(loss.item())
        if config.eval_every and judge is not None and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
            sampler = SDParts(parts.tokenizer, parts.text_encoder, vae, ema, parts.scheduler)
            seen = prompt_adherence(sampler, judge, pairs="seen", per_pair=config.eval_per_pair, guidance_scale=3.0,
                                    steps=20, progress=False)
            row = {"step": step + 1, "seconds": round(time.perf_counter() - start, 1), "loss": round(
                sum(history.loss[-50:]) / len(history.loss[-50:]), 4)} | {k: seen[k] for k in ("colour", "shape", "both")}
            history.evals.append(row)
            if on_eval:
                on_eval(row, ema)
            unet.train()
    history.seconds = time.perf_counter() - start
    return ema, history


# ---------------------------------------------------------------- sampling and measuring

@torch.no_grad()
def generate(parts: SDParts, prompts: list[str], guidance_scale: float = 3.0, steps: int = 25, seed: int = 0,
             batch_size: int = 128, progress: bool = False):
    """DDIM sampling with classifier-free guidance: images (N, 3, 32, 32) in [0, 1].

    The same computation as ``pipeline(parts)(prompts, ...)``, batched and without PIL, for measuring.
    """
    from diffusers import DDIMScheduler

    from course_utils.diffusion import classifier_free_guidance

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


def pair_prompts(pairs: str | list = "seen", template: str = "a {colour} {shape}", per_pair: int = 8):
    """(prompts, colour ids, shape ids) for each colour-shape pair of a split, ``per_pair`` times each."""
    from course_utils.shapes import COLOURS, SHAPES, caption

    if isinstance(pairs, str):
        pairs = {"seen": [p for p in PAIRS if p not in HELD_OUT], "heldout": list(HELD_OUT), "all": list(PAIRS)}[pairs]
    prompts, colours, shapes = [], [], []
    for c, s in pairs:
        prompts += [caption(c, s, template=template)] * per_pair
        colours += [COLOURS.index(c)] * per_pair
        shapes += [SHAPES.index(s)] * per_pair
    return prompts, torch.tensor(colours), torch.tensor(shapes)


def prompt_adherence(parts: SDParts, judge, pairs="seen", per_pair: int = 8, guidance_scale: float = 3.0,
                     steps: int = 25, seed: int = 0, progress: bool = False, template: str = "a {colour} {shape}"):
    """Generate ``per_pair`` images for each pair's prompt; the judge's verdicts, plus the images and timing."""
    from course_utils.judge import adherence

    prompts, colours, shapes = pair_prompts(pairs, template, per_pair)
    start = time.perf_counter()
    images = generate(parts, prompts, guidance_scale=guidance_scale, steps=steps, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    result = adherence(judge, images, colours, shapes)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()} | {
        "seconds": round(seconds, 2), "images": images, "prompts": prompts}


def diversity(judge, images: torch.Tensor, per_pair: int) -> float:
    """How varied each prompt's images are: the share of the 10 size x position combinations that the
    judge finds among a prompt's ``per_pair`` images (images grouped by prompt, in order), averaged
    over prompts. "a red circle" leaves size and position open, so a model that always draws the same
    picture scores 0.1 and one that varies them freely scores close to 1 (with 16 or more images per prompt)."""
    v = judge.read(images)
    combo = v["size"] * 5 + v["position"]  # (N,) in 0..9
    groups = combo.view(-1, per_pair)
    return sum(len(torch.unique(g)) for g in groups) / (len(groups) * min(10, per_pair))


# ---------------------------------------------------------------- cross-attention, the course's own

def course_attention(attn) -> "torch.nn.Module":
    """The course's ``MultiHeadAttention`` holding the weights of one diffusers ``Attention`` layer.

    diffusers' layer has ``to_q``, ``to_k``, ``to_v`` (no bias) and ``to_out[0]`` (with bias); the
    course's has ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` with biases, which are set to zero.
    """
    from course_utils.attention import MultiHeadAttention

    dim, context_dim = attn.to_q.out_features, attn.to_k.in_features
    mha = MultiHeadAttention(dim, attn.heads, context_dim=context_dim)
    with torch.no_grad():
        for mine, theirs in [(mha.q_proj, attn.to_q), (mha.k_proj, attn.to_k), (mha.v_proj, attn.to_v),
                             (mha.out_proj, attn.to_out[0])]:
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias if theirs.bias is not None else torch.zeros_like(mine.bias))
    return mha.to(attn.to_q.weight.device).eval()


class CourseCrossAttention:
    """A diffusers attention processor that runs every cross-attention layer (``attn2``) through the
    course's ``MultiHeadAttention(context=...)`` and keeps its attention weights.

        recorder = CourseCrossAttention.install(unet)
        ... run the UNet ...
        recorder.maps   # list of (layer name, weights (B, H, N, M)) in call order
        recorder.remove()  # diffusers' own processors back

    Queries come from the N image positions, keys and values from the M prompt tokens.
    """

    def __init__(self, name: str, attn, store: list):
        self.name, self.mha, self.store = name, course_attention(attn), store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if encoder_hidden_states is None or attention_mask is not None or hidden_states.ndim != 3:
            raise NotImplementedError("CourseCrossAttention handles plain cross-attention only (3-D input, no mask)")
        out, weights = self.mha(hidden_states, context=encoder_hidden_states, return_weights=True)
        self.store.append((self.name, weights.detach()))
        return attn.to_out[1](out)  # the layer's dropout (identity in eval mode), as diffusers applies it

    @staticmethod
    def install(unet) -> "_Recorder":
        return _Recorder(unet)


class _Recorder:
    def __init__(self, unet):
        self.unet, self.maps = unet, []
        self.original = dict(unet.attn_processors)
        processors = {}
        for name, proc in self.original.items():
            if name.endswith("attn2.processor"):  # cross-attention; attn1 is self-attention over positions
                module = unet.get_submodule(name.removesuffix(".processor"))
                processors[name] = CourseCrossAttention(name, module, self.maps)
            else:
                processors[name] = proc
        unet.set_attn_processor(processors)

    def remove(self):
        self.unet.set_attn_processor(self.original)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
