"""What a training leaves beside its weights: a JSON record, and the weights in half precision.

One way of writing each, so every record the course commits or caches reads the same."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch
from torch import nn

__all__ = ["write_record", "read_record", "half_precision", "machine"]


def write_record(path: str | Path, record: dict) -> Path:
    """``record`` as indented JSON at ``path`` (values JSON cannot hold, such as paths or tuples, as text)."""
    path = Path(path)
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def read_record(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def half_precision(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's weights in float16, contiguous: what the recipes commit (a few MB each)."""
    return {k: v.detach().half().contiguous() for k, v in module.state_dict().items()}


def machine() -> dict:
    """Where a recipe or an experiment ran: Python, torch, the CPU, its cores, the threads used, the device."""
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor()
            or platform.machine(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
