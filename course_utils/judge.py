"""The judge: an independent classifier that reads colour, shape, size and position off a course image.

Generated images need a referee that did not take part in making them. The judge is a small CNN
trained only on real captioned shapes (``make_shapes``, all 25 colour-shape pairs, 32 px), never on
anything a generator drew. It answers four questions about an image, one head each: which colour,
which shape, which size, which position. On real images it is (close to) always right, so when it
disagrees with a prompt about a generated image, the generator is to blame.

    judge = load_judge()                     # the committed weights (a few hundred KB), eval mode
    verdict = judge.read(images)             # dict of (N,) predictions and confidences
    adherence(judge, images, colours, shapes)  # fraction with colour AND shape as asked

``train_judge()`` retrains it (a few minutes on 2 cores); ``python -m course_utils recipe
judge`` writes the committed weights.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_utils.shapes import COLOURS, POSITIONS, SHAPES, SIZES, make_shapes

JUDGE_DIR = Path(__file__).parent / "weights" / "judge"
HEADS = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "position": POSITIONS}

# Shape legend: N images, C channels, H x W pixels.


class Judge(nn.Module):
    """Six conv layers (two of them strided), global average pooling, one linear head per attribute."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),  # edges and corners at full resolution
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),  # 32 -> 16
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.GELU(),  # 16 -> 8
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU(),
        )
        # position needs where, not only what: keep a coarse 4 x 4 map for it
        self.heads = nn.ModuleDict({name: nn.Linear(2 * width, len(names)) for name, names in HEADS.items()
                                    if name != "position"})
        self.where = nn.Linear(2 * width * 16, len(POSITIONS))
        self.width = width

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (N, 3, 32, 32) in [0, 1] -> logits per attribute, each (N, classes)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-2:] != (32, 32):
            images = F.interpolate(images, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
        h = self.features(images * 2 - 1)  # (N, 2w, 8, 8)
        logits = {name: head(h.mean(dim=(2, 3))) for name, head in self.heads.items()}
        logits["position"] = self.where(F.adaptive_avg_pool2d(h, 4).flatten(1))
        return logits

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """Predictions (N,) int64 per attribute, plus ``{name}_confidence`` (N,) the softmax maximum."""
        was_training = self.training
        self.eval()
        out: dict[str, list[torch.Tensor]] = {}
        device = next(self.parameters()).device
        for i in range(0, len(images), batch_size):
            logits = self(images[i:i + batch_size].float().clamp(0, 1).to(device))
            for name, z in logits.items():
                p = z.softmax(-1).cpu()
                out.setdefault(name, []).append(p.argmax(-1))
                out.setdefault(f"{name}_confidence", []).append(p.max(-1).values)
        self.train(was_training)
        return {k: torch.cat(v) for k, v in out.items()}


def adherence(judge: Judge, images: torch.Tensor, colours, shapes) -> dict[str, float]:
    """How often the judge finds the asked colour, the asked shape, and both, in ``images``.

    ``colours`` and ``shapes`` are (N,) indices into COLOURS and SHAPES (or one int each for all).
    """
    v = judge.read(images)
    n = len(images)
    colours = torch.as_tensor(colours).expand(n) if torch.as_tensor(colours).ndim == 0 else torch.as_tensor(colours)
    shapes = torch.as_tensor(shapes).expand(n) if torch.as_tensor(shapes).ndim == 0 else torch.as_tensor(shapes)
    colour_ok, shape_ok = v["colour"] == colours, v["shape"] == shapes
    return {"colour": colour_ok.float().mean().item(), "shape": shape_ok.float().mean().item(),
            "both": (colour_ok & shape_ok).float().mean().item(), "n": n}


def attribute_labels(data) -> dict[str, torch.Tensor]:
    """The true answer to each of the judge's questions for a ``Shapes`` sample, (N,) each."""
    return {"colour": data.colour, "shape": data.shape, "size": data.size_id, "position": data.position}


def accuracy(judge: Judge, images: torch.Tensor, data) -> dict[str, float]:
    """How often the judge reads each attribute of ``data`` off ``images`` (the originals or a model's copies)."""
    v = judge.read(images)
    return {k: round((v[k] == labels).float().mean().item(), 4) for k, labels in attribute_labels(data).items()}


@dataclass
class JudgeTrainConfig:
    steps: int = 1500
    batch_size: int = 128
    lr: float = 3e-3
    width: int = 32
    seed: int = 0
    noise: float = 0.03  # a little pixel noise, so the judge does not rely on perfectly flat backgrounds


def train_judge(config: JudgeTrainConfig = JudgeTrainConfig(), progress: bool = True) -> tuple[Judge, dict]:
    """Train a judge on real shapes of all 25 pairs (fresh images every step); returns it and a record."""
    torch.manual_seed(config.seed)
    judge = Judge(config.width)
    opt = torch.optim.AdamW(judge.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)
    start = time.perf_counter()
    losses = []
    for step in tqdm(range(config.steps), desc="judge", disable=not progress, mininterval=1):
        data = make_shapes(config.batch_size, 32, seed=10_000 + config.seed * 100_000 + step, split="all")
        x = (data.images + config.noise * torch.randn_like(data.images)).clamp(0, 1)
        logits = judge(x)
        targets = attribute_labels(data)
        loss = sum(F.cross_entropy(logits[k], targets[k]) for k in HEADS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    judge.eval()
    test = make_shapes(2000, 32, seed=987_654, split="all")
    record = {"config": asdict(config), "seconds": round(time.perf_counter() - start, 1),
              "accuracy_on_2000_real_images": accuracy(judge, test.images, test),
              "final_loss": round(sum(losses[-20:]) / 20, 4)}
    return judge, record


def save_judge(judge: Judge, record: dict, folder: Path = JUDGE_DIR) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in judge.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "recipe.json").write_text(json.dumps(record, indent=1) + "\n")
    return folder


def load_judge(folder: Path = JUDGE_DIR) -> Judge:
    """The committed judge, in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"no judge weights in {folder}: run `python -m course_utils recipe judge`")
    record = json.loads((folder / "recipe.json").read_text())
    judge = Judge(record["config"]["width"])
    judge.load_state_dict(load_file(str(folder / "model.safetensors")))
    return judge.eval()
