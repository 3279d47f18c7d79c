"""The course cache (``$COURSE_UTILS_CACHE`` or ``~/.cache/vit-course``) and the manifests that guard it.

Whatever the course builds there (a stand-in, a converted CLIP archive) is built into a scratch folder,
given a ``.complete`` manifest (the size and sha256 of every file, :func:`write_manifest`) and renamed into
place (:func:`build_checked`), so a folder is never half-written; a copy that is half-built, outdated,
truncated or changed is found (:func:`folder_problem`) and rebuilt with one line saying why. Large files
found intact once are not hashed again until their size or time changes (:func:`read_checked`).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from course_utils.paths import course_cache_dir, exclusive

__all__ = ["folder_problem", "write_manifest", "build_checked", "sha256_file", "read_checked", "write_checked",
           "file_digest"]

_COMPLETE = ".complete"  # written last into a stand-in folder: its manifest; absent means half-built
_MANIFEST_FORMAT = 1     # bump when the manifest's layout changes


def folder_problem(folder: Path, version: str) -> str | None:
    """What is wrong with a folder the course built (a stand-in, a converted archive), judged by its
    ``.complete`` manifest (see :func:`write_manifest`), or None when every file is as recorded."""
    marker = folder / _COMPLETE
    if not folder.is_dir():
        return "is not built"
    if not marker.is_file():
        return "is incomplete (no .complete marker: its build was interrupted)"
    text = marker.read_text(errors="replace")
    try:
        manifest = json.loads(text)
        files = {str(rel): (int(f["bytes"]), str(f["sha256"])) for rel, f in manifest["files"].items()}
        recorded, layout = str(manifest["version"]), manifest["format"]
    except (ValueError, KeyError, TypeError, AttributeError):
        if text.strip() and "{" not in text:  # a bare version number: a marker from before manifests
            return "is outdated (its marker has no manifest)"
        return f"is damaged ({_COMPLETE}: not a readable manifest)"
    if layout != _MANIFEST_FORMAT:
        return f"is outdated (manifest format {layout}, the course now writes {_MANIFEST_FORMAT})"
    if recorded != version:
        return f"is outdated (version {recorded}, the course now builds version {version})"
    damage = []
    for rel, (size, _) in files.items():  # 1. sizes: a truncated or missing file
        path = folder / rel
        if not path.is_file():
            damage.append(f"{rel}: missing")
        elif path.stat().st_size != size:
            damage.append(f"{rel}: {path.stat().st_size:,} of {size:,} bytes")
    if not damage:  # 2. contents: a file changed in place keeps its size
        damage = [f"{rel}: contents changed (sha256 differs)"
                  for rel, (_, sha256) in files.items() if not _same_contents(folder / rel, sha256)]
    damage += [f"{rel}: not in the manifest" for rel in _files(folder)  # hidden ones: .DS_Store and co.
               if rel not in files and not any(part.startswith(".") for part in rel.split("/"))]
    return f"is damaged ({', '.join(damage)})" if damage else None


def _same_contents(path: Path, sha256: str) -> bool:
    """Whether ``path`` hashes to ``sha256``; a large file found so once is not hashed again until its
    size or modification time changes (a converted CLIP archive is 600 MB)."""
    stat = path.stat()
    stamp, checked = [stat.st_size, stat.st_mtime_ns, sha256], read_checked()
    if stat.st_size > 50e6 and checked.get(str(path)) == stamp:
        return True
    same = sha256_file(path) == sha256
    if same and stat.st_size > 50e6:
        checked[str(path)] = stamp
        write_checked(checked)
    return same


def write_manifest(folder: Path, version: str) -> dict:
    """Write ``folder``'s ``.complete`` marker, last: JSON with the manifest's format, the stand-in's
    version and, for every file (relative POSIX path), its size in bytes and its sha256::

        {"format": 1, "version": "1",
         "files": {"config.json": {"bytes": 850, "sha256": "9f2c..."}, ...}}
    """
    files = {rel: {"bytes": (folder / rel).stat().st_size, "sha256": sha256_file(folder / rel)}
             for rel in _files(folder)}
    manifest = {"format": _MANIFEST_FORMAT, "version": version, "files": files}
    (folder / _COMPLETE).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` but its marker, as sorted relative POSIX paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() != _COMPLETE)


def sha256_file(path: Path) -> str:
    return file_digest(path, hashlib.sha256())


def file_digest(path: Path, digest) -> str:
    """``digest`` (a hashlib object) updated with the bytes of ``path``, in hex."""
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checked() -> dict:
    try:
        return json.loads((course_cache_dir() / "checked-files.json").read_text())
    except (OSError, ValueError):
        return {}


def write_checked(checked: dict) -> None:
    path = course_cache_dir() / "checked-files.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        scratch.write_text(json.dumps(checked, indent=1) + "\n")
        scratch.replace(path)  # atomic: a reader sees the old record or the new one
    except OSError:  # a read-only cache only costs checking again next time
        pass


def build_checked(folder: Path, version: str, build: Callable[[Path], None], what: str, rebuild: bool = False) -> Path:
    """``folder``, built by ``build(scratch)`` into a scratch folder beside it, given its manifest and
    renamed into place, unless an intact copy of ``version`` is there already. A damaged or outdated
    copy is rebuilt with one line naming ``what`` and its problem; a failed build leaves nothing."""
    if folder.exists() and not rebuild and folder_problem(folder, version) is None:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(folder):  # another process building it: wait, then use its copy
        if folder.exists() and not rebuild:
            problem = folder_problem(folder, version)
            if problem is None:
                return folder
            print(f"[course] {what} {problem}; rebuilding it", flush=True)
        scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
        try:
            with _libraries_quiet():  # the same output whether the folder was built now or before
                build(scratch)
            write_manifest(scratch, version)
            _swap_in(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


@contextmanager
def _libraries_quiet():
    """transformers' and diffusers' own progress bars ("Writing model shards", "Loading weights") off for
    a while; the course's training bars stay."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    enabled = [lib for lib in (transformers_logging, diffusers_logging) if lib.is_progress_bar_enabled()]
    for lib in enabled:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib in enabled:
            lib.enable_progress_bar()


def _swap_in(new: Path, folder: Path) -> None:
    """Put the complete folder ``new`` at ``folder`` with renames (atomic on one file system), so
    ``folder`` never holds a half-written copy; an old copy is moved aside first, then deleted."""
    old = folder.with_name(f".replaced-{folder.name}-{uuid.uuid4().hex[:8]}")
    if folder.exists():
        folder.rename(old)
    try:
        new.rename(folder)
    except OSError:
        if old.exists() and not folder.exists():
            old.rename(folder)  # put the old copy back; the caller sees the error
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
