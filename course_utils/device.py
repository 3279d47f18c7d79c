"""Where the course's tensors live, and how runs are made repeatable.

Two calls every notebook starts with:

    device = get_device()      # CUDA, then Apple MPS, then CPU
    seed_everything(0)         # Python, NumPy and torch (all devices) in one go
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "default_threads"]


def get_device(prefer: str | None = None) -> torch.device:
    """The best device this machine has: CUDA, then Apple's MPS, then the CPU.

    `prefer` (or the environment variable COURSE_DEVICE) forces one, e.g. "cpu" to compare
    timings fairly. Asking for a device the machine lacks raises a clear error.
    """
    prefer = prefer or os.environ.get("COURSE_DEVICE")
    if prefer:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} was asked for, but torch sees no CUDA GPU here")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"device {prefer!r} was asked for, but Apple MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int = 0) -> int:
    """Seed Python's `random`, NumPy and torch (CPU and every GPU) with one number; returns it."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def default_threads() -> int:
    """The number of CPU threads torch should use: ``OMP_NUM_THREADS`` when it is set (parallel test
    workers set it to 1 each, so they do not oversubscribe the cores), else the cores this process may run on.

    Oversubscribing a 2-core laptop (torch's default can exceed the cores a container grants)
    makes small models slower, not faster.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows
        cores = os.cpu_count() or 1
    asked = os.environ.get("OMP_NUM_THREADS", "").strip()
    if asked.isdigit() and int(asked) > 0:
        return min(int(asked), max(1, cores))
    return max(1, cores)
