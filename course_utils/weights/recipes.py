"""Recipes: the course's longer trainings (CLIP's held-out pairs need more than a lecture's minute), run once by a
committed script, their weights committed in half precision beside a record of the configuration, seed, time, machine
and measured quality. Lectures and stand-ins load the committed weights; anyone can re-run::

    python -m course_utils recipe miniclip            # writes course_utils/weights/miniclip/  (about 16 min)
    python -m course_utils recipe judge               # writes course_utils/weights/judge/     (a few minutes)
    python -m course_utils recipe sd                  # writes course_utils/weights/sd/        (about 80 min)
    python -m course_utils recipe classifiers         # writes course_utils/weights/classifiers/ (about 2 min)

The Stable Diffusion recipe needs the other two: its text encoder is the mini-CLIP's and its quality is measured by
the judge. ``OMP_NUM_THREADS`` sets the threads it uses. Half precision costs nothing: ``clip.load`` rounds to it.
Chapter 04's four stand-ins (``classifiers``) are kept as ``save_pretrained`` wrote them, in float32 (0.4 to 0.6 MB
each), so that ``from_pretrained`` gives the float32 model a lecture expects.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from course_utils.eval.metrics import eval_sets, zero_shot_accuracy
from course_utils.models.clip import MiniCLIPConfig, build_clip
from course_utils.models.judges import Judge
from course_utils.training.clip import ClipTrainConfig, train_clip
from course_utils.training.records import half_precision, write_record
from course_utils.training.records import machine as _machine

WEIGHTS = Path(__file__).parent
MINICLIP_DIR = WEIGHTS / "miniclip"

# The mini-CLIP recipe: the lecture's plain-ViT mini-CLIP (MiniCLIPConfig()), trained for longer.
MINICLIP_CONFIG = MiniCLIPConfig()
MINICLIP_TRAINING = ClipTrainConfig(steps=4000, eval_every=500, seed=0)
MINICLIP_EVAL_SIZE = 2000  # images per split for the recorded quality


def measure_miniclip(model, size: int = MINICLIP_EVAL_SIZE) -> dict:
    """Zero-shot top-1 on seen and held-out colour-shape pairs (prompt "a {colour} {shape}"), chance 1/25."""
    seen, heldout = eval_sets(size, model.visual.input_resolution)
    return {"seen": round(zero_shot_accuracy(model, seen), 4), "heldout": round(zero_shot_accuracy(model, heldout), 4),
            "chance": 0.04, "images_per_split": size, "prompt": "a {colour} {shape}"}


def train_miniclip(out: Path = MINICLIP_DIR, training: ClipTrainConfig = MINICLIP_TRAINING,
                   config: MiniCLIPConfig = MINICLIP_CONFIG) -> dict:
    """Run the mini-CLIP recipe and write ``model.safetensors`` (half precision) and ``recipe.json`` to ``out``."""
    from safetensors.torch import save_file

    torch.manual_seed(training.seed)
    model = build_clip(config)
    history = train_clip(model, training, desc="mini-CLIP recipe")
    state = half_precision(model)
    model.load_state_dict({k: v.float() for k, v in state.items()})  # measure what is committed: the fp16 weights
    record = {
        "what": "the course's recipe mini-CLIP: openai clip.model.CLIP, plain ViT, trained on captioned shapes",
        "script": "python -m course_utils recipe miniclip (course_utils/weights/recipes.py)",
        "config": asdict(config), "training": asdict(training), "seed": training.seed,
        "seconds": round(history.seconds, 1), "machine": _machine(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "quality": measure_miniclip(model),
        "history": {k: v for k, v in asdict(history).items() if k not in {"loss", "logit_scale"}}
        | {"loss_every_50": [round(x, 4) for x in history.loss[::50]], "final_logit_scale": round(history.logit_scale[-1], 2)},
    }
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"))
    write_record(out / "recipe.json", record)
    return record


def _record(folder: Path, what: str, recipe: str) -> dict:
    path = Path(folder) / "recipe.json"
    if not path.is_file():
        raise FileNotFoundError(f"no {what} recipe at {folder}: run `python -m course_utils recipe {recipe}`")
    return json.loads(path.read_text())


def _float_weights(path: Path) -> dict:
    """A committed safetensors file (half precision) as float32 tensors."""
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(path)).items()}


def miniclip_record(folder: Path = MINICLIP_DIR) -> dict:
    """The committed recipe's record (configuration, time, quality)."""
    return _record(folder, "mini-CLIP", "miniclip")


def load_miniclip(folder: Path = MINICLIP_DIR):
    """The committed recipe mini-CLIP, as openai's ``clip.model.CLIP`` in float32 and eval mode."""
    model = build_clip(MiniCLIPConfig(**miniclip_record(folder)["config"]))
    model.load_state_dict(_float_weights(Path(folder) / "model.safetensors"))
    return model.eval()


# ---------------------------------------------------------------- the judge and the small Stable Diffusion

JUDGE_DIR = WEIGHTS / "judge"


def save_judge(judge: Judge, record: dict, folder: Path = JUDGE_DIR) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in judge.state_dict().items()}, str(folder / "model.safetensors"))
    write_record(folder / "recipe.json", record)
    return folder


def load_judge(folder: Path = JUDGE_DIR) -> Judge:
    """The committed judge, in eval mode."""
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"no judge weights in {folder}: run `python -m course_utils recipe judge`")
    record = json.loads((folder / "recipe.json").read_text())
    judge = Judge(record["config"]["width"])
    judge.load_state_dict(_float_weights(folder / "model.safetensors"))  # committed in float32: unchanged
    return judge.eval()


def text_parts(max_length: int = 16):
    """The frozen text side of the course's Stable Diffusion: (tokenizer, CLIPTextModel) from the committed
    mini-CLIP recipe. The mini-CLIP was trained with 16-token contexts; the tokenizer pads every prompt to
    ``max_length`` tokens with its end token, as Stable Diffusion's does to 77."""
    from course_utils.interop.clip_formats import clip_tokenizer, text_encoder

    tokenizer = clip_tokenizer()
    tokenizer.model_max_length = max_length
    return tokenizer, text_encoder(load_miniclip(), max_length)


def train_judge_recipe(out: Path | None = None) -> dict:
    """Train the judge (an independent classifier of the shapes' attributes) and write its weights."""
    from course_utils.training.classifier import JudgeTrainConfig, train_shape_judge

    judge, record = train_shape_judge(JudgeTrainConfig())
    record |= {"what": "the course's judge: a small CNN reading colour, shape, size and position off real shapes",
               "script": "python -m course_utils recipe judge (course_utils/weights/recipes.py)", "machine": _machine()}
    save_judge(judge, record, out or JUDGE_DIR)
    return record


SD_DIR = WEIGHTS / "sd"
SD_GUIDANCE_SCALES = (1.0, 2.0, 3.0, 5.0, 7.5)
SD_EVAL_PER_PAIR = 12  # images per colour-shape prompt for the recorded adherence (252 seen, 48 held-out)


def measure_sd(parts, judge, per_pair: int = SD_EVAL_PER_PAIR, scales=SD_GUIDANCE_SCALES, steps: int = 25) -> dict:
    """Prompt adherence ("a {colour} {shape}", DDIM) at each guidance scale, seen and held-out pairs, and
    diversity: the share of the 10 size x position combinations the judge finds among each prompt's images."""
    from course_utils.eval.metrics import diversity, prompt_adherence

    rows = []
    for scale in scales:
        row = {"guidance_scale": scale}
        for pairs in ("seen", "heldout"):
            r = prompt_adherence(parts, judge, pairs=pairs, per_pair=per_pair, guidance_scale=scale, steps=steps)
            row[pairs] = {k: r[k] for k in ("colour", "shape", "both")}
            if pairs == "seen":
                row["diversity"] = round(diversity(judge, r["images"], per_pair), 4)
                row["seconds_per_64_images"] = round(r["seconds"] / r["n"] * 64, 2)
        rows.append(row)
    return {"per_scale": rows, "per_pair": per_pair, "ddim_steps": steps, "prompt": "a {colour} {shape}"}


def _judge_reconstructions(vae, judge, n: int = 1000) -> dict:
    """The judge's accuracy per attribute on VAE reconstructions of real shapes (1.0 on the originals)."""
    from course_utils.data.shapes import make_shapes
    from course_utils.eval.metrics import accuracy
    from course_utils.models.sd import decode_latents, encode_images

    data = make_shapes(n, 32, seed=424_242, split="all")
    return accuracy(judge, decode_latents(vae, encode_images(vae, data.images, sample=False)), data)


def train_sd(out: Path = SD_DIR) -> dict:
    """The small Stable Diffusion recipe: the VAE, then the text-conditioned UNet; writes weights and record.

    Checkpoints (EMA UNet, half precision) are written at every evaluation, so a long run that is
    stopped still leaves usable weights and an honest record of how far it got.
    """
    from safetensors.torch import save_file

    from course_utils.models.sd import SD_UNET, SD_VAE, SDParts, build_unet, build_vae, noise_schedulers
    from course_utils.training.sd import SD_TRAINING, SD_VAE_TRAINING, train_unet, train_vae

    out.mkdir(parents=True, exist_ok=True)
    judge = load_judge()
    tokenizer, encoder = text_parts()
    _, ddim = noise_schedulers()
    torch.manual_seed(SD_VAE_TRAINING.seed)
    vae = build_vae(SD_VAE)
    vae_record = train_vae(vae, SD_VAE_TRAINING, desc="SD recipe: VAE")
    save_file(half_precision(vae), str(out / "vae.safetensors"))
    vae_record["judge_on_reconstructions"] = _judge_reconstructions(vae, judge)
    record = {
        "what": "the course's small Stable Diffusion: mini-CLIP text encoder (frozen, chapter 05's recipe), "
                "AutoencoderKL and UNet2DConditionModel trained on captioned shapes",
        "script": "python -m course_utils recipe sd (course_utils/weights/recipes.py)", "machine": _machine(),
        "vae": {"config": asdict(SD_VAE), "parameters": sum(p.numel() for p in vae.parameters())} | vae_record,
        "unet": {"config": asdict(SD_UNET), "training": asdict(SD_TRAINING)},
        "scheduler": dict(ddim.config),
    }
    write_record(out / "recipe.json", record)
    print(json.dumps({k: vae_record[k] for k in ("seconds", "reconstruction_mse", "scaling_factor",
                                                 "judge_on_reconstructions")}), flush=True)

    torch.manual_seed(SD_TRAINING.seed)
    unet = build_unet(SD_UNET)
    record["unet"]["parameters"] = sum(p.numel() for p in unet.parameters())
    parts = SDParts(tokenizer, encoder, vae, unet, ddim)

    def checkpoint(row, ema):
        save_file(half_precision(ema), str(out / "unet.safetensors"))
        record["unet"]["evals"] = record["unet"].get("evals", []) + [row]
        record["unet"]["steps_done"] = row["step"]
        write_record(out / "recipe.json", record)
        print(json.dumps(row), flush=True)

    ema, history = train_unet(parts, SD_TRAINING, judge=judge, desc="SD recipe: UNet", on_eval=checkpoint)
    save_file(half_precision(ema), str(out / "unet.safetensors"))
    record["unet"] |= {"seconds": round(history.seconds, 1), "steps_done": SD_TRAINING.steps,
                       "loss_every_100": [round(x, 4) for x in history.loss[::100]]}
    write_record(out / "recipe.json", record)
    return measure_sd_recipe(out)


def measure_sd_recipe(out: Path = SD_DIR) -> dict:
    """Measure the committed weights (half precision, loaded back) and write ``quality`` into the record.

    ``python -m course_utils recipe sd --measure`` runs this alone, on weights already there.
    """
    record = sd_record(out)
    start = time.perf_counter()
    record["quality"] = measure_sd(load_sd(out), load_judge())
    record["quality"] |= {"seconds": round(time.perf_counter() - start, 1), "machine": _machine()}
    write_record(Path(out) / "recipe.json", record)
    return record


def sd_record(folder: Path = SD_DIR) -> dict:
    return _record(folder, "Stable Diffusion", "sd")


def load_sd(folder: Path = SD_DIR):
    """The committed small Stable Diffusion as ``SDParts`` (float32, eval mode, DDIM scheduler)."""
    from course_utils.models.sd import SDParts, UNetConfig, VAEConfig, build_unet, build_vae, noise_schedulers

    folder = Path(folder)
    record = sd_record(folder)
    tuples = lambda d: {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    vae = build_vae(VAEConfig(**tuples(record["vae"]["config"])))
    vae.load_state_dict(_float_weights(folder / "vae.safetensors"))
    vae.register_to_config(scaling_factor=record["vae"]["scaling_factor"])
    unet = build_unet(UNetConfig(**tuples(record["unet"]["config"])))
    unet.load_state_dict(_float_weights(folder / "unet.safetensors"))
    tokenizer, encoder = text_parts()
    _, ddim = noise_schedulers()
    return SDParts(tokenizer, encoder, vae.eval(), unet.eval(), ddim)


# ---------------------------------------------------------------- chapter 04's stand-ins: Swin, BEiT, DeiT, ConvNeXt

CLASSIFIERS_DIR = WEIGHTS / "classifiers"
CLASSIFIER_RECIPES = {  # real checkpoint -> the course_utils.models.classifiers family standing in for it
    "microsoft/swin-base-patch4-window7-224": "swin",
    "microsoft/beit-base-patch16-224": "beit",
    "facebook/deit-base-patch16-224": "deit",
    "facebook/convnext-tiny-224": "convnext",
}


def digits_notes(name: str, recipe: str, size: int, training, history, **described) -> dict:
    """What a digits stand-in's training.json records: what it stands in for, how it was trained, how well it did."""
    return {
        "what": f"the course's stand-in for {name}", "recipe": recipe,
        "data": f"scikit-learn digits, {size} x {size}, grey repeated over RGB, normalised to [-1, 1]; "
                "1,438 train / 359 test",
        **described, "training": asdict(training), "torch": torch.__version__,
        "test_accuracy": round(history.test_accuracy[-1], 4), "seconds": round(history.seconds, 1),
    }


def export_classifier(name: str, model, family, training, history, folder: str | Path) -> dict:
    """Save the stand-in ``model`` for ``name`` and its image processor for ``from_pretrained(folder)``: config.json,
    model.safetensors, preprocessor_config.json, and training.json (:func:`digits_notes`), which it returns."""
    from course_utils.models.classifiers import image_processor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    image_processor(family).save_pretrained(folder)
    notes = digits_notes(name, f"course_utils.training.classifier.train_family(FAMILIES[{family.name!r}])",
                         family.image_size, training, history, family=asdict(family), parameters=model.num_parameters())
    write_record(folder / "training.json", notes)
    return notes


def train_classifiers(out: Path = CLASSIFIERS_DIR) -> dict[str, dict]:
    """Train every chapter 04 stand-in with its family's recipe (``FAMILY_TRAINING``) and write it to ``out/NAME``:
    what ``standins`` copies when one is first resolved. Returns each one's training record."""
    from course_utils.models.classifiers import FAMILIES
    from course_utils.training.classifier import FAMILY_TRAINING, train_family

    records = {}
    for name, family_name in CLASSIFIER_RECIPES.items():
        family, training = FAMILIES[family_name], FAMILY_TRAINING[family_name]
        model, history = train_family(family, training, progress=True)
        records[name] = export_classifier(name, model, family, training, history, Path(out) / name.replace("/", "--"))
    return records


def run(args) -> int:
    """``python -m course_utils recipe {miniclip,judge,sd,classifiers} [--out DIR] [--measure]``; the recorded
    experiments' names arrive at ``experiments.run``, which hands every other name here."""
    from course_utils.device import default_threads

    if args.measure and args.name != "sd":
        print("recipe: --measure measures the sd recipe's weights only", file=sys.stderr)
        return 2
    torch.set_num_threads(default_threads())  # OMP_NUM_THREADS, when set, wins
    if args.name == "miniclip":
        record = train_miniclip(args.out or MINICLIP_DIR)
        print(json.dumps({k: record[k] for k in ("seconds", "parameters", "quality")}, indent=1))
    elif args.name == "judge":
        print(json.dumps(train_judge_recipe(args.out), indent=1))
    elif args.name == "classifiers":
        records = train_classifiers(args.out or CLASSIFIERS_DIR)
        print(json.dumps({name: {k: r[k] for k in ("test_accuracy", "seconds")} for name, r in records.items()}, indent=1))
    else:
        record = measure_sd_recipe(args.out or SD_DIR) if args.measure else train_sd(args.out or SD_DIR)
        print(json.dumps(record["quality"], indent=1))
    return 0
