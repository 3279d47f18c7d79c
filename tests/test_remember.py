"""A live training the course ran once is remembered: the same call again loads what the first one left."""
import random

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import seed_everything
from course_utils.training.classifier import TrainConfig, train_classifier


@pytest.fixture(autouse=True)
def empty_course_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_UTILS_CACHE", str(tmp_path))
    monkeypatch.delenv("COURSE_RETRAIN", raising=False)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=g)
    return x, (x.mean(dim=(1, 2, 3)) > 0.5).long()


def _run(seed=0, lr=1e-2):
    seed_everything(seed)  # as a notebook does at its top: torch, NumPy and Python
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    x, y = _data()
    history = train_classifier(model, x, y, TrainConfig(epochs=2, batch_size=16, lr=lr, augment=False), progress=False)
    after = (torch.rand(3), np.random.rand(2), random.random())  # what the next cell would draw
    return model, history, after


def test_the_same_training_is_loaded_and_leaves_the_same_random_state(capsys, tmp_path):
    first, history, after = _run()
    assert "ran before" not in capsys.readouterr().out
    again, history_again, after_again = _run()
    out = capsys.readouterr().out
    assert "[course] train_classifier: this training ran before on this machine" in out
    torch.testing.assert_close(again.state_dict(), first.state_dict(), rtol=0, atol=0)
    assert history_again == history and type(history_again) is type(history)
    torch.testing.assert_close(after_again[0], after[0], rtol=0, atol=0)  # as if it had trained: the same draws after
    assert after_again[1].tolist() == after[1].tolist() and after_again[2] == after[2]
    assert len(list((tmp_path / "trained").iterdir())) == 1
    assert not first.training and not again.training  # a replay leaves the model in eval mode, as training did


def test_another_configuration_start_or_a_retrain_request_trains(capsys, monkeypatch, tmp_path):
    _run()
    _run(lr=2e-2)  # another configuration
    _run(seed=1)  # other starting weights
    assert "ran before" not in capsys.readouterr().out
    monkeypatch.setenv("COURSE_RETRAIN", "1")
    _run()
    assert "ran before" not in capsys.readouterr().out
    assert len(list((tmp_path / "trained").iterdir())) == 3


def test_a_damaged_record_is_trained_again(capsys, tmp_path):
    first, _, _ = _run()
    record = next((tmp_path / "trained").iterdir()) / "state.safetensors"
    record.write_bytes(record.read_bytes()[:100])
    again, _, _ = _run()
    assert "could not be read" in capsys.readouterr().out
    torch.testing.assert_close(again.state_dict(), first.state_dict(), rtol=0, atol=0)


def test_a_schedulers_key_ignores_the_order_of_its_private_fields():
    """diffusers keeps a set's elements in `_use_default_values`: its order differs from process to process."""
    import hashlib

    from diffusers import DDIMScheduler

    from course_utils.training.remember import _feed

    a, b = DDIMScheduler(), DDIMScheduler()
    b.register_to_config(_use_default_values=list(reversed(a.config["_use_default_values"])))
    digests = [hashlib.sha256(), hashlib.sha256()]
    assert _feed(digests[0], a) and _feed(digests[1], b)
    assert digests[0].hexdigest() == digests[1].hexdigest()
    other = hashlib.sha256()
    _feed(other, DDIMScheduler(beta_schedule="squaredcos_cap_v2"))  # a public field that differs does change it
    assert other.hexdigest() != digests[0].hexdigest()


WAITING_BUILD = """
import sys, time
from pathlib import Path
from course_utils.weights.cache import build_checked

def build(folder):
    (folder / "who").write_text(sys.argv[2])
    time.sleep(float(sys.argv[3]))

folder = Path(sys.argv[1])
build_checked(folder, "1", build, "the test folder")
print((folder / "who").read_text())
"""


@pytest.mark.slow  # starts a second Python process, which imports torch: seconds
def test_a_second_process_waits_for_the_same_build_and_uses_it(tmp_path):
    """Two test workers (or two open notebooks) needing the same stand-in build it once: the second waits for the
    first's lock, then finds the folder intact and does not build it again."""
    import subprocess
    import sys
    import time

    folder = tmp_path / "standin"
    first = subprocess.Popen([sys.executable, "-c", WAITING_BUILD, str(folder), "first", "3"], stdout=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".building-*")):  # the first process is inside its build, holding the lock
        assert first.poll() is None and time.monotonic() < deadline, "the first build never started"
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-c", WAITING_BUILD, str(folder), "second", "0"], capture_output=True,
                            text=True, timeout=120)
    assert first.wait(timeout=120) == 0 and second.returncode == 0, second.stderr
    assert second.stdout.strip() == "first", "the second process built the folder again instead of waiting"
    assert first.stdout.read().strip() == "first"
