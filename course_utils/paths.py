"""Where the course keeps what it builds: stand-ins, converted archives, remembered trainings."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["course_cache_dir", "exclusive"]


def course_cache_dir() -> Path:
    """$COURSE_UTILS_CACHE, or ~/.cache/vit-course ($XDG_CACHE_HOME/vit-course where that is set)."""
    root = os.environ.get("COURSE_UTILS_CACHE")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vit-course"


@contextmanager
def exclusive(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``target`` (a folder about to be built) while the block runs; another process asking
    for the same target waits.

    Two processes that need the same stand-in or the same live training (two test workers, a lecture and its
    rehearsal, a notebook open twice) thus build it once: the second finds it done when the lock is its turn. The lock
    file lives in the system's temporary folder, named by the target's resolved path, so the course cache holds only
    what was built; the operating system releases the lock when a process dies. Without ``fcntl`` (Windows), or where
    no lock file can be made, there is no lock, and each process builds its own copy, as before."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    name = hashlib.sha256(str(Path(target).expanduser().resolve()).encode()).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / f"vit-course-locks-{os.getuid()}"
    try:
        folder.mkdir(exist_ok=True)
        handle = open(folder / f"{name}.lock", "a")  # noqa: SIM115 - closed below, after the lock is released
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
