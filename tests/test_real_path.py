"""The real-weights path, rehearsed inside the test run (README: "Rehearsing the real path").

Every notebook that resolves a checkpoint runs again against a local Hugging Face cache that holds the real
repositories' files and configurations (reduced widths, random weights), in a kernel that can reach no address,
with nothing saying offline or stand-ins: a classroom that ran ``prepare`` and lost the network. It must take every
real branch, print no retry, and pass its asserts (those that need trained weights are guarded by ``ckpt.trained``).

These run as tests, not as a step after pytest, so the two workers share them with everything else. Their live
trainings are the ones the stand-in run of the same notebook does: both look in the same remembered trainings,
and whichever comes second waits for the first (``course_utils.paths.exclusive``) instead of training again.
``python -m course_utils rehearse`` runs the same rehearsal on its own.
"""
import hashlib
import shutil
from pathlib import Path

import pytest

from course_utils.paths import course_cache_dir, exclusive
from course_utils.weights import rehearse as R
from course_utils.weights import resolver

pytestmark = pytest.mark.slow  # each runs a whole notebook


@pytest.fixture(scope="session")
def rehearsal_hub():
    """The reduced-width cache of every catalogue checkpoint, laid out once for all workers (about 10 s, 0.2 GB)."""
    folder, stamp = course_cache_dir() / "rehearsal", folder_stamp()
    with exclusive(folder):
        complete = folder / "complete"
        if not complete.is_file() or complete.read_text() != stamp:  # none yet, or laid out by other code
            shutil.rmtree(folder, ignore_errors=True)
            R.build_cache(folder / "hub")
            complete.write_text(stamp)
    return folder / "hub"


def folder_stamp() -> str:
    """The code that lays the cache out: a change to it lays the cache out again."""
    code = b"".join(Path(module.__file__).read_bytes() for module in (R, resolver))
    return hashlib.sha256(code).hexdigest()


@pytest.mark.parametrize("notebook", R.notebooks(real_only=True), ids=lambda path: path.stem)
def test_the_notebook_runs_on_the_real_path(notebook, rehearsal_hub, tmp_path):
    with R.unreachable_port() as port:
        outcome = R.run_notebook(notebook, R.kernel_environment(rehearsal_hub, port, tmp_path / "course"))
    assert outcome.ok, f"{outcome.path} on the real path: " + "; ".join(outcome.problems)
    assert outcome.real, f"{outcome.path} resolved no real checkpoint although the cache holds them all"
