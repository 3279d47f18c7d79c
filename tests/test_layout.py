"""The package's layout holds: one folder per concern, arrows one way, a light top-level import, one CLI."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "course_utils"
# which rooms each room may import (besides itself); device.py is everyone's
ALLOWED = {
    "data": set(),
    "models": {"data"},
    "eval": {"data", "models"},
    "training": {"data", "models", "eval"},
    "interop": {"data", "models"},
    "teaching": {"data", "models", "eval"},
    "grading": {"data", "models", "interop", "eval"},  # a check may judge a student's model with eval's metrics
    "weights": {"data", "models", "eval", "training", "interop"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every course_utils module -> the course_utils modules it imports, at the top or inside a function."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_utils"):
                for alias in node.names:  # "from course_utils.weights import resolver" imports a module
                    candidate = f"{node.module}.{alias.name}"
                    found.add(candidate if candidate in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("course_utils")}
        graph[name] = {m for m in found if m != name and m in modules and m != "course_utils.__main__"}
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else "top"


def test_the_import_graph_is_acyclic():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(node, path):
        if state.get(node) == 1:
            cycle = path[path.index(node):] + [node]
            pytest.fail("an import cycle: " + " -> ".join(cycle))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])


def test_each_room_imports_only_the_rooms_below_it():
    wrong = []
    for module, imported in _imports().items():
        room = _room(module)
        if room == "top":
            continue
        for other in imported:
            target = _room(other)
            if target not in {room, "top"} | ALLOWED[room]:
                wrong.append(f"{module} imports {other} ({room}/ may import {sorted(ALLOWED[room]) or 'nothing'})")
            if target == "top" and other not in {"course_utils", "course_utils.device", "course_utils.paths"}:
                wrong.append(f"{module} imports {other}")
    assert not wrong, "\n".join(wrong)


def test_models_know_nothing_of_hubs_recipes_or_checks():
    """No model module reads or writes a file or asks a hub: no such import, no such call."""
    banned_imports = ("huggingface_hub", "safetensors", "course_utils.weights", "course_utils.grading")
    banned_calls = {"from_pretrained", "save_pretrained", "open", "load_file", "save_file", "snapshot_download"}
    for path in (PACKAGE / "models").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.startswith(banned_imports) for n in names), f"{path.name} imports {names}"
            if isinstance(node, ast.Call):
                called = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                assert called not in banned_calls, f"{path.name} calls {called}: models hold no I/O"


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_importing_the_package_imports_no_torch():
    code = "import sys, course_utils; print('torch' in sys.modules); print(course_utils.seed_everything(3))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "3"]  # and seed_everything still resolves, on first use


def test_one_command_line_with_subcommands(capsys):
    from course_utils.__main__ import COMMANDS, main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"    {name} " in out for name in COMMANDS)
    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        assert f"usage: python -m course_utils {name}" in capsys.readouterr().out
    assert main([]) == 2 and "the following arguments are required: COMMAND" in capsys.readouterr().err
    assert main(["teleport"]) == 2 and "invalid choice: 'teleport'" in capsys.readouterr().err
    assert main(["recipe", "miniclip", "--out"]) == 2  # a trailing --out is an argument error, not an IndexError
    assert "argument --out: expected one argument" in capsys.readouterr().err
    assert main(["recipe", "judge", "--measure"]) == 2
    assert main(["doctor", "--now"]) == 2 and "unrecognized arguments: --now" in capsys.readouterr().err
