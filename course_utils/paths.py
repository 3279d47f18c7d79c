"""Where the course keeps what it builds: stand-ins, converted archives, remembered trainings."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["course_cache_dir"]


def course_cache_dir() -> Path:
    """$COURSE_UTILS_CACHE, or ~/.cache/vit-course ($XDG_CACHE_HOME/vit-course where that is set)."""
    root = os.environ.get("COURSE_UTILS_CACHE")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vit-course"
