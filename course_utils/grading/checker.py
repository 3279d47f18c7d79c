"""The exercise checker: how did a student do on an exercise notebook?

    python -m course_utils check exercises/01_attention.ipynb [--timeout 600] [--solutions DIR]

prints one line per exercise, in notebook order, then a summary, and exits 0 only when every exercise passed::

    ✓ scaled_dot_product_attention: passed
    ✗ MultiHeadAttention: failed — CheckFailed: expected shape (2, 4, 5, 8), got (2, 5, 4, 8)
    · patchify: not attempted
    1 of 3 exercises passed

How it works (the conventions are in ``course_utils.grading.exercises``): the solution notebook of the same file name
(``--solutions``, else ``$COURSE_SOLUTIONS_DIR``, else ``solutions/``) is copied with each stub cell's source replaced
by the student's version of that cell (by cell id, else the code cell defining the exercise's name); its setup and
check cells, with their stored outputs, are kept, so editing a check changes nothing and scratch cells are ignored.
nbval runs that graded copy in a subprocess with a time limit per cell, and ``course_utils.grading.nbval_report``
records each cell's result. An exercise is *passed* when its stub cell and its check cells ran without error and the
checks printed what the solution printed; *not attempted* while its cell still holds the generated
``raise NotImplementedError()`` (or no cell defines it); otherwise *failed*, with the first difference: the exception
line or the first output line that differs, expected vs got. A student's syntax error is found before running (the
stub stands in, so the other exercises are still checked); a failing setup cell, a timeout or a dead kernel is one
plain line, and the exercises after it are *not checked*. The student's file is only read, never written.
"""
from __future__ import annotations

import ast
import copy
import difflib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from course_utils.grading import nbval_report as _nbval_report
from course_utils.grading.exercises import (
    STUB_LINES,
    Exercise,
    ExerciseFormatError,
    _code_for_ast,
    defined_names,
    find_exercises,
    stub_source,
)

__all__ = ["CheckError", "ExerciseResult", "Report", "check_notebook", "run", "default_solutions_dir"]

PASSED, FAILED, NOT_ATTEMPTED, NOT_CHECKED = "passed", "failed", "not attempted", "not checked"
SYMBOLS = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "·", NOT_CHECKED: "·"}
ASCII_SYMBOLS = {PASSED: "+", FAILED: "x", NOT_ATTEMPTED: "-", NOT_CHECKED: "-"}
DOCTOR = "python -m course_utils doctor"


class CheckError(Exception):
    """The notebook could not be checked at all (a missing file, not a notebook, no solution)."""


@dataclass
class ExerciseResult:
    name: str
    status: str          # "passed", "failed", "not attempted" or "not checked"
    detail: str = ""     # the first difference, or why it was not attempted / checked

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def line(self, symbols=SYMBOLS) -> str:
        text = f"{symbols[self.status]} {self.name}: {self.status}"
        if self.detail:
            first, *rest = self.detail.splitlines() or [""]
            text += f" — {first}" + "".join(f"\n    {line}" for line in rest)
        return text


@dataclass
class Report:
    notebook: Path
    solution: Path
    exercises: list[ExerciseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # about the run, not one exercise
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.exercises) and all(e.passed for e in self.exercises)

    @property
    def summary(self) -> str:
        passed, total = sum(e.passed for e in self.exercises), len(self.exercises)
        return f"{passed} of {total} exercise{'s' * (total != 1)} passed"

    def lines(self, symbols=SYMBOLS) -> list[str]:
        return [f"! {p}" for p in self.problems] + [e.line(symbols) for e in self.exercises] + [self.summary]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def default_solutions_dir() -> Path:
    """``$COURSE_SOLUTIONS_DIR``, else ``solutions/`` in the repository that holds this package."""
    env = os.environ.get("COURSE_SOLUTIONS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "solutions"


# ---------------------------------------------------------------------------- reading the input
def _read_notebook(path: Path, role: str) -> NotebookNode:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CheckError(f"{path} is not a Jupyter notebook: it is not even text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        hint = (" If it was saved half-way, restore it from your last checkpoint "
                "(File > Revert Notebook to Checkpoint) or from the course repository."
                if role == "your notebook" else "")
        raise CheckError(f"{path} is not a valid notebook: its JSON is broken at line {e.lineno}, "
                         f"column {e.colno} ({e.msg}).{hint}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise CheckError(f"{path} is JSON but not a Jupyter notebook (it has no list of cells)")
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as e:  # noqa: BLE001 - any reader failure means: not a notebook we can use
        raise CheckError(f"{path} is not a notebook nbformat can read: {e}") from None


def _find_solution(notebook: Path, solutions_dir: Path) -> Path:
    if not solutions_dir.is_dir():
        raise CheckError(f"no solutions directory at {solutions_dir} (pass --solutions DIR or set COURSE_SOLUTIONS_DIR)")
    solution = solutions_dir / notebook.name
    if solution.is_file():
        return solution
    available = sorted(p.name for p in solutions_dir.glob("*.ipynb"))
    close = difflib.get_close_matches(notebook.name, available, n=1)
    raise CheckError(
        f"there is no solution notebook named {notebook.name} in {solutions_dir}; "
        + (f"did you mean {close[0]}? " if close else "")
        + ("available: " + ", ".join(available) if available else "it holds no notebook")
        + ". The checker matches notebooks by file name: check a notebook saved under its "
          "original name.")


# ------------------------------------------------------------------ building the graded notebook
def _is_unattempted(source: str) -> bool:
    return any(line.strip() == STUB_LINES[1] for line in source.splitlines())


def _defines(cell: NotebookNode, name: str) -> bool:
    try:
        return name in defined_names(cell.source)
    except SyntaxError:
        return False


def _student_cell(student: NotebookNode, exercise: Exercise) -> NotebookNode | None:
    """The student's version of a stub cell.

    The cell with the stub's id, when it defines the exercise and holds no stub any more; else
    the last code cell that does (the student wrote the answer in a cell of their own); else the
    cell with the stub's id, whatever it holds; else the last code cell defining the name.
    """
    code = [cell for cell in student.cells if cell.cell_type == "code"]
    by_id = next((cell for cell in code if exercise.cell_id and cell.get("id") == exercise.cell_id), None)
    defining = [cell for cell in code if _defines(cell, exercise.name)]
    attempted = [cell for cell in defining if not _is_unattempted(cell.source)]
    if by_id is not None and any(cell is by_id for cell in attempted):
        return by_id
    if attempted:
        return attempted[-1]
    return by_id if by_id is not None else defining[-1] if defining else None


def _syntax_problem(name: str, source: str) -> str | None:
    """What the checker says of a student's cell that does not parse, or None when it parses."""
    try:
        ast.parse(_code_for_ast(source))
    except SyntaxError as error:
        lines = source.splitlines()
        text = "\n" + lines[error.lineno - 1].strip() if error.lineno and 0 < error.lineno <= len(lines) else ""
        return f"syntax error in your cell for {name}, line {error.lineno}: {error.msg}{text}"
    return None


# ------------------------------------------------------------------------------ running nbval
# pytest with the report plugin loaded from its file, so that the run does not import the
# course_utils package (its __init__ imports torch: two seconds for nothing)
_LAUNCHER = """\
import importlib.util, sys
spec = importlib.util.spec_from_file_location("course_nbval_report", sys.argv[1])
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
import pytest
sys.exit(pytest.main(sys.argv[2:], plugins=[plugin]))
"""


def _run_nbval(graded: Path, timeout: float, workdir: Path, n_cells: int) -> tuple[list[dict], str]:
    """Run nbval on the graded notebook; return the plugin's records and pytest's output."""
    record_file = workdir / "nbval-report.jsonl"
    ini = workdir / "pytest.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    command = [sys.executable, "-c", _LAUNCHER, str(Path(_nbval_report.__file__)),
               str(graded), "--nbval", "--nbval-current-env", f"--nbval-cell-timeout={timeout:g}",
               f"--nbval-report={record_file}", "-p", "no:cacheprovider", "-c", str(ini),
               f"--rootdir={workdir}", "-q", "--color=no", "-W", "ignore"]
    # MPLBACKEND (e.g. Agg) would stop the kernel's inline figures, which the checks compare
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "MPLBACKEND")}
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    # a limit on the whole run, should nbval itself hang: every cell at its limit, and then some
    limit = 120 + (timeout + 10) * max(n_cells, 1)
    try:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=limit, stdin=subprocess.DEVNULL)
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        output = e.stdout or ""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        output += f"\n(the whole run was stopped after {limit:g} s)"
    records = []
    if record_file.exists():
        for line in record_file.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a crash
                pass
    return records, output


# --------------------------------------------------------------------------- reading the results
def _coalesce(outputs: list[dict]) -> list[dict]:
    """Merge the stream outputs of one name into the first, as nbval does before comparing."""
    merged, streams = [], {}
    for out in outputs:
        if out.get("output_type") == "stream":
            name = out.get("name", "stdout")
            if name in streams:
                streams[name]["text"] += out.get("text", "")
                continue
            out = dict(out, text=out.get("text", ""))
            streams[name] = out
        merged.append(out)
    return merged


def _output_lines(outputs: list[dict]) -> list[str]:
    lines = []
    for out in _coalesce(outputs):
        kind = out.get("output_type")
        if kind in ("stream", "execute_result", "display_data"):
            text = out.get("text", "") if kind == "stream" else (out.get("data") or {}).get("text/plain", "")
            lines += ("".join(text) if isinstance(text, list) else text).splitlines()
        elif kind == "error":
            lines.append(f"{out.get('ename')}: {out.get('evalue')}")
    return lines


def _first_difference(expected: list[str], got: list[str]) -> str | None:
    for want, have in itertools.zip_longest(expected, got):
        if want != have:
            want, have = (f'"{line}"' if line is not None else "no more output" for line in (want, have))
            return f"output differs from the solution's: expected {want}, got {have}"
    return None


def _error_line(record: dict) -> str:
    for out in record.get("outputs", []):
        if out.get("output_type") == "error":
            value = (out.get("evalue") or "").strip()
            return f"{out.get('ename')}: {value}" if value else str(out.get("ename"))
    return record.get("message", "").strip().splitlines()[0] if record.get("message") else "failed"


@dataclass
class _CellResult:
    kind: str            # "passed", "error", "differs", "timeout", "died", "skipped", "internal"
    text: str = ""


def _cell_results(records: list[dict], graded: NotebookNode, code_index: dict[int, int],
                  timeout: float) -> dict[int, _CellResult]:
    """One result per notebook cell index, from the plugin's records."""
    results: dict[int, _CellResult] = {}
    for record in records:
        index = code_index.get(record["cell"])
        if index is None or record["when"] == "teardown" or (index in results and results[index].kind != "passed"):
            continue
        outcome, when = record["outcome"], record["when"]
        exc_type, message = record.get("exc_type"), record.get("message", "")
        if outcome in ("passed", "skipped"):
            results[index] = _CellResult(outcome, record.get("skipped_reason") or "")
        elif exc_type == "KernelDied" or "Kernel dead" in message:
            results[index] = _CellResult("died", "the Python kernel died while running this cell (a crash, or out of memory?)")
        elif record.get("timed_out") and when == "call":
            results[index] = _CellResult("timeout", f"a cell did not finish within {timeout:g} s: an endless loop? "
                                         "(if your code is only slow, raise the limit with --timeout SECONDS)")
        elif when != "call":
            results[index] = _CellResult("internal", f"the notebook could not be run: {message}")
        elif message.startswith("Cell outputs differ"):
            text = _first_difference(_output_lines(graded.cells[index].outputs), _output_lines(record.get("outputs", [])))
            if text is None:
                detail = next((line.strip() for line in record.get("detail", "").splitlines() if line.strip()), "")
                text = "output differs from the solution's" + (f" ({detail})" if detail else "")
            results[index] = _CellResult("differs", text)
        elif message.startswith("Cell execution caused an exception"):
            results[index] = _CellResult("error", _error_line(record))
        else:
            results[index] = _CellResult("internal", message.strip().splitlines()[0] if message.strip() else "the cell failed")
    return results


# ------------------------------------------------------------------------------------ the checker
def check_notebook(path, solutions_dir=None, timeout: float = 600) -> Report:
    """Check a student's exercise notebook against its solution; see the module docstring.

    Raises CheckError when the notebook cannot be checked at all.
    """
    start = time.monotonic()
    path = Path(path)
    if not path.exists():
        raise CheckError(f"{path} does not exist")
    if path.is_dir():
        raise CheckError(f"{path} is a directory; give the path of one exercise notebook (.ipynb)")
    if path.suffix != ".ipynb":
        raise CheckError(f"{path} is not a Jupyter notebook (.ipynb) file")
    student = _read_notebook(path, "your notebook")
    solutions_dir = Path(solutions_dir) if solutions_dir is not None else default_solutions_dir()
    solution_path = _find_solution(path, solutions_dir)
    solution = _read_notebook(solution_path, "the solution")
    try:
        exercises = find_exercises(solution, str(solution_path))
    except ExerciseFormatError as e:
        raise CheckError(f"the solution notebook is malformed: {e}") from None

    report = Report(notebook=path, solution=solution_path)
    graded = copy.deepcopy(solution)
    verdicts: dict[str, ExerciseResult] = {}      # decided before running
    for exercise in exercises:
        name, cell = exercise.name, graded.cells[exercise.cell_index]
        mine = _student_cell(student, exercise)
        if mine is None:
            verdicts[name] = ExerciseResult(name, NOT_ATTEMPTED, "your notebook has no cell that defines it")
        elif (problem := _syntax_problem(name, mine.source)) is not None:
            verdicts[name] = ExerciseResult(name, FAILED, problem)
        cell.source = stub_source(cell.source) if name in verdicts else mine.source  # the stub stands in
        cell.outputs, cell.execution_count = [], None   # the stub cell's own output is not compared

    # nbval's cell number -> index in cells
    code_index = dict(enumerate(i for i, cell in enumerate(graded.cells) if cell.cell_type == "code"))

    with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
        graded_path = Path(tmp) / solution_path.name
        nbformat.write(graded, graded_path)
        records, output = _run_nbval(graded_path, timeout, Path(tmp), len(code_index))
    results = _cell_results(records, graded, code_index, timeout)

    if not records:
        tail = [line for line in output.strip().splitlines() if line.strip()][-5:]
        report.problems.append("nbval could not run the notebook" + (": " + " / ".join(tail) if tail else ""))

    first = exercises[0].cell_index
    stopped = None                      # why the cells after some point were not checked
    for i in (i for i in code_index.values() if i < first):
        result = results.get(i)
        if result is None or result.kind in ("passed", "skipped"):
            continue
        if result.kind == "differs":
            report.problems.append(f"note: the setup cell at index {i} printed something other "
                                   f"than the solution's ({result.text}); not your code, and "
                                   "the exercises are checked anyway")
            continue
        if result.kind == "internal":
            report.problems.append(result.text)
            stopped = "the notebook could not be run"
        else:
            report.problems.append(f"the notebook's setup code (cell index {i}) failed: "
                                   f"{result.text}. This is not your code: check your "
                                   f"environment with `{DOCTOR}`.")
            stopped = "the setup code failed"
        break

    for exercise in exercises:
        name = exercise.name
        cells = [exercise.cell_index, *exercise.check_cells]
        failure = None if stopped else next((results[i] for i in cells
                                             if i in results and results[i].kind not in ("passed", "skipped")), None)
        if failure is not None and failure.kind == "internal":
            report.problems.append(failure.text)
            stopped = "the notebook could not be run"
        if stopped:
            report.exercises.append(verdicts.get(name) or ExerciseResult(name, NOT_CHECKED, stopped))
            continue
        if failure is not None and failure.kind in ("timeout", "died"):  # this exercise failed; the later ones wait
            stopped = {"timeout": "an earlier cell did not finish", "died": "the kernel died earlier"}[failure.kind]
        if name in verdicts:
            report.exercises.append(verdicts[name])
        elif failure is None and not all(i in results for i in cells):
            report.exercises.append(ExerciseResult(name, NOT_CHECKED, "its cells did not run"))
        elif failure is not None and _is_unattempted(graded.cells[exercise.cell_index].source):
            report.exercises.append(ExerciseResult(name, NOT_ATTEMPTED))
        elif failure is None:
            report.exercises.append(ExerciseResult(name, PASSED))
        else:
            report.exercises.append(ExerciseResult(name, FAILED, failure.text))
    report.seconds = time.monotonic() - start
    return report


def _symbols_for(stream) -> dict[str, str]:
    try:
        "✓✗·—".encode(stream.encoding or "ascii")
        return SYMBOLS
    except (UnicodeEncodeError, LookupError):
        return ASCII_SYMBOLS


def _safe_print(text: str, stream) -> None:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(text.encode(encoding, errors="replace").decode(encoding), file=stream)


def run(args) -> int:
    """``python -m course_utils check NOTEBOOK``: 0 if every exercise passed, 1 if not, 2 if the
    notebook could not be checked."""
    out = sys.stdout
    try:
        print(f"Checking {args.notebook} (this starts a Python kernel; a few seconds)...", file=out, flush=True)
        report = check_notebook(args.notebook, args.solutions, args.timeout)
    except CheckError as e:
        _safe_print(f"error: {e}", sys.stderr)
        return 2
    symbols = _symbols_for(out)
    for line in report.lines(symbols):
        _safe_print(line if symbols is SYMBOLS else line.replace("—", "-"), out)
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    from course_utils.__main__ import main

    sys.exit(main(["check", *sys.argv[1:]]))
