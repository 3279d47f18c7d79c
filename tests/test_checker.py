"""The exercise checker, end to end on the tiny fixture notebook (four exercises, no torch).

Each notebook run starts a kernel (a few seconds), so the cases are grouped into six runs.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils.grading.checker import CheckError, check_notebook

pytestmark = pytest.mark.slow  # every test here starts kernels, servers or builds: seconds to minutes



def cli_check(argv):
    """``python -m course_utils check ...``, in process."""
    from course_utils.__main__ import main

    return main(["check", *argv])


FIXTURES = Path(__file__).resolve().parent / "fixtures"
SOLUTIONS = FIXTURES / "solutions"
SOLUTION = SOLUTIONS / "00_tiny.ipynb"
EXERCISE = FIXTURES / "exercises" / "00_tiny.ipynb"


def _student(tmp_path, edits=None, name="00_tiny.ipynb", source=EXERCISE):
    """A student's notebook: the exercise with some cells' sources replaced (by cell id)."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if edits and cell.id in edits:
            cell.source = edits[cell.id]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def _fingerprint(path):
    return path.read_bytes(), path.stat().st_mtime_ns


def _run(capsys, path, *args):
    """The check command's exit code and its lines, less the 'Checking ...' header."""
    code = cli_check([str(path), "--solutions", str(SOLUTIONS), *args])
    out, err = capsys.readouterr()
    assert out.startswith(f"Checking {path}")
    assert "Traceback" not in out + err
    return code, out.splitlines()[1:]


def test_the_solution_passes_from_the_command_line(tmp_path):
    student = tmp_path / "00_tiny.ipynb"
    shutil.copy(SOLUTION, student)
    done = subprocess.run([sys.executable, "-m", "course_utils.grading.checker", str(student),
                           "--solutions", str(SOLUTIONS)], capture_output=True, text=True,
                          cwd=tmp_path, env=dict(os.environ, PYTHONIOENCODING="utf-8"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[1:] == [
        "✓ add: passed", "✓ Counter: passed", "✓ clip: passed", "✓ mean: passed",
        "4 of 4 exercises passed"]


def test_the_unsolved_exercise_is_not_attempted_and_stays_untouched(tmp_path, capsys):
    student = _student(tmp_path)
    before = _fingerprint(student)
    code, lines = _run(capsys, student)
    assert code == 1
    assert lines == ["· add: not attempted", "· Counter: not attempted", "· clip: not attempted",
                     "· mean: not attempted", "0 of 4 exercises passed"]
    assert _fingerprint(student) == before


def test_mistakes_are_reported_with_their_first_difference(tmp_path, capsys):
    student = _student(tmp_path, {
        "add": "def add(a, b):\n    return a - b",                             # a check raises
        "counter": "class Counter:\n    def __init__(self)\n        self.count = 0",  # syntax
        "clip": "def clip(x, lo, hi):\n    return x\n\nraise ValueError('not ready')",  # cell raises
        "mean": "import os\n\ndef mean(xs):\n    return 0\n\nos._exit(1)",          # kernel dies
    })
    nb = nbformat.read(student, as_version=4)   # a scratch cell of the student's: ignored
    nb.cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('my scratch work')"))
    nbformat.write(nb, student)
    before = _fingerprint(student)

    report = check_notebook(student, SOLUTIONS)
    assert [(e.name, e.status) for e in report.exercises] == [
        ("add", "failed"), ("Counter", "failed"), ("clip", "failed"), ("mean", "failed")]
    assert str(report).splitlines() == [
        "✗ add: failed — CheckFailed: add(2, 3) should be 5, got -1",
        "✗ Counter: failed — syntax error in your cell for Counter, line 2: expected ':'",
        "    def __init__(self)",
        "✗ clip: failed — ValueError: not ready",
        "✗ mean: failed — the Python kernel died while running this cell (a crash, or out of memory?)",
        "0 of 4 exercises passed"]
    assert not report.ok
    assert _fingerprint(student) == before


def test_output_differences_timeouts_and_tampered_checks(tmp_path, capsys):
    student = _student(tmp_path, {
        "add": "def add(a, b):\n    return float(a + b)",       # prints "float", not "int"
        "add-value": "pass  # the student 'fixed' the check",     # ignored: the solution's runs
        "counter": "class Counter:\n    def __init__(self):\n        while True:\n            pass",
        "clip": "def clip(x, lo, hi):\n    return max(lo, min(x, hi))",
    })
    nb = nbformat.read(student, as_version=4)     # no cell defines mean any more
    nb.cells = [cell for cell in nb.cells if cell.id != "mean"]
    nbformat.write(nb, student)
    code, lines = _run(capsys, student, "--timeout", "3")
    assert code == 1
    assert lines == [
        '✗ add: failed — output differs from the solution\'s: expected "add returns int", '
        'got "add returns float"',
        "✗ Counter: failed — a cell did not finish within 3 s: an endless loop? (if your code is "
        "only slow, raise the limit with --timeout SECONDS)",
        "· clip: not checked — an earlier cell did not finish",
        "· mean: not attempted — your notebook has no cell that defines it",
        "0 of 4 exercises passed"]


def test_solution_code_pasted_into_the_exercise_passes(tmp_path):
    solution = nbformat.read(SOLUTION, as_version=4)
    answers = {c.id: "\n".join(line for line in c.source.splitlines() if "### " not in line)
               for c in solution.cells}
    student = _student(tmp_path, {k: answers[k] for k in ("add", "clip", "mean")})
    nb = nbformat.read(student, as_version=4)
    # Counter: the stub cell deleted, the answer written in a new cell at the end (new id)
    nb.cells = [c for c in nb.cells if c.id != "counter"]
    nb.cells.append(nbformat.v4.new_code_cell(answers["counter"], id="my-own-cell"))
    nbformat.write(nb, student)
    report = check_notebook(student, SOLUTIONS)
    assert [(e.name, e.status) for e in report.exercises] == [
        ("add", "passed"), ("Counter", "passed"), ("clip", "passed"), ("mean", "passed")]
    assert report.ok and str(report).endswith("4 of 4 exercises passed")


def test_a_failing_setup_cell_is_reported_plainly(tmp_path, capsys):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nb = nbformat.read(SOLUTION, as_version=4)
    nb.cells[1].source = "import course_fixture_no_such_module\n" + nb.cells[1].source
    nbformat.write(nb, solutions / "00_tiny.ipynb")
    student = _student(tmp_path, source=SOLUTION)
    code = cli_check([str(student), "--solutions", str(solutions)])
    lines = capsys.readouterr().out.splitlines()[1:]
    assert code == 1
    assert lines[0] == (
        "! the notebook's setup code (cell index 1) failed: ModuleNotFoundError: No module named "
        "'course_fixture_no_such_module'. This is not your code: check your environment with "
        "`python -m course_utils doctor`.")
    assert lines[1:] == ["· add: not checked — the setup code failed",
                         "· Counter: not checked — the setup code failed",
                         "· clip: not checked — the setup code failed",
                         "· mean: not checked — the setup code failed",
                         "0 of 4 exercises passed"]


def _error(capsys, argv):
    code = cli_check(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out + err
    return err.strip()


def test_unusable_paths_get_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "01_attention.ipynb"
    assert _error(capsys, [str(missing)]) == f"error: {missing} does not exist"
    assert "is a directory" in _error(capsys, [str(tmp_path)])
    text = tmp_path / "notes.py"
    text.write_text("x = 1\n")
    assert _error(capsys, [str(text)]) == f"error: {text} is not a Jupyter notebook (.ipynb) file"

    broken = tmp_path / "00_tiny.ipynb"
    broken.write_text('{"cells": [\n  {"cell_type": "code",,}\n]}')
    message = _error(capsys, [str(broken), "--solutions", str(SOLUTIONS)])
    assert message.startswith(f"error: {broken} is not a valid notebook: its JSON is broken at "
                              "line 2, column 24")
    broken.write_text('["a list, not a notebook"]')
    assert "is JSON but not a Jupyter notebook" in _error(capsys, [str(broken)])


def test_an_unknown_notebook_lists_the_available_ones(tmp_path, capsys):
    student = _student(tmp_path, name="00_tiny-Copy1.ipynb")
    message = _error(capsys, [str(student), "--solutions", str(SOLUTIONS)])
    assert message == (
        f"error: there is no solution notebook named 00_tiny-Copy1.ipynb in {SOLUTIONS}; did you "
        "mean 00_tiny.ipynb? available: 00_tiny.ipynb. The checker matches notebooks by file name: "
        "check a notebook saved under its original name.")
    with pytest.raises(CheckError, match="no solutions directory"):
        check_notebook(student, tmp_path / "nowhere")


def test_the_solutions_directory_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_SOLUTIONS_DIR", str(tmp_path / "my-solutions"))
    student = _student(tmp_path)
    with pytest.raises(CheckError, match="my-solutions"):
        check_notebook(student)


def test_a_run_that_records_nothing_is_reported(tmp_path, monkeypatch):
    import course_utils.grading.checker as checker
    monkeypatch.setattr(checker, "_run_nbval",
                        lambda *args: ([], "ERROR: unrecognized arguments: --nbval\n"))
    report = check_notebook(_student(tmp_path, source=SOLUTION), SOLUTIONS)
    assert report.problems == ["nbval could not run the notebook: ERROR: unrecognized arguments: --nbval"]
    assert [e.status for e in report.exercises] == ["not checked"] * 4
    assert not report.ok


def test_bad_options_are_usage_errors(tmp_path, capsys):
    assert cli_check([]) == 2
    assert cli_check([str(tmp_path / "x.ipynb"), "--timeout", "0"]) == 2
    assert "--timeout must be a positive number" in capsys.readouterr().err
