"""The small Stable Diffusion (course_utils.models.sd), its committed recipe weights, the judge, and the
Stable Diffusion stand-in: each part does what chapter 07 says, and CI re-checks the recipe's quality."""
from dataclasses import asdict

import pytest
import torch

from course_utils.data.shapes import COLOURS, HELD_OUT, PAIRS, SHAPES, make_shapes
from course_utils.eval import metrics
from course_utils.eval.metrics import adherence
from course_utils.interop.diffusers import CourseCrossAttention
from course_utils.models import sd
from course_utils.models.judges import HEADS
from course_utils.training import sd as sd_training
from course_utils.weights.recipes import load_judge, load_sd, sd_record


@pytest.fixture(scope="module")
def parts():
    return load_sd()


@pytest.fixture(scope="module")
def judge():
    return load_judge()


def test_judge_reads_real_images(judge):
    data = make_shapes(600, 32, seed=2024, split="all")
    v = judge.read(data.images)
    truth = {"colour": data.colour, "shape": data.shape, "size": data.size_id, "position": data.position}
    assert set(truth) == set(HEADS)
    for name, labels in truth.items():
        accuracy = (v[name] == labels).float().mean().item()
        assert accuracy >= 0.99, f"the judge reads {name} right on {accuracy:.1%} of real images"
    result = adherence(judge, data.images, data.colour, data.shape)
    assert result["both"] >= 0.99 and result["n"] == 600
    wrong = adherence(judge, data.images, (data.colour + 1) % 5, data.shape)
    assert wrong["colour"] < 0.01 and wrong["both"] < 0.01


def test_judge_rejects_bad_input(judge):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        judge.read(torch.rand(3, 32, 32))


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_vae_keeps_what_the_judge_reads(parts, judge):
    data = make_shapes(400, 32, seed=99, split="all")
    z = sd.encode_images(parts.vae, data.images, sample=False)
    assert z.shape == (400, 4, 16, 16)
    assert 0.7 < z.std().item() < 1.3, "latents are scaled to about unit variance"
    v = judge.read(sd.decode_latents(parts.vae, z))
    for name, labels in {"colour": data.colour, "shape": data.shape, "position": data.position}.items():
        assert (v[name] == labels).float().mean() >= 0.95, name


def test_text_encoding_is_the_pipelines(parts):
    pipe = sd.pipeline(parts)
    prompts = ["a red circle on the left", "a large purple cross"]
    ours = sd.embed_prompts(parts.tokenizer, parts.text_encoder, prompts)
    cond, uncond = pipe.encode_prompt(prompts, "cpu", 1, True)
    torch.testing.assert_close(ours, cond)
    torch.testing.assert_close(sd.embed_prompts(parts.tokenizer, parts.text_encoder, ["", ""]), uncond)
    assert ours.shape == (2, 16, 64)


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_generate_is_the_pipeline(parts):
    prompts = ["a blue square", "a yellow diamond at the top"]
    ours = sd.generate(parts, prompts, guidance_scale=4.0, steps=8, seed=5)
    pipe = sd.pipeline(parts)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompts, num_inference_steps=8, guidance_scale=4.0, output_type="pt",
                  generator=torch.Generator().manual_seed(5)).images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert not torch.allclose(ours, sd.generate(parts, prompts, guidance_scale=4.0, steps=8, seed=6))


def test_course_cross_attention_is_diffusers(parts):
    unet = parts.unet
    before = dict(unet.attn_processors)
    z = torch.randn(2, 4, 16, 16)
    ctx = sd.embed_prompts(parts.tokenizer, parts.text_encoder, ["a red circle", ""])
    with torch.no_grad():
        want = unet(z, 300, encoder_hidden_states=ctx).sample
        with CourseCrossAttention.install(unet) as rec:
            got = unet(z, 300, encoder_hidden_states=ctx).sample
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    cross = [n for n in before if n.endswith("attn2.processor")]
    assert len(rec.maps) == len(cross) > 0
    for _, w in rec.maps:
        assert w.shape[0] == 2 and w.shape[-1] == 16
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))  # each position's weights sum to 1
    assert {k: type(v) for k, v in unet.attn_processors.items()} == {k: type(v) for k, v in before.items()}


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_recipe_quality_holds(parts, judge):
    """CI re-measures the committed model: adherence on seen prompts at the recipe's best scale."""
    record = sd_record()
    best = max(record["quality"]["per_scale"], key=lambda q: q["seen"]["both"])
    assert best["seen"]["both"] >= 0.80, "the recipe's recorded goal"
    result = metrics.prompt_adherence(parts, judge, pairs="seen", per_pair=4, guidance_scale=best["guidance_scale"],
                                 steps=25, seed=123)
    assert result["n"] == 84 and result["images"].shape == (84, 3, 32, 32)
    assert result["both"] >= best["seen"]["both"] - 0.12, (result["both"], best)
    assert result["colour"] >= 0.9


def test_pair_prompts_and_diversity(judge):
    prompts, colours, shapes = metrics.pair_prompts("heldout", per_pair=3)
    assert len(prompts) == 12 and prompts[0] == f"a {HELD_OUT[0][0]} {HELD_OUT[0][1]}"
    assert [(COLOURS[c], SHAPES[s]) for c, s in zip(colours[::3].tolist(), shapes[::3].tolist())] == list(HELD_OUT)
    assert len(metrics.pair_prompts("seen", per_pair=1)[0]) == len(PAIRS) - len(HELD_OUT)
    varied = make_shapes(40, 32, seed=1, split="all").images  # random sizes and positions
    same = varied[:1].expand(40, -1, -1, -1)
    assert metrics.diversity(judge, varied, 20) > 0.5
    assert metrics.diversity(judge, same, 20) == pytest.approx(0.1)


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_training_steps_run_and_record(parts, judge):
    from dataclasses import replace

    small = sd.SDParts(parts.tokenizer, parts.text_encoder, parts.vae, sd.build_unet(sd.SD_UNET), parts.scheduler)
    config = replace(sd_training.SD_TRAINING, steps=4, batch_size=8, eval_every=2, eval_per_pair=1, warmup=2)
    before = [p.detach().clone() for p in small.unet.parameters()]
    ema, history = sd_training.train_unet(small, config, judge=judge, progress=False)
    assert len(history.loss) == 4 and all(torch.isfinite(torch.tensor(history.loss)))
    assert [e["step"] for e in history.evals] == [2, 4]
    assert any(not torch.equal(a, b) for a, b in zip(before, small.unet.parameters()))
    assert ema is not small.unet

    vae = sd.build_vae(sd.SD_VAE)
    record = sd_training.train_vae(vae, sd_training.VAETrainConfig(steps=3, batch_size=4), progress=False)
    assert record["scaling_factor"] > 0 and vae.config.scaling_factor == record["scaling_factor"]


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_standin_pipeline_saves_and_loads(tmp_path, monkeypatch):
    from diffusers import StableDiffusionPipeline

    from course_utils.weights import resolver as hub

    monkeypatch.setenv("COURSE_UTILS_CACHE", str(tmp_path))
    monkeypatch.setenv("COURSE_FORCE_STANDINS", "1")
    ckpt = hub.resolve("stable-diffusion-v1-5/stable-diffusion-v1-5", quiet=True)
    assert not ckpt.real and (tmp_path / "standins").exists()
    pipe = StableDiffusionPipeline.from_pretrained(ckpt.path)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on the left", num_inference_steps=10,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)


def test_recipe_command_lists_the_recipes(capsys):
    from course_utils.__main__ import main

    assert main(["recipe", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nonsense'" in err and all(name in err for name in ("miniclip", "judge", "sd"))


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_the_sd_recipe_runs_end_to_end(tmp_path, monkeypatch):
    """The recipe script, shrunk to a few steps: trains, checkpoints, records, loads back and measures."""
    import json
    from dataclasses import replace

    from course_utils.weights import recipes

    monkeypatch.setattr(sd_training, "SD_VAE_TRAINING", replace(sd_training.SD_VAE_TRAINING, steps=3, batch_size=4))
    monkeypatch.setattr(sd_training, "SD_TRAINING", replace(sd_training.SD_TRAINING, steps=2, eval_every=2, eval_per_pair=1,
                                                   batch_size=4, warmup=1))
    monkeypatch.setattr(recipes.measure_sd, "__defaults__", (1, (3.0,), 3))  # per pair, scales, DDIM steps
    monkeypatch.setattr(recipes._judge_reconstructions, "__defaults__", (64,))  # images judged after the VAE
    record = recipes.train_sd(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.json", "unet.safetensors", "vae.safetensors"]
    saved = json.loads((tmp_path / "recipe.json").read_text())
    assert saved["vae"]["config"] == json.loads(json.dumps(asdict(sd.SD_VAE)))  # the architecture, not the training
    assert saved["vae"]["training"]["steps"] == 3 and saved["unet"]["steps_done"] == 2
    assert [e["step"] for e in saved["unet"]["evals"]] == [2]
    assert [q["guidance_scale"] for q in saved["quality"]["per_scale"]] == [3.0] == [
        q["guidance_scale"] for q in record["quality"]["per_scale"]]
    parts = recipes.load_sd(tmp_path)
    assert parts.vae.config.scaling_factor == saved["vae"]["scaling_factor"]
