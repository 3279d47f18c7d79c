"""Real checkpoints when reachable, course-trained stand-ins otherwise.

The course teaches with real checkpoints (``google/vit-base-patch16-224``, openai CLIP ``ViT-B/32``,
Stable Diffusion 1.5). A student at home usually reaches the Hugging Face hub; a classroom, CI and
the course's build machines do not. One call decides, quickly and once per process::

    from course_utils.hub import resolve
    ckpt = resolve("google/vit-base-patch16-224")   # prints a one-line banner
    model = ViTForImageClassification.from_pretrained(ckpt.path)

``ckpt.path`` is the hub name when the real weights are usable (already in the local Hugging Face
cache, or the hub answered), and otherwise the folder of the registered **stand-in**: a small
model of the same architecture, trained by the course's own code and saved in the library's own
format, so the *same* ``from_pretrained`` call loads it.

The decision, in order:
1. ``COURSE_FORCE_STANDINS=1`` (CI sets it): stand-in.
2. The real weights are in the local cache: real.
3. The hub answers within ``PROBE_TIMEOUT_S`` (2 s; asked once per process): real.
4. Otherwise stand-in, and the process is switched to Hugging Face's offline mode, so that no
   later ``from_pretrained`` spends ~26 s retrying an unreachable hub.

Later chapters register their stand-ins with :func:`register_standin`. A stand-in is built once into
the course cache (:func:`course_cache_dir`) and checked every time it is handed out: its
``.complete`` marker holds a manifest (the size and sha256 of every file, see
:func:`write_manifest`), and a copy that is half-built, outdated, truncated or changed is rebuilt,
with a message, never loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

__all__ = [
    "CATALOGUE", "Checkpoint", "Resolved", "CheckpointUnavailable", "HubStatus",
    "resolve", "register_standin", "hub_status", "is_cached", "course_cache_dir", "go_offline",
    "build_standin", "standin_built", "standin_problem",
]

PROBE_TIMEOUT_S = 2.0
_COMPLETE = ".complete"  # written last into a stand-in folder: its manifest; absent means half-built
_MANIFEST_FORMAT = 1     # bump when the manifest's layout changes


@dataclass(frozen=True)
class Checkpoint:
    """A real checkpoint the course teaches with."""

    name: str      # the hub id (or openai CLIP's model name)
    library: str   # "transformers", "diffusers" or "clip": who loads it and how it is cached
    chapter: str   # where the course uses it first
    about: str     # one line for the doctor's table


CATALOGUE: dict[str, Checkpoint] = {c.name: c for c in [
    Checkpoint("google/vit-base-patch16-224", "transformers", "03", "ViT-B/16, ImageNet-1k"),
    Checkpoint("microsoft/swin-base-patch4-window7-224", "transformers", "04", "Swin-B, shifted windows"),
    Checkpoint("microsoft/beit-base-patch16-224", "transformers", "04", "BEiT-B, masked image modelling"),
    Checkpoint("facebook/deit-base-patch16-224", "transformers", "04", "DeiT-B, data-efficient ViT"),
    Checkpoint("facebook/convnext-tiny-224", "transformers", "04", "ConvNeXt-T, a modernised CNN"),
    Checkpoint("openai/clip-vit-base-patch32", "transformers", "05", "CLIP ViT-B/32 for transformers"),
    Checkpoint("ViT-B/32", "clip", "05", "CLIP ViT-B/32 for the openai clip package"),
    Checkpoint("stable-diffusion-v1-5/stable-diffusion-v1-5", "diffusers", "07", "Stable Diffusion 1.5"),
]}


@dataclass(frozen=True)
class _StandIn:
    build: Callable[[Path], None]  # writes the stand-in's files into the folder it is given
    about: str                     # what the stand-in is, for the banner
    version: str                   # bump to rebuild cached copies when the recipe changes
    entry: str = ""                # the file inside the folder that the loading call takes ("" = the folder)


_STANDINS: dict[str, _StandIn] = {}


class CheckpointUnavailable(RuntimeError):
    """Neither the real checkpoint nor a stand-in can be had."""


@dataclass(frozen=True)
class Resolved:
    """What :func:`resolve` decided. Pass ``path`` to the library's loading call."""

    name: str     # the real checkpoint's name, as asked for
    path: str     # the hub name (real) or a local folder / file (stand-in)
    real: bool
    reason: str   # why, in a few words

    @property
    def banner(self) -> str:
        if self.real:
            return f"[course] {self.name}: real weights ({self.reason})"
        about = _STANDINS[self.name].about if self.name in _STANDINS else "stand-in"
        return f"[course] {self.name}: stand-in, {about} ({self.reason})"

    def __str__(self) -> str:
        return self.banner


@dataclass(frozen=True)
class HubStatus:
    online: bool
    reason: str
    seconds: float


# ---------------------------------------------------------------- cache locations

def course_cache_dir() -> Path:
    """Where the course keeps what it builds (stand-ins): $COURSE_UTILS_CACHE or ~/.cache/vit-course."""
    root = os.environ.get("COURSE_UTILS_CACHE")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vit-course"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub computes it."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def clip_cache_dir() -> Path:
    """Where ``clip.load`` downloads to by default."""
    return Path(os.path.expanduser("~/.cache/clip"))


def _weights_files(library: str) -> tuple[str, ...]:
    if library == "diffusers":
        return ("model_index.json",)
    return ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def clip_url(name: str) -> str | None:
    """The address openai clip downloads ``name`` (e.g. "ViT-B/32") from; None if it has no such model."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openai clip's pkg_resources deprecation warning
        import clip

    return clip.clip._MODELS.get(name)


def is_cached(name: str, cache_dir: str | os.PathLike | None = None) -> bool:
    """True when the real weights of ``name`` are already on this machine (no network used)."""
    library = CATALOGUE[name].library if name in CATALOGUE else "transformers"
    if library == "clip":
        url = clip_url(name)
        root = Path(cache_dir) if cache_dir else clip_cache_dir()
        return url is not None and (root / os.path.basename(url)).is_file()
    from huggingface_hub import try_to_load_from_cache

    cache = str(cache_dir) if cache_dir else None
    if library == "transformers":
        config = try_to_load_from_cache(name, "config.json", cache_dir=cache)
        if not isinstance(config, str):
            return False
    return any(isinstance(try_to_load_from_cache(name, f, cache_dir=cache), str)
               for f in _weights_files(library))


# ---------------------------------------------------------------- is the hub there?

def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _probe_hub(url: str, timeout: float) -> None:
    """Raise unless ``url`` answers an HTTP request. Any HTTP status counts as an answer."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # the hub answered, with an error code: it is reachable


def go_offline() -> None:
    """Switch this process to Hugging Face's offline mode (cache only, no retries)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True  # read at import time; later calls consult this one
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        pass


@lru_cache(maxsize=1)
def hub_status() -> HubStatus:
    """Ask the hub once per process, waiting at most ``PROBE_TIMEOUT_S`` in all.

    The probe runs in a daemon thread, so even a DNS lookup that hangs (urllib's timeout does
    not cover it) costs no more than the limit. When the hub does not answer, the process goes
    offline (see :func:`go_offline`).
    """
    start = time.perf_counter()
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return HubStatus(False, "HF_HUB_OFFLINE is set", 0.0)
    outcome: dict[str, BaseException | None] = {}

    def probe() -> None:
        try:
            _probe_hub(_hub_endpoint(), PROBE_TIMEOUT_S)
            outcome["error"] = None
        except BaseException as error:  # noqa: BLE001 - any failure means "not reachable"
            outcome["error"] = error

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    seconds = time.perf_counter() - start
    if "error" not in outcome:
        go_offline()
        return HubStatus(False, f"the hub did not answer within {PROBE_TIMEOUT_S:.0f} s", seconds)
    if outcome["error"] is not None:
        go_offline()
        return HubStatus(False, f"the hub cannot be reached ({_short(outcome['error'])})", seconds)
    return HubStatus(True, f"the hub answered in {seconds:.1f} s", seconds)


def _short(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return f"{type(reason).__name__}: {reason}"[:80]


# ---------------------------------------------------------------- stand-ins

def register_standin(name: str, build: Callable[[Path], None], about: str, version: str = "1",
                     entry: str = "") -> None:
    """Register how to build the stand-in for the real checkpoint ``name``.

    ``build(folder)`` writes files that the library's own loading call accepts
    (``save_pretrained`` output, a TorchScript archive for ``clip.load``...). It is called once;
    the folder is then reused until ``version`` changes. ``entry`` names the file inside the folder
    that the loading call takes (``clip.load`` wants a file, ``from_pretrained`` the folder).
    """
    _STANDINS[name] = _StandIn(build=build, about=about, version=version, entry=entry)


def standin_dir(name: str) -> Path:
    safe = name.replace("/", "--")
    return course_cache_dir() / "standins" / f"{safe}-v{_STANDINS[name].version}"


def standin_built(name: str) -> bool:
    """True when the stand-in for ``name`` is built and intact (every file as its manifest says)."""
    return name in _STANDINS and standin_problem(name) is None


def standin_problem(name: str) -> str | None:
    """What is wrong with the cached stand-in for ``name`` ("is damaged (...)"), or None when it is
    intact. Checks the size of every file, then its sha256 (milliseconds for a few MB)."""
    folder, version = standin_dir(name), _STANDINS[name].version
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
                  for rel, (_, sha256) in files.items() if _sha256(folder / rel) != sha256]
    damage += [f"{rel}: not in the manifest" for rel in _files(folder)  # hidden ones: .DS_Store and co.
               if rel not in files and not any(part.startswith(".") for part in rel.split("/"))]
    return f"is damaged ({', '.join(damage)})" if damage else None


def write_manifest(folder: Path, version: str) -> dict:
    """Write ``folder``'s ``.complete`` marker, last: JSON with the manifest's format, the stand-in's
    version and, for every file (relative POSIX path), its size in bytes and its sha256::

        {"format": 1, "version": "1",
         "files": {"config.json": {"bytes": 850, "sha256": "9f2c..."}, ...}}
    """
    files = {rel: {"bytes": (folder / rel).stat().st_size, "sha256": _sha256(folder / rel)}
             for rel in _files(folder)}
    manifest = {"format": _MANIFEST_FORMAT, "version": version, "files": files}
    (folder / _COMPLETE).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` but its marker, as sorted relative POSIX paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() != _COMPLETE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_standin(name: str, rebuild: bool = False, build: Callable[[Path], None] | None = None) -> Path:
    """The stand-in's folder, building it first when it is missing, and rebuilding it (with a
    message) when the cached copy is half-built, outdated or damaged (see :func:`standin_problem`).

    ``build`` replaces the registered builder for this call (a lecture installing the model it
    has just trained); ``rebuild=True`` replaces a cached copy.
    """
    if name not in _STANDINS:
        raise CheckpointUnavailable(f"the course registers no stand-in for {name!r}")
    folder, version = standin_dir(name), _STANDINS[name].version
    if folder.exists() and not rebuild:
        problem = standin_problem(name)
        if problem is None:
            return folder
        print(f"[course] the cached stand-in for {name} {problem}; rebuilding it", flush=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        (build or _STANDINS[name].build)(scratch)
        write_manifest(scratch, version)
        _swap_in(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


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


# ---------------------------------------------------------------- the decision

def resolve(name: str, *, quiet: bool = False, cache_dir: str | os.PathLike | None = None) -> Resolved:
    """Decide between the real checkpoint ``name`` and its stand-in, and print a banner.

    Never waits more than about ``PROBE_TIMEOUT_S`` for the network, once per process.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"resolve() expects a checkpoint name such as 'google/vit-base-patch16-224', got {name!r}")
    if name not in CATALOGUE and name not in _STANDINS:
        known = ", ".join(sorted(CATALOGUE))
        raise KeyError(f"{name!r} is not a checkpoint the course uses; known: {known}")
    resolved = _decide(name, cache_dir)
    if not quiet:
        print(resolved.banner)
    return resolved


def _decide(name: str, cache_dir) -> Resolved:
    if os.environ.get("COURSE_FORCE_STANDINS", "").lower() in {"1", "true", "yes", "on"}:
        return _standin(name, "COURSE_FORCE_STANDINS is set")
    if is_cached(name, cache_dir):
        return Resolved(name, name, True, "in the local cache")
    status = hub_status()
    if status.online:
        return Resolved(name, name, True, f"{status.reason}; downloads on first use")
    return _standin(name, f"offline: {status.reason}")


def _standin(name: str, reason: str) -> Resolved:
    if name not in _STANDINS:
        chapter = CATALOGUE[name].chapter if name in CATALOGUE else "a later chapter"
        raise CheckpointUnavailable(
            f"{name} is not in the local cache and {reason.removeprefix('offline: ')}; "
            f"the course has no stand-in for it yet (chapter {chapter} adds one). "
            "Run it where the hub can be reached to download the real weights.")
    folder = build_standin(name)
    entry = _STANDINS[name].entry
    return Resolved(name, str(folder / entry if entry else folder), False, reason)


# The course's own stand-ins register themselves on import (kept last: they need register_standin).
from course_utils import standins as _standins  # noqa: E402,F401
