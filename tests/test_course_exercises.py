"""The course's own exercises, end to end (the fixtures-based tests cover the machinery).

For every notebook in solutions/:
- exercises/ holds exactly what the generator makes from it;
- the unsolved exercise notebook fails: no exercise passes with the stub in place;
- the solution code pasted into the exercise notebook's stub cells gives back the solution notebook, cell for
  cell, so it passes every exercise: the solutions pass, as nbval shows by running solutions/ directly (their
  one run in the test suite), and the checker compares a student's check cells with exactly those outputs
  (tests/test_checker.py runs the whole round trip, pasting included, on a small fixture).
"""
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from course_utils.grading.checker import check_notebook
from course_utils.grading.exercises import check_exercises_up_to_date, find_exercises

pytestmark = pytest.mark.slow  # every test here starts kernels, servers or builds: seconds to minutes


ROOT = Path(__file__).resolve().parents[1]
# the solution markers, and a stub block (the code a debugging exercise gives) with its markers
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?|^[ \t]*### BEGIN STUB[ \t]*\n(.*\n)*?[ \t]*### END STUB[ \t]*\n?",
                    re.MULTILINE)
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_there_are_exercises():
    assert SOLUTIONS, "solutions/ holds no notebook"


def test_exercises_are_exactly_what_the_generator_makes():
    stale = check_exercises_up_to_date(ROOT / "solutions", ROOT / "exercises")
    assert not stale, f"run `make exercises`: these differ from the generator's output: {stale}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_unsolved_exercises_all_fail(solution, tmp_path):
    student = tmp_path / solution.name
    shutil.copy(ROOT / "exercises" / solution.name, student)
    report = check_notebook(student, solutions_dir=ROOT / "solutions")
    assert report.exercises, "no exercise found"
    assert all(not e.passed for e in report.exercises), report
    assert not report.ok


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_pasted_into_the_exercise_gives_back_the_solution(solution):
    solved = nbformat.read(solution, as_version=4)
    exercise = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    by_id = {cell.id: cell for cell in solved.cells}
    stub_ids = {e.cell_id for e in find_exercises(solved)}  # a stub, or code to debug (a STUB block)
    stubs = [cell for cell in exercise.cells if cell.get("id") in stub_ids]
    assert len(stubs) == len(stub_ids), "the exercise notebook lost a stub cell"
    for cell in stubs:  # what a student does: paste the answer over the stub
        cell.source = MARKER.sub("", by_id[cell.id].source)
    code = lambda nb: [(c.id, c.source) for c in nb.cells if c.cell_type == "code"]  # noqa: E731
    assert code(exercise) == [(i, MARKER.sub("", src)) for i, src in code(solved)]


def test_the_course_asks_students_to_build_train_debug_and_decide():
    from course_utils.grading.exercises import find_exercises
    names = {e.name: path.stem for path in SOLUTIONS for e in find_exercises(nbformat.read(path, as_version=4))}
    assert len(names) >= 24, f"{len(names)} exercise tasks: {sorted(names)}"
    assert {"train_vit", "clip_train_step", "denoising_loss"} <= set(names), "the three training tasks"
    experiments = {"01_attention": "first_below", "02_transformer_block": "largest_lr", "03_vit": "data_to_catch_up",
                   "04_image_processor": "images_to_match", "05_clip": "best_scale", "06_diffusion": "fewest_ddim_steps",
                   "07_stable_diffusion": "clear_gain"}  # one experiment per chapter
    assert {task: names.get(task) for task in experiments.values()} == {v: k for k, v in experiments.items()}, \
        "an experiment per chapter, in its chapter's exercise"
    debugging = [p.stem for p in SOLUTIONS if "### BEGIN STUB" in p.read_text()]
    assert debugging, "no debugging exercise (code to fix, a STUB block)"
