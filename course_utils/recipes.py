"""Recipes: the course's longer trainings, run once by a committed script, their weights committed.

A lecture trains live for a minute or two; some results need more than that (CLIP's held-out
colour-shape pairs). A recipe trains with the course's own code, then writes, beside the weights,
everything needed to trust and repeat it: the configuration, the seed, the time, the machine and
the quality it measured. Lectures and stand-ins load the committed weights; anyone can re-run::

    python -m course_utils recipe miniclip            # writes course_utils/weights/miniclip/

The weights are stored in half precision (safetensors): a few MB, and ``clip.load`` rounds a
model to half precision anyway.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from course_utils.miniclip import ClipTrainConfig, MiniCLIPConfig, build_clip, eval_sets, train_clip, zero_shot_accuracy

WEIGHTS = Path(__file__).parent / "weights"
MINICLIP_DIR = WEIGHTS / "miniclip"

# The mini-CLIP recipe: the lecture's plain-ViT mini-CLIP (MiniCLIPConfig()), trained for longer.
MINICLIP_CONFIG = MiniCLIPConfig()
MINICLIP_TRAINING = ClipTrainConfig(steps=4000, eval_every=500, seed=0)
MINICLIP_EVAL_SIZE = 2000  # images per split for the recorded quality


def _machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or
            platform.machine(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}


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
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in state.items()})  # measure what is committed: the fp16 weights
    record = {
        "what": "the course's recipe mini-CLIP: openai clip.model.CLIP, plain ViT, trained on captioned shapes",
        "script": "python -m course_utils recipe miniclip (course_utils/recipes.py)",
        "config": asdict(config), "training": asdict(training), "seed": training.seed,
        "seconds": round(history.seconds, 1), "machine": _machine(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "quality": measure_miniclip(model),
        "history": {k: v for k, v in history.as_dict().items() if k not in {"loss", "logit_scale"}}
        | {"loss_every_50": [round(x, 4) for x in history.loss[::50]], "final_logit_scale": round(history.logit_scale[-1], 2)},
    }
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"))
    (out / "recipe.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def miniclip_record(folder: Path = MINICLIP_DIR) -> dict:
    """The committed recipe's record (configuration, time, quality)."""
    path = Path(folder) / "recipe.json"
    if not path.is_file():
        raise FileNotFoundError(f"no mini-CLIP recipe at {folder}: run `python -m course_utils recipe miniclip`")
    return json.loads(path.read_text())


def load_miniclip(folder: Path = MINICLIP_DIR):
    """The committed recipe mini-CLIP, as openai's ``clip.model.CLIP`` in float32 and eval mode."""
    from safetensors.torch import load_file

    record = miniclip_record(folder)
    model = build_clip(MiniCLIPConfig(**record["config"]))
    model.load_state_dict({k: v.float() for k, v in load_file(str(Path(folder) / "model.safetensors")).items()})
    return model.eval()


def main(argv: list[str]) -> int:
    """``python -m course_utils recipe miniclip [--out FOLDER]``."""
    if not argv or argv[0] != "miniclip":
        print("usage: python -m course_utils recipe miniclip [--out FOLDER]", file=sys.stderr)
        return 2
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else MINICLIP_DIR
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    record = train_miniclip(out)
    print(json.dumps({k: record[k] for k in ("seconds", "parameters", "quality")}, indent=1))
    return 0
