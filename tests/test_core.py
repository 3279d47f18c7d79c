"""Device choice, seeding, the doctor and the command line."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_utils import get_device, seed_everything
from course_utils.weights.doctor import PACKAGES, doctor
from course_utils.weights.resolver import CATALOGUE


def test_device_follows_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")


def test_device_can_be_forced_and_refuses_what_is_missing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        get_device("cuda")


def test_seed_everything_repeats_python_numpy_and_torch():
    import random

    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first
    seed_everything(8)
    assert draw() != first
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)


def test_doctor_reports_versions_device_hub_and_every_checkpoint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from course_utils.weights import resolver as hub

    hub.hub_status.cache_clear()
    report = doctor(print_report=False)
    hub.hub_status.cache_clear()
    assert report.versions["torch"] == torch.__version__.split("+")[0]
    assert set(report.versions) == {dist for dist, _ in PACKAGES}
    assert report.device.startswith(str(get_device()))
    assert not report.hub.online and "HF_HUB_OFFLINE" in report.hub.reason
    assert [row["name"] for row in report.checkpoints] == list(CATALOGUE)
    text = str(report)
    assert "hub: offline" in text and "ViT-B/32" in text and "torch threads" in text


def _cli(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "course_utils", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_cli_doctor_and_unknown_command():
    done = _cli("doctor")
    assert done.returncode == 0, done.stderr
    assert "checkpoints:" in done.stdout and "problems: none" in done.stdout
    wrong = _cli("doctr")
    assert wrong.returncode == 2 and "invalid choice: 'doctr' (choose from 'doctor'," in wrong.stderr
