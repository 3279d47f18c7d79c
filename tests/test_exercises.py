"""The exercise generator: exact output, idempotence, the CI check and malformed markers.

Fixtures: tests/fixtures/solutions/00_tiny.ipynb (four exercises, no torch) and the golden
tests/fixtures/exercises/00_tiny.ipynb (rebuild both with tests/fixtures/build_fixtures.py).
"""
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils.grading.exercises import (
    ExerciseFormatError,
    check_exercises_up_to_date,
    find_exercises,
    generate_exercises,
    make_exercise,
    notebook_text,
    stub_source,
)


def cli_generate(argv):
    """``python -m course_utils generate ...``, in process."""
    from course_utils.__main__ import main

    return main(["generate", *argv])


FIXTURES = Path(__file__).resolve().parent / "fixtures"
SOLUTION = FIXTURES / "solutions" / "00_tiny.ipynb"
GOLDEN = FIXTURES / "exercises" / "00_tiny.ipynb"

EXPECTED_STUBS = {
    "add": (
        'def add(a, b):\n'
        '    """Return the sum of a and b."""\n'
        '    # YOUR CODE HERE\n'
        '    raise NotImplementedError()'),
    "counter": (
        'class Counter:\n'
        '    """Counts how many times `tick` was called."""\n'
        '\n'
        '    def __init__(self):\n'
        '        # YOUR CODE HERE\n'
        '        raise NotImplementedError()\n'
        '\n'
        '    def tick(self):\n'
        '        """Count one more tick and return the count."""\n'
        '        # YOUR CODE HERE\n'
        '        raise NotImplementedError()'),
    "clip": (
        'def clip(x, lo, hi):\n'
        '    """Limit x to the interval [lo, hi]."""\n'
        '    if lo > hi:\n'
        '        raise ValueError("lo must not exceed hi")\n'
        '    # YOUR CODE HERE\n'
        '    raise NotImplementedError()'),
    "mean": (
        'import math\n'
        '\n'
        '\n'
        'def mean(xs):\n'
        '    """The arithmetic mean of a non-empty list."""\n'
        '    # YOUR CODE HERE\n'
        '    raise NotImplementedError()'),
}


def test_the_exercise_is_the_solution_with_stubs_and_no_outputs(tmp_path):
    written = generate_exercises(FIXTURES / "solutions", tmp_path / "exercises")
    assert written == [tmp_path / "exercises" / "00_tiny.ipynb"]
    assert written[0].read_bytes() == GOLDEN.read_bytes()

    solution = nbformat.read(SOLUTION, as_version=4)
    exercise = nbformat.read(written[0], as_version=4)
    assert [c.id for c in exercise.cells] == [c.id for c in solution.cells]
    assert [c.metadata for c in exercise.cells] == [c.metadata for c in solution.cells]
    assert exercise.metadata == solution.metadata
    for sol, ex in zip(solution.cells, exercise.cells):
        if ex.id in EXPECTED_STUBS:
            assert ex.source == EXPECTED_STUBS[ex.id]
        else:
            assert ex.source == sol.source                       # setup, checks, markdown
        if ex.cell_type == "code":
            assert ex.outputs == [] and ex.execution_count is None
    assert any(c.outputs for c in solution.cells if c.cell_type == "code")  # the fixture is executed
    # the same formatting as nbformat.write
    nbformat.write(exercise, tmp_path / "rewritten.ipynb")
    assert (tmp_path / "rewritten.ipynb").read_bytes() == GOLDEN.read_bytes()


def test_make_exercise_leaves_the_solution_alone():
    solution = nbformat.read(SOLUTION, as_version=4)
    before = notebook_text(solution)
    exercise = make_exercise(solution, "00_tiny.ipynb")
    assert notebook_text(solution) == before
    assert notebook_text(exercise) == GOLDEN.read_text(encoding="utf-8")


def test_generating_twice_changes_nothing(tmp_path):
    out = tmp_path / "exercises"
    generate_exercises(FIXTURES / "solutions", out)
    target = out / "00_tiny.ipynb"
    first = target.read_bytes()
    os.utime(target, (1_000_000_000, 1_000_000_000))   # a rewrite would move the mtime
    generate_exercises(FIXTURES / "solutions", out)
    assert target.read_bytes() == first
    assert target.stat().st_mtime == 1_000_000_000


def test_find_exercises_names_stubs_and_their_check_cells():
    nb = nbformat.read(SOLUTION, as_version=4)
    found = find_exercises(nb, "00_tiny.ipynb")
    ids = [c.id for c in nb.cells]
    assert [(e.name, e.cell_id) for e in found] == [
        ("add", "add"), ("Counter", "counter"), ("clip", "clip"), ("mean", "mean")]
    assert [[ids[i] for i in e.check_cells] for e in found] == [
        ["add-type", "add-value"], ["counter-check"], ["clip-check"], ["mean-check"]]


def test_the_committed_fixture_exercise_is_up_to_date():
    assert check_exercises_up_to_date(FIXTURES / "solutions", FIXTURES / "exercises") == []


def test_up_to_date_check_lists_stale_missing_and_orphaned_files(tmp_path):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    shutil.copy(SOLUTION, solutions / "00_tiny.ipynb")
    shutil.copy(SOLUTION, solutions / "01_copy.ipynb")
    generate_exercises(solutions, exercises)
    assert check_exercises_up_to_date(solutions, exercises) == []

    stale = exercises / "00_tiny.ipynb"
    stale.write_text(stale.read_text(encoding="utf-8").replace("YOUR CODE HERE", "your code here"),
                     encoding="utf-8")
    (exercises / "01_copy.ipynb").unlink()
    shutil.copy(GOLDEN, exercises / "99_orphan.ipynb")
    assert check_exercises_up_to_date(solutions, exercises) == [
        exercises / "00_tiny.ipynb", exercises / "01_copy.ipynb", exercises / "99_orphan.ipynb"]


def test_generate_main_checks_and_writes(tmp_path, capsys):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    shutil.copy(SOLUTION, solutions / "00_tiny.ipynb")
    args = ["--solutions", str(solutions), "--exercises", str(exercises)]

    assert cli_generate(args + ["--check"]) == 1
    assert "00_tiny.ipynb: differs" in capsys.readouterr().out
    assert not exercises.exists()                                # --check writes nothing

    assert cli_generate(args) == 0
    assert f"wrote {exercises / '00_tiny.ipynb'}" in capsys.readouterr().out
    assert (exercises / "00_tiny.ipynb").read_bytes() == GOLDEN.read_bytes()

    assert cli_generate(args + ["--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert cli_generate(args) == 0
    assert f"unchanged {exercises / '00_tiny.ipynb'}" in capsys.readouterr().out


def test_generate_main_reports_a_malformed_notebook_without_a_traceback(tmp_path, capsys):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nb = new_notebook(cells=[new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1", id="f")])
    nbformat.write(nb, solutions / "00_bad.ipynb")
    code = cli_generate(["--solutions", str(solutions), "--exercises", str(tmp_path / "ex")])
    err = capsys.readouterr().err
    assert code == 2
    assert "00_bad.ipynb, cell index 0 (id 'f'), line 2" in err and "never closed" in err
    assert "Traceback" not in err
    assert not (tmp_path / "ex" / "00_bad.ipynb").exists()


def test_stub_replaces_each_block_at_its_indentation():
    source = ("class A:\n"
              "    def f(self):\n"
              "        x = 1\n"
              "        if x:\n"
              "            ### BEGIN SOLUTION\n"
              "            return x\n"
              "            ### END SOLUTION\n"
              "        return 0\n"
              "\t### BEGIN SOLUTION  \n"
              "\tpass\n"
              "\t### END SOLUTION\n")
    assert stub_source(source) == ("class A:\n"
                                   "    def f(self):\n"
                                   "        x = 1\n"
                                   "        if x:\n"
                                   "            # YOUR CODE HERE\n"
                                   "            raise NotImplementedError()\n"
                                   "        return 0\n"
                                   "\t# YOUR CODE HERE\n"
                                   "\traise NotImplementedError()\n")


def test_a_stub_block_gives_the_student_code_to_fix():
    source = ("def f(q, k):\n"
              "    ### BEGIN SOLUTION\n"
              "    s = q @ k / 2  # fixed\n"
              "    ### END SOLUTION\n"
              "    ### BEGIN STUB\n"
              "    # s = q @ k\n"
              "    #\n"
              "    # if s:\n"
              "    #     s = -s\n"
              "    ### END STUB\n"
              "    return s\n")
    assert stub_source(source) == "def f(q, k):\n    s = q @ k\n\n    if s:\n        s = -s\n    return s\n"
    exercise = make_exercise(_one_cell_notebook(source))
    assert exercise.cells[2].source == stub_source(source)
    assert find_exercises(_one_cell_notebook(source))[0].name == "f"


def _one_cell_notebook(source, cell_type="code"):
    make = new_code_cell if cell_type == "code" else new_markdown_cell
    return new_notebook(cells=[new_markdown_cell("# title", id="title"),
                               new_code_cell("import math", id="setup"),
                               make(source, id="the-cell")])


MALFORMED = {
    "unterminated BEGIN": ("def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x", 3, "never closed"),
    "END without BEGIN": ("def f():\n    return 1\n    ### END SOLUTION", 3, "without a"),
    "nested BEGIN": ("def f():\n    ### BEGIN SOLUTION\n    x = 1\n    ### BEGIN SOLUTION\n"
                     "    return x\n    ### END SOLUTION", 4, "nested"),
    "near-miss marker": ("def f():\n    ## BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", 2,
                         "looks like a solution marker"),
    "stub block alone": ("def f():\n    ### BEGIN STUB\n    # return 2\n    ### END STUB", 2,
                         "follows an '### END SOLUTION' line directly"),
    "stub line not commented": ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
                                "    ### BEGIN STUB\n    return 2\n    ### END STUB", 6, "commented out"),
    "unterminated stub": ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
                          "    ### BEGIN STUB\n    # return 2", 5, "never closed"),
    "marker inside a stub": ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
                             "    ### BEGIN STUB\n    ### BEGIN SOLUTION\n    ### END STUB", 6, "inside the stub block"),
    "END STUB alone": ("def f():\n    return 1\n    ### END STUB", 3, "without a '### BEGIN STUB'"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_markers_name_notebook_cell_and_line(case):
    source, line, words = MALFORMED[case]
    with pytest.raises(ExerciseFormatError) as info:
        make_exercise(_one_cell_notebook(source), "solutions/07_broken.ipynb")
    error = info.value
    assert (error.notebook, error.cell_index, error.cell_id, error.line) == (
        "solutions/07_broken.ipynb", 2, "the-cell", line)
    assert str(error).startswith(f"solutions/07_broken.ipynb, cell index 2 (id 'the-cell'), line {line}: ")
    assert words in str(error)


RULE_BREAKERS = {
    "two definitions": ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\n"
                        "def g():\n    return 2", "defines exactly one", "code"),
    "signature inside the block": ("### BEGIN SOLUTION\ndef f():\n    return 1\n### END SOLUTION",
                                   "would no longer define 'f'", "code"),
    "solution does not parse": ("def f(:\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                                "does not parse", "code"),
    "marker in markdown": ("Some text\n### BEGIN SOLUTION\nhidden\n### END SOLUTION",
                           "belong in code cells", "markdown"),
}


@pytest.mark.parametrize("case", RULE_BREAKERS)
def test_stub_cells_must_define_one_visible_name(case):
    source, words, cell_type = RULE_BREAKERS[case]
    with pytest.raises(ExerciseFormatError, match=words) as info:
        make_exercise(_one_cell_notebook(source, cell_type), "07_broken.ipynb")
    assert info.value.cell_index == 2 and info.value.cell_id == "the-cell"
    assert "07_broken.ipynb, cell index 2 (id 'the-cell')" in str(info.value)


def test_a_solution_notebook_needs_an_exercise_and_unique_names():
    with pytest.raises(ExerciseFormatError, match="at least one exercise"):
        make_exercise(new_notebook(cells=[new_code_cell("x = 1", id="a")]), "08_empty.ipynb")
    twice = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    nb = new_notebook(cells=[new_code_cell(twice, id="a"), new_code_cell(twice, id="b")])
    with pytest.raises(ExerciseFormatError, match="already an exercise") as info:
        make_exercise(nb, "08_twice.ipynb")
    assert info.value.cell_id == "b"


def test_generate_main_warns_about_unexecuted_check_cells(tmp_path, capsys):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nb = nbformat.read(SOLUTION, as_version=4)
    check = next(c for c in nb.cells if c.get("id") == "clip-check")
    check.execution_count, check.outputs = None, []
    nbformat.write(nb, solutions / "00_tiny.ipynb")
    assert cli_generate(["--solutions", str(solutions), "--exercises", str(tmp_path / "ex")]) == 0
    err = capsys.readouterr().err
    assert err.count("not executed") == 1 and "cell index 12" in err
