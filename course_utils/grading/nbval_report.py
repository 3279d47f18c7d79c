"""A pytest plugin for the checker: records what nbval found, cell by cell, as JSON lines.

Loaded by ``course_utils.grading.checker`` with ``-p course_utils.grading.nbval_report --nbval-report FILE``;
not meant for use on its own. One JSON object per test phase of each notebook cell, appended
(and flushed) as soon as it is known, so the record survives a crash of the run:

    {"cell": 3, "when": "call", "outcome": "failed", "exc_type": "NbCellError",
     "message": "...", "detail": "...", "timed_out": false, "outputs": [...]}

``cell`` counts code cells from 0, as nbval does. ``outputs`` are the outputs the cell produced
in this run (text only). It also makes two changes to nbval's behaviour:

* once a cell has timed out, the remaining cells are skipped rather than run (nbval would run
  them, expecting failure: a second endless loop would cost a second timeout);
* while waiting for a cell to finish, the kernel process is watched, so that a kernel that died
  is reported at once (as ``KernelDied``) instead of after the whole cell timeout.
"""
from __future__ import annotations

import json
import time
from queue import Empty

import pytest

_TEXT_KEYS = ("output_type", "name", "text", "ename", "evalue")


class KernelDied(RuntimeError):
    """The kernel process ended while a cell was running."""


def _text_outputs(outputs) -> list[dict]:
    return [{**{k: out[k] for k in _TEXT_KEYS if k in out},
             "data": {k: v for k, v in (out.get("data") or {}).items() if k.startswith("text/") and k != "text/html"}}
            for out in outputs or []]


def _watching_await_reply(self, msg_id, timeout=None):
    """nbval's RunningKernel.await_reply, polling so that a dead kernel is noticed quickly."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        if wait <= 0:
            raise Empty
        try:
            msg = self.get_message(stream="shell", timeout=wait)
        except Empty:
            if not self.is_alive():
                raise KernelDied("the kernel died while running the cell") from None
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            if msg["content"]["status"] == "aborted":
                raise RuntimeError("Kernel aborted execution request")
            return


def pytest_addoption(parser):
    parser.addoption("--nbval-report", default=None, metavar="FILE",
                     help="append one JSON line per notebook cell phase to FILE (course checker)")


def pytest_configure(config):
    try:
        from nbval.kernel import RunningKernel
    except ImportError:  # nbval missing: pytest reports the unknown --nbval option itself
        return
    # nbval's public interface (its pytest options and hooks) cannot do this: when the kernel dies in a
    # cell (a student's os._exit, a segfault, running out of memory), nbval 0.11 waits in
    # RunningKernel.await_reply for the whole --nbval-cell-timeout for a reply that will never come, and
    # it has no option or hook to watch the kernel. So this one method is replaced by one that polls
    # and checks the kernel is alive; if nbval renames it, hasattr is false and nbval's own is kept.
    if hasattr(RunningKernel, "await_reply"):
        RunningKernel.await_reply = _watching_await_reply


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if getattr(item.parent, "timed_out", False):
        pytest.skip("an earlier cell did not finish in time")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    path = item.config.getoption("--nbval-report")
    if path and hasattr(item, "cell_num"):
        exc = call.excinfo.value if call.excinfo else None
        record = {
            "cell": item.cell_num,
            "when": call.when,
            "outcome": report.outcome,
            "skipped_reason": str(exc.msg) if isinstance(exc, pytest.skip.Exception) else None,
            "exc_type": type(exc).__name__ if exc is not None else None,
            "message": str(exc)[:2000] if exc is not None else "",
            "detail": str(getattr(exc, "inner_traceback", "") or "")[:4000],
            "timed_out": bool(getattr(item.parent, "timed_out", False)),
            "outputs": _text_outputs(getattr(item, "test_outputs", None)) if call.when == "call" else [],
        }
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    return report
