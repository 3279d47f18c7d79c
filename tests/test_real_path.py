"""The real-weights path, rehearsed inside the test run (README: "Rehearsing the real path").

Every notebook that resolves a checkpoint runs again, the cells the real path reaches (``rehearse.reached_cells``),
against a local Hugging Face cache that holds the real repositories' files and configurations (reduced widths, random
weights), in a kernel that can reach no address, with nothing saying offline or stand-ins: a classroom that ran
``prepare`` and lost the network. It must take every real branch, print no retry, and pass its asserts (those that
need trained weights are guarded by ``ckpt.trained``).

These run as tests, not as a step after pytest, so the two workers share them with everything else. Their live
trainings are the ones the stand-in run of the same notebook does: both look in the same remembered trainings,
and whichever comes second waits for the first (``course_utils.paths.exclusive``) instead of training again.
``python -m course_utils rehearse`` runs the same rehearsal on its own.
"""
import pytest

from course_utils.weights import rehearse as R

pytestmark = pytest.mark.slow  # each runs a notebook's cells in a kernel


@pytest.mark.parametrize("notebook", R.notebooks(real_only=True), ids=lambda path: path.stem)
def test_the_notebook_runs_on_the_real_path(notebook, rehearsal_hub, tmp_path):
    with R.unreachable_port() as port:
        outcome = R.run_notebook(notebook, R.kernel_environment(rehearsal_hub, port, tmp_path / "course"), reached_only=True)
    assert outcome.ok, f"{outcome.path} on the real path: " + "; ".join(outcome.problems)
    assert outcome.real, f"{outcome.path} resolved no real checkpoint although the cache holds them all"
