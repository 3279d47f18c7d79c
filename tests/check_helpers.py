"""Helpers shared by the tests of the exercise checks (tests/test_checks_*.py)."""
import contextlib
import io

import pytest

from course_utils.grading.checks import CheckFailed


def run(check, obj) -> str:
    """Run a check; return what it printed (CheckFailed propagates)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check(obj)
    return out.getvalue()


def fails(check, obj, *fragments):
    """Run a check that must fail; assert its message contains every fragment, and return it."""
    with pytest.raises(CheckFailed) as info:
        run(check, obj)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message
