"""course_utils.models.diffusion: the schedules, q_sample and the update rules equal diffusers' own."""
import warnings

import pytest
import torch

from course_utils.models import diffusion as D
from course_utils.training.diffusion import DiffusionTrainConfig, train_diffusion

T = 1000


@pytest.fixture(scope="module")
def schedulers():
    from diffusers import DDIMScheduler, DDPMScheduler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "linear": DDPMScheduler(num_train_timesteps=T, beta_schedule="linear"),
            "cosine": DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2"),
            "ddpm": DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", variance_type="fixed_large",
                                  clip_sample=False),
            "ddim": DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=False),
        }


def test_schedules_equal_diffusers(schedulers):
    torch.testing.assert_close(D.linear_betas(T), schedulers["linear"].betas)
    torch.testing.assert_close(D.cosine_betas(T), schedulers["cosine"].betas)
    torch.testing.assert_close(D.alphas_cumprod(D.linear_betas(T)), schedulers["linear"].alphas_cumprod)


def test_schedules_shape_and_snr():
    for betas in (D.linear_betas(T), D.cosine_betas(T)):
        abar = D.alphas_cumprod(betas)
        assert betas.shape == abar.shape == (T,)
        assert (abar[1:] < abar[:-1]).all() and abar[0] > 0.99 and abar[-1] < 1e-3
        assert (D.snr(abar)[1:] < D.snr(abar)[:-1]).all()  # the SNR falls monotonically
    assert D.cosine_betas(T).max() <= 0.999


def test_q_sample_statistics():
    abar = D.alphas_cumprod(D.linear_betas(T))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1, 2, 2), 0.8)
    t = torch.full((20000,), 300)
    xt = D.q_sample(x0, t, torch.randn(x0.shape, generator=gen), abar)
    torch.testing.assert_close(xt.mean(), abar[300].sqrt() * 0.8, atol=0.01, rtol=0)
    torch.testing.assert_close(xt.std(), (1 - abar[300]).sqrt(), atol=0.01, rtol=0)
    mixed = D.q_sample(x0[:3], torch.tensor([0, 500, 999]), torch.zeros(3, 1, 2, 2), abar)
    torch.testing.assert_close(mixed[:, 0, 0, 0], abar[[0, 500, 999]].sqrt() * 0.8)


@pytest.mark.parametrize("t", [999, 500, 1, 0])
def test_ddpm_step_equals_diffusers(schedulers, t):
    gen = torch.Generator().manual_seed(t)
    x, eps = torch.randn(2, 1, 4, 4, generator=gen), torch.randn(2, 1, 4, 4, generator=gen)
    theirs = schedulers["ddpm"].step(eps, t, x, generator=torch.Generator().manual_seed(1)).prev_sample
    mine = D.ddpm_step(x, t, eps, D.linear_betas(T), torch.randn(x.shape, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


def test_ddim_step_and_timesteps_equal_diffusers(schedulers):
    ddim = schedulers["ddim"]
    ddim.set_timesteps(10)
    assert ddim.timesteps.tolist() == D.ddim_timesteps(T, 10)
    abar = D.alphas_cumprod(D.linear_betas(T))
    gen = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 1, 4, 4, generator=gen), torch.randn(2, 1, 4, 4, generator=gen)
    ts = D.ddim_timesteps(T, 10)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        torch.testing.assert_close(D.ddim_step(x, t, t_prev, eps, abar), ddim.step(eps, t, x, eta=0.0).prev_sample)


def test_guidance():
    u, c = torch.zeros(3), torch.ones(3)
    torch.testing.assert_close(D.classifier_free_guidance(u, c, 7.5), torch.full((3,), 7.5))


def test_timestep_embedding_is_the_unets():
    unet = D.build_denoiser(widths=(8, 16))
    t = torch.tensor([0, 1, 17, 999])
    torch.testing.assert_close(D.timestep_embedding(t, 8), unet.time_proj(t))


class Shrink(torch.nn.Module):
    """A stand-in denoiser: predicts a tenth of x_t."""

    def forward(self, x, t):
        return 0.1 * x


def test_samplers_shapes_determinism_and_diffusers_loop():
    from diffusers import DDIMScheduler

    betas = D.linear_betas(50)
    shape = (2, 1, 4, 4)
    a = D.sample_ddpm(Shrink(), shape, betas, generator=torch.Generator().manual_seed(3), keep=(49, 0), progress=False)
    b = D.sample_ddpm(Shrink(), shape, betas, generator=torch.Generator().manual_seed(3), progress=False)
    assert a.images.shape == shape and sorted(a.trajectory) == [0, 49] and b.trajectory == {}
    torch.testing.assert_close(a.images, b.images, rtol=0, atol=0)
    torch.testing.assert_close(a.trajectory[0], a.images)

    mine = D.sample_ddim(Shrink(), shape, betas, 5, generator=torch.Generator().manual_seed(4), progress=False)
    scheduler = DDIMScheduler(num_train_timesteps=50, beta_schedule="linear", clip_sample=False)
    scheduler.set_timesteps(5)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    for t in scheduler.timesteps:
        x = scheduler.step(Shrink()(x, t), t, x).prev_sample
    torch.testing.assert_close(mine.images, x)


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_training_reduces_the_loss():
    torch.manual_seed(0)
    unet = D.build_denoiser(image_size=8, widths=(8, 16))
    images = torch.rand(64, 1, 8, 8) * 2 - 1
    history = train_diffusion(unet, images, D.linear_betas(100),
                                DiffusionTrainConfig(steps=20, batch_size=16, warmup=5), progress=False)
    assert len(history.loss) == 20 and history.seconds > 0
    assert sum(history.loss[-5:]) < sum(history.loss[:5])


def test_ideal_eps_recovers_the_noise_of_a_lone_image():
    abar = D.alphas_cumprod(D.linear_betas(T))
    data = torch.rand(1, 1, 4, 4) * 2 - 1
    eps = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for t in (10, 500, 990):
        x_t = D.q_sample(data.expand(3, -1, -1, -1), torch.full((3,), t), eps, abar)
        torch.testing.assert_close(D.ideal_eps(x_t, t, data, abar), eps, rtol=1e-3, atol=1e-3)
