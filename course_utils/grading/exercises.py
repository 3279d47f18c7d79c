"""The exercise generator: writes exercises/ from solutions/.

    python -m course_utils generate            # rewrite exercises/ from solutions/
    python -m course_utils generate --check    # CI: list the exercises that differ, exit 1 if any

How to write an exercise (the authoring conventions)
----------------------------------------------------
``solutions/NN_name.ipynb`` is the source; ``exercises/NN_name.ipynb`` is generated from it and
never edited by hand.

* **Stub cells.** A code cell holding one or more solution blocks::

      def add(a, b):
          \"\"\"Return a + b.\"\"\"
          ### BEGIN SOLUTION
          return a + b
          ### END SOLUTION

  The marker lines are nbgrader's, alone on their line, and may be indented. The generator
  replaces each block, markers included, by two lines at the BEGIN marker's indentation::

          # YOUR CODE HERE
          raise NotImplementedError()

  A debugging exercise gives the student code to fix instead: a ``### BEGIN STUB`` ...
  ``### END STUB`` block right after the solution block, every line commented out with ``# `` at
  the markers' indentation, becomes the exercise's code (uncommented) in place of those two lines::

          ### BEGIN SOLUTION
          scores = q @ k.transpose(-2, -1) / math.sqrt(d)
          ### END SOLUTION
          ### BEGIN STUB
          # scores = q @ k.transpose(-2, -1)
          ### END STUB

  A stub cell defines exactly one top-level function or class (imports and constants beside it
  are fine); its name is the exercise's name, and the ``def``/``class`` line stays outside the
  block so the student sees the signature. A class may hold several blocks (one per method).
* **Check cells.** The code cells after a stub cell, up to the next stub cell, check that
  exercise. They call ``course_utils.grading.checks`` functions, which print verdict lines (never raw
  floats, so every correct answer prints the same) and raise ``CheckFailed`` on a mistake.
* **Setup cells.** Code cells before the first stub cell.
* Solution notebooks are stored **executed**: the checker compares the check cells' outputs with
  the stored ones. Tag a cell ``nbval-ignore-output`` where its text legitimately varies.

The exercise notebook is the solution notebook with every block replaced and every code cell's outputs and execution
count cleared; cell ids and metadata are kept, so the checker can match a student's cells to the solution's. The output
is deterministic (the same bytes as ``nbformat.write``) and a file is rewritten only when its text changes.

Malformed markers (an unterminated BEGIN, an END without BEGIN, a nested BEGIN, a line that looks
like a marker but is not one, a marker outside a code cell) and stub cells that break the
one-definition rule raise :class:`ExerciseFormatError`, naming the notebook, the cell and the line.
"""
from __future__ import annotations

import ast
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.reader import NotJSONError

__all__ = [
    "BEGIN", "END", "STUB_LINES", "ExerciseFormatError", "Exercise",
    "find_exercises", "make_exercise", "stub_source", "defined_names", "notebook_text",
    "generate_exercises", "check_exercises_up_to_date", "run",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB_LINES = ("# YOUR CODE HERE", "raise NotImplementedError()")

_MARKER = re.compile(r"^[ \t]*(### (BEGIN|END) (SOLUTION|STUB))[ \t]*$")
_NEAR_MISS = re.compile(r"(BEGIN|END)[ _](SOLUTION|STUB)")


class ExerciseFormatError(ValueError):
    """A solution notebook breaks the authoring conventions (see the module docstring)."""

    def __init__(self, notebook: str, message: str, cell_index: int | None = None,
                 cell_id: str | None = None, line: int | None = None):
        self.notebook, self.cell_index = notebook, cell_index
        self.cell_id, self.line = cell_id, line
        where = [str(notebook)]
        if cell_index is not None:
            where.append(f"cell index {cell_index}" + (f" (id {cell_id!r})" if cell_id else ""))
        if line is not None:
            where.append(f"line {line}")
        super().__init__(", ".join(where) + ": " + message)


@dataclass(frozen=True)
class Exercise:
    """One exercise of a solution notebook: its stub cell and the check cells after it."""
    name: str
    cell_index: int                  # index of the stub cell in nb.cells
    cell_id: str | None
    check_cells: tuple[int, ...]     # indices (in nb.cells) of its check cells


def _code_for_ast(source: str) -> str:
    """The cell as plain Python: IPython magics (``%time``, ``!pip``) rewritten where possible."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - a broken cell: let ast.parse report it
        return source


def defined_names(source: str) -> list[str]:
    """Names of the top-level functions and classes a cell defines (raises SyntaxError)."""
    tree = ast.parse(_code_for_ast(source))
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _replace_blocks(source: str, fail) -> tuple[str, int]:
    """Replace each solution block by the stub lines; return (new source, number of blocks).

    ``fail(message, line)`` raises the error for a malformed marker (line numbers from 1).
    """
    out: list[str] = []
    opened_at: int | None = None     # line number of the BEGIN of the open block
    stub_at: int | None = None       # line number of the BEGIN STUB of the open stub block
    indent = ""
    blocks = 0
    lines = source.split("\n")
    for number, line in enumerate(lines, start=1):
        match = _MARKER.match(line.rstrip("\r"))
        if match is None and _NEAR_MISS.search(line):
            fail(f"{line.strip()!r} looks like a solution marker but is not exactly "
                 f"{BEGIN!r}, {END!r}, '### BEGIN STUB' or '### END STUB' alone on its line", number)
        kind = match.group(2, 3) if match else None
        if stub_at is not None:
            if kind == ("END", "STUB"):
                stub_at = None
            elif kind is not None:
                fail(f"{match.group(1)!r} inside the stub block opened on line {stub_at}", number)
            elif line.rstrip("\r") in (indent + "#", ""):
                out.append("")
            elif line.startswith(indent + "# "):
                out.append(indent + line[len(indent) + 2:])
            else:
                fail(f"every line of a stub block is commented out with '# ' at the markers' indentation, "
                     f"got {line.strip()!r}", number)
        elif kind == ("BEGIN", "STUB"):
            if lines[number - 2].strip() != END or not line.startswith(indent + "###"):
                fail(f"a stub block follows an {END!r} line directly, at the same indentation", number)
            del out[-2:]
            stub_at = number
        elif kind == ("END", "STUB"):
            fail("'### END STUB' without a '### BEGIN STUB' before it", number)
        elif kind == ("BEGIN", "SOLUTION"):
            if opened_at is not None:
                fail(f"nested {BEGIN!r}: the block opened on line {opened_at} is not closed yet", number)
            opened_at, indent = number, line[:len(line) - len(line.lstrip(" \t"))]
        elif kind == ("END", "SOLUTION"):
            if opened_at is None:
                fail(f"{END!r} without a {BEGIN!r} before it", number)
            out += [indent + STUB_LINES[0], indent + STUB_LINES[1] + ("\r" if line.endswith("\r") else "")]
            opened_at, blocks = None, blocks + 1
        elif opened_at is None:
            out.append(line)
    if opened_at is not None:
        fail(f"{BEGIN!r} is never closed by {END!r}", opened_at)
    if stub_at is not None:
        fail("'### BEGIN STUB' is never closed by '### END STUB'", stub_at)
    return "\n".join(out), blocks


def stub_source(source: str) -> str:
    """A stub cell's source with its solution blocks replaced (ValueError if malformed)."""
    def fail(message, line):
        raise ValueError(f"line {line}: {message}")
    return _replace_blocks(source, fail)[0]


def _scan(nb: NotebookNode, name_for_errors: str) -> tuple[list[Exercise], dict[int, str]]:
    """Validate the notebook; return its exercises and {stub cell index: exercise source}."""
    stubs: list[tuple[int, str, str]] = []          # (cell index, name, exercise source)
    for index, cell in enumerate(nb.cells):
        cell_id = cell.get("id")

        def fail(message, line=None, index=index, cell_id=cell_id):
            raise ExerciseFormatError(name_for_errors, message, index, cell_id, line)

        if cell.cell_type != "code":
            for number, line in enumerate(cell.source.split("\n"), start=1):
                if _MARKER.match(line.rstrip("\r")):
                    fail(f"solution markers belong in code cells, not in a {cell.cell_type} cell", number)
            continue
        new_source, blocks = _replace_blocks(cell.source, fail)
        if not blocks:
            continue
        try:
            names = defined_names(cell.source)
        except SyntaxError as e:
            fail(f"the solution cell does not parse: {e.msg}", e.lineno)
        if len(names) != 1:
            fail("a stub cell defines exactly one top-level function or class; this one defines "
                 + (", ".join(names) if names else "none"))
        try:
            exercise_names = defined_names(new_source)
        except SyntaxError as e:
            fail(f"the exercise cell would not parse ({e.msg}, line {e.lineno} of the exercise): "
                 "are the markers indented like the code they enclose?")
        if exercise_names != names:
            fail(f"the exercise cell would no longer define {names[0]!r}: keep the def/class line "
                 "outside the solution block, so that the student sees the signature")
        if any(names[0] == name for _, name, _ in stubs):
            fail(f"{names[0]!r} is already an exercise of this notebook (names must be unique)")
        stubs.append((index, names[0], new_source))
    if not stubs:
        raise ExerciseFormatError(name_for_errors, f"no {BEGIN!r} block: a solution notebook "
                                  "needs at least one exercise")
    exercises = []
    for k, (index, name, _) in enumerate(stubs):
        stop = stubs[k + 1][0] if k + 1 < len(stubs) else len(nb.cells)
        checks = tuple(i for i in range(index + 1, stop) if nb.cells[i].cell_type == "code")
        exercises.append(Exercise(name, index, nb.cells[index].get("id"), checks))
    return exercises, {index: source for index, _, source in stubs}


def find_exercises(nb: NotebookNode, name_for_errors: str = "<notebook>") -> list[Exercise]:
    """The exercises of a solution notebook, in order (ExerciseFormatError if malformed)."""
    return _scan(nb, name_for_errors)[0]


def make_exercise(nb: NotebookNode, name_for_errors: str = "<notebook>") -> NotebookNode:
    """The exercise notebook made from a solution notebook (which is left unchanged)."""
    _, stub_sources = _scan(nb, name_for_errors)
    exercise = copy.deepcopy(nb)
    for index, cell in enumerate(exercise.cells):
        if cell.cell_type == "code":
            cell.source = stub_sources.get(index, cell.source)
            cell.outputs, cell.execution_count = [], None
    return exercise


def notebook_text(nb: NotebookNode) -> str:
    """The exact text ``nbformat.write`` puts in a file."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def _plan(solutions_dir, exercises_dir) -> list[tuple[Path, Path, str]]:
    """(solution, exercise path, exercise text) for every solution notebook, all validated."""
    solutions_dir, exercises_dir = Path(solutions_dir), Path(exercises_dir)
    if not solutions_dir.is_dir():
        raise FileNotFoundError(f"no solutions directory at {solutions_dir}")
    plan = []
    for solution in sorted(solutions_dir.glob("*.ipynb")):
        nb = nbformat.read(solution, as_version=4)
        text = notebook_text(make_exercise(nb, str(solution)))
        plan.append((solution, exercises_dir / solution.name, text))
    return plan


def _same_text(path: Path, text: str) -> bool:
    try:
        return path.read_bytes().replace(b"\r\n", b"\n") == text.encode("utf-8")
    except FileNotFoundError:
        return False


def generate_exercises(solutions_dir="solutions", exercises_dir="exercises") -> list[Path]:
    """Write one exercise notebook per solution notebook; return their paths, in order.

    Every solution notebook is validated before anything is written; a file whose text is
    already right is left alone (same bytes, same mtime).
    """
    plan = _plan(solutions_dir, exercises_dir)
    Path(exercises_dir).mkdir(parents=True, exist_ok=True)
    for _, path, text in plan:
        if not _same_text(path, text):
            path.write_bytes(text.encode("utf-8"))
    return [path for _, path, _ in plan]


def check_exercises_up_to_date(solutions_dir="solutions", exercises_dir="exercises") -> list[Path]:
    """Exercise files that differ from what the generator makes: missing, stale, or orphaned
    (an exercise notebook with no solution notebook). An empty list means up to date."""
    plan = _plan(solutions_dir, exercises_dir)
    stale = [path for _, path, text in plan if not _same_text(path, text)]
    expected = {path.name for _, path, _ in plan}
    exercises_dir = Path(exercises_dir)
    if exercises_dir.is_dir():
        stale += [p for p in sorted(exercises_dir.glob("*.ipynb")) if p.name not in expected]
    return sorted(stale)


def _unexecuted_check_cells(solution: Path) -> list[str]:
    """Warnings: check cells with no stored execution (the checker cannot compare their output)."""
    nb = nbformat.read(solution, as_version=4)
    return [f"{solution}, cell index {i}: not executed, so its output is not checked "
            "(run the solution notebook and save it)"
            for exercise in find_exercises(nb, str(solution)) for i in exercise.check_cells
            if nb.cells[i].execution_count is None and nb.cells[i].source.strip()]


def run(args) -> int:
    """``python -m course_utils generate [--solutions DIR] [--exercises DIR] [--check]``."""
    try:
        if args.check:
            stale = check_exercises_up_to_date(args.solutions, args.exercises)
            for path in stale:
                print(f"{path}: differs from what the generator makes from {args.solutions}/")
            if stale:
                print(f"{len(stale)} exercise notebook(s) out of date: run "
                      "`python -m course_utils generate` (or `make exercises`); delete an exercise "
                      "whose solution notebook is gone")
                return 1
            print(f"{args.exercises}/ is up to date")
            return 0
        before = set(check_exercises_up_to_date(args.solutions, args.exercises))
        written = generate_exercises(args.solutions, args.exercises)
        for path in written:
            print(f"{'wrote' if path in before else 'unchanged'} {path}")
        for path in sorted(before - set(written)):
            print(f"warning: {path} has no solution notebook; delete it if it is obsolete", file=sys.stderr)
        for solution in sorted(Path(args.solutions).glob("*.ipynb")):
            for warning in _unexecuted_check_cells(solution):
                print(f"warning: {warning}", file=sys.stderr)
        return 0
    except (ExerciseFormatError, FileNotFoundError, NotJSONError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    from course_utils.__main__ import main

    sys.exit(main(["generate", *sys.argv[1:]]))
