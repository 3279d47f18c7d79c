"""Checks for the exercise notebooks: they run a student's function or class on fixed inputs.

One module per chapter (``course_utils.grading.checks.attention``, ...). Every check function follows
the same rules, so that the course's checker can compare a student's check-cell output with the
solution's, line for line:

* it prints only verdict lines, ``✓ <what was checked>``, with shapes where useful and never a
  raw float, so every correct implementation prints exactly the same text;
* on the first mistake it raises :class:`CheckFailed` with a message that names the mistake
  ("scores are not divided by sqrt(d_k)"), found by comparing the student's result with a
  reference *and* with the classic buggy variants;
* an exception inside the student's code is reported as "your ... raised X: message";
* inputs come from fixed seeds, in float32, and the notebook's own random state is left alone.

This file holds the helpers the chapter modules share.
"""
from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable

import torch

__all__ = ["CheckFailed", "passed", "fmt_shape", "call", "close", "first_match", "randn", "keep_rng",
           "require_callable", "unchanged", "require_tensor", "require_gradients", "same_answer", "answer_or_none",
           "answers_on_records", "explain_answers", "mean", "first_choice", "NO_GRAD", "NOT_TENSOR"]

NO_GRAD = "no gradient flows back to {name}: keep every step in torch (no .detach(), .item(), .data or NumPy)"
NOT_TENSOR = "expected a tensor, got {kind}: keep the computation in torch"


class CheckFailed(AssertionError):
    """A check found a mistake; the message names it (and, where it can, how to fix it)."""


def passed(text: str) -> None:
    """Print one verdict line: ``✓ text``."""
    print(f"✓ {text}")


def fmt_shape(shape_or_tensor) -> str:
    """A shape as the tuple students know: ``(2, 4, 5, 8)``."""
    shape = shape_or_tensor.shape if hasattr(shape_or_tensor, "shape") else shape_or_tensor
    return str(tuple(int(n) for n in shape))


def call(fn: Callable, *args, what: str = "your function", where: str = "", **kwargs):
    """``fn(*args, **kwargs)``; an exception inside it becomes a CheckFailed naming it.

    ``what`` names the student's code ("your function", "your forward"); ``where`` says what it
    was given ("for q of shape (3, 5, 16)"). Every other keyword goes to ``fn``.
    """
    try:
        return fn(*args, **kwargs)
    except CheckFailed:
        raise
    except NotImplementedError as e:
        raise CheckFailed(f"{what} is not implemented yet: replace `raise NotImplementedError()` "
                          "with your code") from e
    except Exception as e:  # noqa: BLE001 - any error in the student's code is reported, not shown raw
        given = f" {where}" if where else ""
        message = (str(e).strip().splitlines() or [""])[0]  # its first line
        raise CheckFailed(f"{what} raised {type(e).__name__}{given}" + (f": {message}" if message else "")) from e


def close(actual, expected, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """True when two tensors have the same shape and agree within float32 tolerance (NaN never agrees)."""
    if not (isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor)) or actual.shape != expected.shape:
        return False
    a = actual.detach().to("cpu", torch.float64)
    b = expected.detach().to("cpu", torch.float64)
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def first_match(result, variants, fallback: str, **tolerance) -> None:
    """Raise CheckFailed with the message of the first (wrong value, message) that ``result`` is close to, else
    with ``fallback``: called once ``result`` is known to differ from the reference."""
    for wrong, message in variants:
        if close(result, wrong, **tolerance):
            raise CheckFailed(message)
    raise CheckFailed(fallback)


def same_answer(got, want) -> bool:
    """Two answers of an experiment agree: both None, or numbers equal to float32 precision (a choice read back from a
    float32 tensor, 0.003000000026 for 0.003, is still that choice; the choices differ far more)."""
    if got is None or want is None:
        return got is want
    return math.isclose(float(got), float(want), rel_tol=1e-6)


def answer_or_none(got, name: str) -> None:
    """CheckFailed unless ``got`` is a number (a Python or NumPy float or int, or a 0-d tensor) or None."""
    if got is not None and (isinstance(got, (bool, str)) or not hasattr(got, "__float__")):
        raise CheckFailed(f"{name} should return a number from the choices it was given, or None, got "
                          f"{type(got).__name__}: return the value itself")


def answers_on_records(fn, name: str, calls, inputs: str) -> list:
    """The answers of a student's ``fn`` on made-up records. ``calls`` holds one ``(case, args)`` or ``(case, args,
    kwargs)`` per record: ``fn`` gets deep copies of ``args`` (so the records stay as made), and CheckFailed names the
    record if it raises, changes what it was given (``inputs`` says what that is) or returns anything but a number or
    None."""
    answers = []
    for case, args, *keywords in calls:
        given = copy.deepcopy(args)
        got = call(fn, *given, **(keywords[0] if keywords else {}), what=f"your {name}", where=f"on the record '{case}'")
        if given != args:
            raise CheckFailed(f"your {name} changed its input in place ({inputs}): read them, and compute new lists or "
                              "arrays")
        answer_or_none(got, name)
        answers.append(got)
    return answers


def mean(values) -> float:
    """The mean of a list of numbers, summed in order (as a student's ``sum(v) / len(v)`` is)."""
    return sum(values) / len(values)


def first_choice(hits, choices, *, largest: bool = False, index: bool = False, last_if_never: bool = False):
    """The answer to "the first of ``choices`` that qualifies" from the positions that do (``hits``, increasing): that
    choice, or None when none does; the keywords give the answers of three classic slips (the last that qualifies,
    its position, the last choice when none does)."""
    if not hits:
        return choices[-1] if last_if_never else None
    i = hits[-1] if largest else hits[0]
    return i if index else choices[i]


def explain_answers(answers, wants, cases, mistakes, fallback: str) -> None:
    """For a function that answers a question on several made-up records: pass when every answer is right; else
    CheckFailed at the first record answered wrong. A mistake (its answers on every record, its message) is named only
    when it gives every answer the student gave, so that two mistakes that agree on one record are told apart.
    ``cases`` names the records; ``fallback`` says what the right answer is."""
    wrong = [k for k, (got, want) in enumerate(zip(answers, wants)) if not same_answer(got, want)]
    if not wrong:
        return
    k = wrong[0]
    where = f"on the record '{cases[k]}' you return {answers[k]!r}, expected {wants[k]!r}"
    for theirs, message in mistakes:
        if all(same_answer(got, mine) for got, mine in zip(answers, theirs)):
            raise CheckFailed(f"{where}: your answers on all {len(answers)} records are those of this mistake: {message}")
    raise CheckFailed(f"{where}: {fallback}")


def randn(*shape: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """Standard normal float32 values from ``generator`` (independent of the global seed)."""
    return torch.randn(*shape, generator=generator, dtype=torch.float32) * scale


@contextlib.contextmanager
def keep_rng():
    """Run a check without changing torch's global random state (a student's __init__ draws from it); a ``with``
    block, or ``@keep_rng()`` on a whole check."""
    with torch.random.fork_rng(devices=[]):
        yield


def require_callable(obj, name: str, kind: str = "function") -> None:
    """CheckFailed unless ``obj`` can be called (a class, a function)."""
    if not callable(obj):
        raise CheckFailed(f"expected the {kind} {name}, got {type(obj).__name__}: pass the {kind} "
                          f"itself ({name}), not the result of calling it")


def require_tensor(result, message: str = NOT_TENSOR, **fields):
    """``result`` when it is a tensor, else CheckFailed: ``message`` with ``kind`` (its type) and ``fields``."""
    if not isinstance(result, torch.Tensor):
        raise CheckFailed(message.format(kind=type(result).__name__, **fields))
    return result


def unchanged(given, originals, what: str = "your function", hint: str = "compute new tensors",
              its_input: bool = True) -> None:
    """CheckFailed naming the first input the student's code changed in place: ``given`` and ``originals``
    are parallel ``{name: tensor}`` dicts (the tensors passed, and copies taken before the call)."""
    for name, before in originals.items():
        if isinstance(before, torch.Tensor) and not torch.equal(given[name].detach(), before):
            raise CheckFailed(f"{what} changed {'its input ' if its_input else ''}{name} in place: {hint}")


def require_gradients(out, r, named, what: str, everything: str, finite: bool = False) -> None:
    """Backpropagate ``(out * r).sum()`` through the student's code (``what``, "your forward"); CheckFailed (NO_GRAD)
    when ``out`` is cut off from the graph (``everything`` names what should get gradients) or the first of ``named``,
    (name, tensor) pairs, gets no gradient, a zero one or, with ``finite``, one with NaN or inf."""
    if not out.requires_grad:
        raise CheckFailed(NO_GRAD.format(name=everything))
    call(lambda: (out * r).sum().backward(), what=f"backpropagating through {what}")
    for name, t in named:
        if t.grad is None or not t.grad.abs().sum() > 0 or (finite and not torch.isfinite(t.grad).all()):
            raise CheckFailed(NO_GRAD.format(name=name))
