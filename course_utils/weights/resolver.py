"""Real checkpoints when reachable, course-trained stand-ins otherwise (README: "Real models and stand-ins")::

    ckpt = resolve("google/vit-base-patch16-224")   # prints a one-line banner
    model = ViTForImageClassification.from_pretrained(ckpt.path)

``ckpt.path`` is the hub name, the cached folder when offline, or the folder of the registered stand-in
(``course_utils.weights.standins``), which the same ``from_pretrained`` call loads. The decision, in order:
1. ``COURSE_FORCE_STANDINS=1`` (CI sets it): stand-in.
2. The hub is asked once per process (``PROBE_TIMEOUT_S``); if it does not answer, the process goes offline at once.
3. The real weights are cached and intact (:func:`real_problem`): real.
4. The hub answered: :func:`download`; if that fails, the files it added are removed and the stand-in is used.
5. Otherwise: the stand-in.

openai's ``ViT-B/32`` resolves with its transformers twin (:data:`CLIP_TWINS`), converted for ``clip.load`` where
openai's archive cannot be had. ``Resolved.trained`` is False only in a rehearsal (random real weights).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from course_utils.paths import course_cache_dir
from course_utils.weights import cache, standins
from course_utils.weights.cache import build_checked, folder_problem, read_checked, sha256_file, write_checked
from course_utils.weights.standins import CheckpointUnavailable, build_standin

__all__ = [
    "CATALOGUE", "CLIP_TWINS", "Checkpoint", "Resolved", "CheckpointUnavailable", "HubStatus",
    "resolve", "hub_status", "go_offline", "is_cached", "real_problem", "snapshot", "download",
    "hf_cache_dir", "clip_cache_dir", "openai_archive", "download_openai_archive", "converted_clip_archive",
]

PROBE_TIMEOUT_S = 2.0


# What the course loads from a checkpoint, as groups of paths inside its repository, each satisfied by any one of its
# paths (the weights: one safetensors file, shards listed by an index, or a pickle from before safetensors).
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_CLASSIFIER = (("config.json",), ("preprocessor_config.json",), _HF_WEIGHTS)
_TOKENIZER = (("tokenizer_config.json",), ("tokenizer.json", "merges.txt"))  # the fast file, or vocab.json + merges.txt


def _in(folder: str, groups) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(f"{folder}/{path}" for path in group) for group in groups)


_SD_NEEDS = (
    (("model_index.json",), ("scheduler/scheduler_config.json",), ("feature_extractor/preprocessor_config.json",))
    + _in("tokenizer", _TOKENIZER)
    + _in("unet", (("config.json",), _DIFFUSERS_WEIGHTS)) + _in("vae", (("config.json",), _DIFFUSERS_WEIGHTS))
    + _in("text_encoder", (("config.json",), _HF_WEIGHTS)) + _in("safety_checker", (("config.json",), _HF_WEIGHTS)))


@dataclass(frozen=True)
class Checkpoint:
    """A real checkpoint the course teaches with."""

    name: str      # the hub id (or openai CLIP's model name)
    library: str   # "transformers", "diffusers" or "clip": who loads it and how it is cached
    chapter: str   # where the course uses it first
    about: str     # one line for the doctor's table
    needs: tuple[tuple[str, ...], ...] = _CLASSIFIER  # the files the course loads (see above)


CATALOGUE: dict[str, Checkpoint] = {c.name: c for c in [
    Checkpoint("google/vit-base-patch16-224", "transformers", "03", "ViT-B/16, ImageNet-1k"),
    Checkpoint("microsoft/swin-base-patch4-window7-224", "transformers", "04", "Swin-B, shifted windows"),
    Checkpoint("microsoft/beit-base-patch16-224", "transformers", "04", "BEiT-B, masked image modelling"),
    Checkpoint("facebook/deit-base-patch16-224", "transformers", "04", "DeiT-B, data-efficient ViT"),
    Checkpoint("facebook/convnext-tiny-224", "transformers", "04", "ConvNeXt-T, a modernised CNN"),
    Checkpoint("openai/clip-vit-base-patch32", "transformers", "05", "CLIP ViT-B/32 for transformers",
               _CLASSIFIER + _TOKENIZER),
    Checkpoint("ViT-B/32", "clip", "05", "CLIP ViT-B/32 for the openai clip package", ()),
    Checkpoint("stable-diffusion-v1-5/stable-diffusion-v1-5", "diffusers", "07", "Stable Diffusion 1.5", _SD_NEEDS),
]}

# openai's ViT-B/32 is openai/clip-vit-base-patch32 in another format (see the module docstring)
CLIP_TWINS = {"ViT-B/32": "openai/clip-vit-base-patch32"}


@dataclass(frozen=True)
class Resolved:
    """What :func:`resolve` decided. Pass ``path`` to the library's loading call."""

    name: str     # the real checkpoint's name, as asked for
    path: str     # the hub name (real), or a local folder / file (a stand-in, a converted archive)
    real: bool
    reason: str   # why, in a few words
    trained: bool = True  # False only for a rehearsal's random real weights: what they predict is not checked

    @property
    def banner(self) -> str:
        if self.real:
            untrained = "" if self.trained else "; rehearsal: random weights, so what they predict is not checked"
            return f"[course] {self.name}: real weights ({self.reason}{untrained})"
        about = standins.STANDINS[self.name].about if self.name in standins.STANDINS else "stand-in"
        return f"[course] {self.name}: stand-in, {about} ({self.reason})"

    def __str__(self) -> str:
        return self.banner


@dataclass(frozen=True)
class HubStatus:
    online: bool
    reason: str
    seconds: float


# ---------------------------------------------------------------- where things live

def hf_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face hub cache (``cache_dir`` if given), as huggingface_hub computes it."""
    if cache_dir:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def clip_cache_dir() -> Path:
    """Where openai ``clip`` keeps its archives (``clip.load``'s default download root)."""
    return Path(os.environ.get("COURSE_CLIP_CACHE") or os.path.expanduser("~/.cache/clip"))


# openai clip's download address of each catalogue model: the folder before the file name is the file's sha256
OPENAI_URLS = {"ViT-B/32": "https://openaipublic.azureedge.net/clip/models/"
                           "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt"}


def clip_url(name: str) -> str | None:
    """The address openai clip downloads ``name`` (e.g. "ViT-B/32") from; None if the course has none."""
    return OPENAI_URLS.get(name)


def rehearsing() -> bool:
    """True in a rehearsal of the real path (``COURSE_REHEARSAL=1``), whose real checkpoints hold random weights."""
    return _flag("COURSE_REHEARSAL")


def _flag(variable: str) -> bool:
    return os.environ.get(variable, "").lower() in {"1", "true", "yes", "on"}


# ---------------------------------------------------------------- the real weights on disk, checked

_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def cached_file(name: str, path: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """``path`` of the real checkpoint ``name`` in the Hugging Face cache (revision main), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, path, cache_dir=str(hf_cache_dir(cache_dir)))
    return Path(found) if isinstance(found, str) else None


def snapshot(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The cached folder of ``name`` (``snapshots/<commit>/`` of revision main), loadable without a network."""
    return cached_file(name, CATALOGUE[name].needs[0][0], cache_dir).parents[CATALOGUE[name].needs[0][0].count("/")]


def real_problem(name: str, cache_dir: str | os.PathLike | None = None) -> str | None:
    """What keeps the cached real checkpoint ``name`` from loading ("is not cached", "is incomplete (missing ...)", "is
    damaged (model.safetensors: ...)"), or None when every file the course loads is there and intact (:func:`file_problem`).
    Needs no network."""
    missing, damaged = [], []
    for group in CATALOGUE[name].needs:
        found = next(((path, file) for path in group if (file := cached_file(name, path, cache_dir))), None)
        if found is None:
            missing.append(" or ".join(group))
            continue
        files = [found]
        if found[0].endswith(".index.json"):  # sharded weights: the index names the shards
            folder = found[0].rpartition("/")[0]
            try:
                shards = sorted(set(json.loads(found[1].read_text())["weight_map"].values()))
            except (ValueError, KeyError, OSError):
                damaged.append(f"{found[0]}: not a readable index")
                continue
            for shard in shards:
                path = f"{folder}/{shard}" if folder else shard
                files.append((path, cached_file(name, path, cache_dir)))
        for path, file in files:
            problem = "missing" if file is None else file_problem(file)
            if problem:
                (missing if file is None else damaged).append(path if file is None else f"{path}: {problem}")
    if damaged:
        return f"is damaged ({', '.join(damaged)})"
    if len(missing) == len(CATALOGUE[name].needs):
        return "is not cached"
    return f"is incomplete (missing {', '.join(missing)})" if missing else None


def file_problem(path: Path) -> str | None:
    """What is wrong with one cached file, or None. A JSON file must parse; a safetensors file must be as long as its
    header says; a blob named by its sha256 (or git's sha1, for small files) must have that digest, checked once and
    remembered by path, size and time."""
    target = path.resolve()
    if not target.is_file():
        return "missing (a link to nothing)"
    stat = target.stat()
    key, stamp = str(target), [stat.st_size, stat.st_mtime_ns]
    checked = read_checked()
    if checked.get(key) == stamp:
        return None
    if path.suffix == ".json":
        try:
            json.loads(target.read_bytes())
        except ValueError:
            return "not valid JSON"
    elif path.suffix == ".safetensors":
        problem = _safetensors_problem(target, stat.st_size)
        if problem:
            return problem
    if _HEX.fullmatch(target.name):
        if stat.st_size > 500e6:
            print(f"[course] checking {path.name} ({stat.st_size / 1e9:.1f} GB) once against its sha256 ...", flush=True)
        if (sha256_file(target) if len(target.name) == 64 else _git_sha1(target)) != target.name:
            return "contents changed (its digest differs from the name the hub gave it)"
        checked[key] = stamp
        write_checked(checked)
    return None


def _safetensors_problem(path: Path, size: int) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then the tensors' bytes."""
    with open(path, "rb") as file:
        head = file.read(8)
        if len(head) < 8:
            return f"truncated ({size:,} bytes)"
        length = int.from_bytes(head, "little")
        try:
            header = json.loads(file.read(length)) if length < 100e6 else None
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, AttributeError):
            return "not a safetensors file (its header does not parse)"
    expected = 8 + length + end
    return None if size == expected else f"{size:,} of {expected:,} bytes"


def _git_sha1(path: Path) -> str:
    """git's name for a file's contents: sha1 of "blob <size>\\0" and the bytes."""
    return cache.file_digest(path, hashlib.sha1(f"blob {path.stat().st_size}\0".encode()))


def is_cached(name: str, cache_dir: str | os.PathLike | None = None) -> bool:
    """True when the real weights of ``name`` are cached and intact (for ``ViT-B/32``: its archive, or its twin)."""
    if name in CLIP_TWINS:
        return openai_archive(name) is not None or is_cached(CLIP_TWINS[name], cache_dir)
    return name in CATALOGUE and real_problem(name, cache_dir) is None


# ---------------------------------------------------------------- fetching the real weights

# What each library loads, as huggingface_hub's (allow, ignore) patterns: fnmatch, "*" crosses "/".
FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # the repository's top level: config, processor and tokenizer files and safetensors weights (pytorch_model.bin,
    # tf_model.h5, flax_model.msgpack are the same weights again; onnx/ and other folders hold exports)
    "transformers": (("*.json", "*.txt", "*.safetensors"), ("*/*",)),
    # model_index.json and each component's folder (unet/, vae/, text_encoder/...); not the single-file checkpoints
    # at the top (v1-5-pruned*.safetensors, several GB each) nor the fp16 and non-EMA variants from_pretrained skips
    "diffusers": (("*.json", "*.txt", "*/*.safetensors"), ("*.fp16.*", "*.non_ema.*")),
}
# a repository from before safetensors: its weights as the pickle transformers reads with weights_only
FALLBACK_FILES = {"transformers": ("pytorch_model.bin",),
                  "diffusers": ("*/diffusion_pytorch_model.bin", "*/pytorch_model.bin")}


def download(name: str, cache_dir: str | os.PathLike | None = None) -> None:
    """Fetch what the course loads of ``name`` into the Hugging Face cache with huggingface_hub's own downloader. On
    any failure the files this call added are removed and the error is raised; its retry warnings are not printed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.file_download import repo_folder_name

    library = CATALOGUE[name].library
    storage = hf_cache_dir(cache_dir) / repo_folder_name(repo_id=name, repo_type="model")
    locks = hf_cache_dir(cache_dir) / ".locks" / storage.name
    before, locks_before = set(_tree(storage)), set(_tree(locks))
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        allow, ignore = FILES[library]
        where = dict(cache_dir=str(hf_cache_dir(cache_dir)), endpoint=_hub_endpoint())  # the address the probe asked
        snapshot_download(name, allow_patterns=list(allow), ignore_patterns=list(ignore), **where)
        if real_problem(name, cache_dir) is not None:  # no safetensors: the older weights file
            snapshot_download(name, allow_patterns=list(FALLBACK_FILES[library]), **where)
    except BaseException:
        _remove_added(storage, before)
        _remove_added(locks, locks_before)
        raise
    finally:
        logger.setLevel(level)


def _tree(folder: Path) -> list[Path]:
    return list(folder.rglob("*")) if folder.exists() else []


def _remove_added(storage: Path, before: set[Path]) -> None:
    """Remove what a failed download added under ``storage`` (all of it, if it was new)."""
    if not before:
        shutil.rmtree(storage, ignore_errors=True)
        return
    added = [p for p in _tree(storage) if p not in before]
    for path in sorted(added, key=lambda p: len(p.parts), reverse=True):  # files before their folders
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _remove_damaged(name: str, cache_dir) -> None:
    """Before downloading again: drop the cached files of ``name`` that fail :func:`file_problem`
    (the hub's downloader trusts a blob that is there)."""
    for group in CATALOGUE[name].needs:
        for path in group:
            file = cached_file(name, path, cache_dir)
            if file is not None and file_problem(file):
                file.resolve().unlink(missing_ok=True)
                file.unlink(missing_ok=True)


def openai_archive(name: str) -> Path | None:
    """openai's own archive for ``name`` in clip's cache when it is there with the sha256 its address names, else None."""
    url = clip_url(name)
    if url is None:
        return None
    path = clip_cache_dir() / os.path.basename(url)
    expected = url.split("/")[-2]
    if not path.is_file():
        return None
    checked, stat = read_checked(), path.stat()
    if checked.get(str(path)) != [stat.st_size, stat.st_mtime_ns]:
        if sha256_file(path) != expected:
            return None
        checked[str(path)] = [stat.st_size, stat.st_mtime_ns]
        write_checked(checked)
    return path


def download_openai_archive(name: str, timeout: float = PROBE_TIMEOUT_S) -> Path:
    """Fetch openai's archive for ``name`` into clip's cache, checking its sha256 before it is put in place. Raises on
    any failure, leaving nothing behind."""
    url = clip_url(name)
    if url is None:
        raise KeyError(f"openai clip has no model named {name!r}")
    target = clip_cache_dir() / os.path.basename(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.incomplete")
    digest = hashlib.sha256()
    try:
        from tqdm.auto import tqdm

        with urllib.request.urlopen(url, timeout=timeout) as source, open(scratch, "wb") as out:
            total = int(source.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(url)) as bar:
                for block in iter(lambda: source.read(1 << 20), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if digest.hexdigest() != url.split("/")[-2]:
            raise OSError(f"{os.path.basename(url)} arrived damaged (its sha256 differs from openai's)")
        scratch.replace(target)
    finally:
        scratch.unlink(missing_ok=True)
    return target


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
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True  # read at import time; later calls consult this one


@lru_cache(maxsize=1)
def hub_status() -> HubStatus:
    """Ask the hub once per process, waiting at most ``PROBE_TIMEOUT_S`` in all (in a daemon thread, so even a hanging
    DNS lookup costs no more); when it does not answer, the process goes offline (:func:`go_offline`)."""
    start = time.perf_counter()
    if _flag("HF_HUB_OFFLINE"):
        go_offline()  # the variable may have been set after huggingface_hub read it
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


# ---------------------------------------------------------------- the decision

def resolve(name: str, *, quiet: bool = False, cache_dir: str | os.PathLike | None = None) -> Resolved:
    """Decide between the real checkpoint ``name`` and its stand-in (see the module docstring); print a one-line banner."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"resolve() expects a checkpoint name such as 'google/vit-base-patch16-224', got {name!r}")
    if name not in CATALOGUE and name not in standins.STANDINS:
        known = ", ".join(sorted(CATALOGUE))
        raise KeyError(f"{name!r} is not a checkpoint the course uses; known: {known}")
    resolved = _decide(name, cache_dir)
    if not quiet:
        print(resolved.banner, flush=True)
    return resolved


def _decide(name: str, cache_dir) -> Resolved:
    if _flag("COURSE_FORCE_STANDINS"):
        return _standin(name, "COURSE_FORCE_STANDINS is set")
    if name in CLIP_TWINS:
        return _decide_openai_clip(name, cache_dir)
    if name not in CATALOGUE:  # a name only a stand-in is registered for
        return _standin(name, "the course's own checkpoint")
    status = hub_status()  # first: offline must mean offline, cached weights or not
    problem = real_problem(name, cache_dir)
    if problem is None and status.online:
        return _real(name, name, "in the local cache")
    if problem is None:  # offline: hand over the cached folder itself, so no library so much as asks the hub
        return _real(name, str(snapshot(name, cache_dir)), f"in the local cache; {_offline(status)}")
    if not status.online:
        damaged = "" if problem == "is not cached" else f"; the cached copy {problem}"
        return _standin(name, f"{_offline(status)}{damaged}")
    if problem != "is not cached":
        print(f"[course] the cached copy of {name} {problem}; downloading it again", flush=True)
        _remove_damaged(name, cache_dir)
    try:
        download(name, cache_dir)
    except Exception as error:  # noqa: BLE001 - any failure: one line, and the stand-in
        return _standin(name, f"the hub answered, but the download failed: {_short(error)}; nothing was kept")
    problem = real_problem(name, cache_dir)
    if problem is not None:
        return _standin(name, f"the hub answered, but the downloaded copy {problem}")
    return _real(name, name, "downloaded from the hub")


def _offline(status: HubStatus) -> str:
    return f"offline: {status.reason}"


def _real(name: str, path: str, reason: str) -> Resolved:
    return Resolved(name, path, True, reason, trained=not rehearsing())


def _decide_openai_clip(name: str, cache_dir) -> Resolved:
    """openai's ``ViT-B/32`` is real when its transformers twin is: openai's own archive when it can be had, otherwise
    the twin's weights converted (openai's download addresses answer 404 since October 2025: openai/CLIP issue 516)."""
    twin = _decide(CLIP_TWINS[name], cache_dir)
    if not twin.real:
        return _standin(name, f"as its twin {twin.name}: {twin.reason}")
    archive = openai_archive(name)
    if archive is not None:
        return _real(name, str(archive), "openai's archive, in the local cache")
    why = "openai's archive is not cached and the hub is offline"
    if hub_status().online:
        try:
            return _real(name, str(download_openai_archive(name)), "openai's archive, downloaded")
        except Exception as error:  # noqa: BLE001 - then the twin's weights, converted
            why = f"openai's download failed: {_short(error)}"
    return _real(name, str(converted_clip_archive(name, cache_dir)),
                 f"{twin.name}'s weights from the local cache, converted for clip.load; {why}")


def converted_clip_archive(name: str, cache_dir=None) -> Path:
    """A ``clip.load``-able archive of ``name`` built from its transformers twin's safetensors, kept in the course cache
    with a manifest; rebuilt when the twin changes."""
    from course_utils.interop.clip_formats import save_transformers_for_clip

    twin = CLIP_TWINS[name]
    weights = cached_file(twin, "model.safetensors", cache_dir) or cached_file(twin, "model.safetensors.index.json", cache_dir)
    if weights is None:
        raise CheckpointUnavailable(f"{twin} is cached without safetensors weights, so it cannot be converted for clip.load")
    source = weights.resolve().name[:16]  # the blob's digest: a new download gives a new version
    folder = converted_clip_dir(name)
    if folder_problem(folder, source) == "is not built":
        print(f"[course] converting {twin} for clip.load (once) ...", flush=True)
    built = build_checked(folder, source, lambda out: save_transformers_for_clip(weights.parent, out / "model.pt"),
                          f"the converted archive of {name}")
    return built / "model.pt"


def converted_clip_dir(name: str) -> Path:
    """Where :func:`converted_clip_archive` keeps the archive it converts for ``name``."""
    return course_cache_dir() / "converted" / f"{name.replace('/', '-')}-from-{CLIP_TWINS[name].replace('/', '--')}"


def _standin(name: str, reason: str) -> Resolved:
    if name not in standins.STANDINS:
        chapter = CATALOGUE[name].chapter if name in CATALOGUE else "a later chapter"
        raise CheckpointUnavailable(
            f"{name} is not in the local cache and {reason.removeprefix('offline: ')}; "
            f"the course has no stand-in for it yet (chapter {chapter} adds one). "
            "Run it where the hub can be reached to download the real weights.")
    folder = build_standin(name)
    entry = standins.STANDINS[name].entry
    return Resolved(name, str(folder / entry if entry else folder), False, reason)
