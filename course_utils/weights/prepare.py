"""Get a classroom ready to work offline: ``python -m course_utils prepare`` (for instructors).

    python -m course_utils prepare                      # as the network allows
    python -m course_utils prepare --offline            # build the stand-ins, even when online
    python -m course_utils prepare --only ViT-B/32      # some checkpoints only (repeatable)

Online (:func:`course_utils.weights.resolver.hub_status`) it downloads the real checkpoints of ``resolver.CATALOGUE``
(only the files their library loads, :data:`FILES`) and reports the disk each uses; offline it builds every stand-in
and reports the time each took. It first states the cost (README: "Preparing a classroom") and stops if the disk is
too small; it exits 0 when every checkpoint can be used offline (cached real weights or a built stand-in), 1 otherwise.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from course_utils.paths import course_cache_dir
from course_utils.weights import resolver, standins
from course_utils.weights.doctor import checkpoint_rows, checkpoint_table

__all__ = ["FILES", "ESTIMATES", "Step", "estimate", "download", "download_all", "build_all", "prepare", "run"]

# What each library loads (the download patterns live with the resolver, which downloads too)
FILES = resolver.FILES


@dataclass(frozen=True)
class Estimate:
    """What one checkpoint costs: the real one's download, and building its stand-in offline."""

    download_mb: float  # what FILES fetches: the float32 weights (4 bytes a parameter) and small files
    build_s: float      # building the stand-in on a 2-core laptop CPU, measured
    build_mb: float     # the stand-in's folder, measured


# Downloads: the model cards' parameter counts in float32 (SD 1.5: UNet, VAE, text encoder and the
# safety checker). Builds: measured with an empty cache on the course's 2-core machine (2026-11-25:
# 56 s and 59.5 MB for all eight; the CLIP and SD stand-ins are converted from committed weights).
ESTIMATES: dict[str, Estimate] = {
    "google/vit-base-patch16-224": Estimate(346, 14, 0.57),
    "microsoft/swin-base-patch4-window7-224": Estimate(352, 14, 0.39),
    "microsoft/beit-base-patch16-224": Estimate(349, 14, 0.57),
    "facebook/deit-base-patch16-224": Estimate(346, 8, 0.57),
    "facebook/convnext-tiny-224": Estimate(114, 5, 0.42),
    "openai/clip-vit-base-patch32": Estimate(605, 1, 17.2),
    "ViT-B/32": Estimate(338, 1, 13.6),
    "stable-diffusion-v1-5/stable-diffusion-v1-5": Estimate(5500, 1, 26.1),
}
BANDWIDTHS_MB_S = (10, 50)  # a slow and a fast classroom connection, for the time estimate
DISK_MARGIN = 1.2           # ask for 20% more free disk than the estimate


def estimate(names: list[str], online: bool) -> tuple[float, float, str]:
    """(seconds, megabytes, one line for people) for downloading (online) or building ``names``."""
    known = [ESTIMATES[n] for n in names if n in ESTIMATES]
    unknown = len(names) - len(known)
    extra = f" (plus {unknown} checkpoint(s) without an estimate)" if unknown else ""
    if online:
        mb = sum(e.download_mb for e in known)
        slow, fast = (mb / bw for bw in BANDWIDTHS_MB_S)
        return slow, mb, (f"about {_size(mb * 1e6)} to download{extra}: {_duration(fast)} at "
                          f"{BANDWIDTHS_MB_S[1]} MB/s, {_duration(slow)} at {BANDWIDTHS_MB_S[0]} MB/s")
    seconds, mb = sum(e.build_s for e in known), sum(e.build_mb for e in known)
    return seconds, mb, f"about {_duration(seconds)} on a 2-core laptop CPU and {_size(mb * 1e6)} of disk{extra}"


def free_disk(path: Path) -> int:
    """Free bytes on the disk that holds ``path`` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


@dataclass
class Step:
    """What prepare did for one checkpoint."""

    name: str
    ok: bool        # downloaded / built (or found intact); False: failed or nothing to do
    seconds: float
    note: str       # one line: what happened
    bytes: int = 0  # disk used by the downloaded checkpoint


# ---------------------------------------------------------------- online: the real checkpoints

def download(ckpt: resolver.Checkpoint) -> None:
    """Fetch ``ckpt``'s files (:func:`course_utils.weights.resolver.download`: huggingface_hub's own downloader,
    progress bars, nothing half-written left on failure). openai's ``ViT-B/32``: openai's archive
    when its address answers, else its transformers twin converted for ``clip.load``."""
    if ckpt.library != "clip":
        resolver.download(ckpt.name)
        return
    twin = resolver.CLIP_TWINS[ckpt.name]
    if not resolver.is_cached(twin):
        resolver.download(twin)
    if resolver.openai_archive(ckpt.name) is None:
        try:
            resolver.download_openai_archive(ckpt.name)
        except Exception as error:  # noqa: BLE001 - openai's addresses answer 404 since October 2025
            print(f"  openai's archive: {_one_line(error)}; converting {twin} instead", flush=True)
            resolver.converted_clip_archive(ckpt.name)


def location(ckpt: resolver.Checkpoint) -> Path:
    """Where ``ckpt``'s real weights live on disk: a folder of the Hugging Face cache, or clip's archive."""
    if ckpt.library == "clip":
        archive = resolver.openai_archive(ckpt.name)
        return archive if archive is not None else resolver.converted_clip_dir(ckpt.name)
    from huggingface_hub.file_download import repo_folder_name

    return resolver.hf_cache_dir() / repo_folder_name(repo_id=ckpt.name, repo_type="model")


def disk_use(path: Path) -> int:
    """Bytes on disk under ``path``, counting every file once (symbolic links, such as the
    Hugging Face cache's snapshots/ pointing into blobs/, are not counted again)."""
    if path.is_file():
        return path.stat().st_size
    seen, total = set(), 0
    for file in path.rglob("*"):
        stat = file.lstat()
        if file.is_symlink() or not file.is_file() or (stat.st_dev, stat.st_ino) in seen:
            continue
        seen.add((stat.st_dev, stat.st_ino))
        total += stat.st_size
    return total


def download_all(names: list[str]) -> list[Step]:
    """Download the real checkpoints ``names`` one after the other; a failure does not stop the rest."""
    steps = []
    for i, name in enumerate(names, 1):
        ckpt = resolver.CATALOGUE.get(name)
        if ckpt is None:
            print(f"[{i}/{len(names)}] {name}: a stand-in only, nothing to download")
            steps.append(Step(name, False, 0.0, "a stand-in only"))
            continue
        allow = FILES.get(ckpt.library, ((),))[0]
        print(f"[{i}/{len(names)}] {name} ({ckpt.library}"
              + (f": {', '.join(allow)}" if allow else "") + ")", flush=True)
        start = time.perf_counter()
        try:
            download(ckpt)
            if not resolver.is_cached(name):
                problem = resolver.real_problem(name) if ckpt.library != "clip" else "is missing"
                raise FileNotFoundError(f"the files came, but the copy {problem}")
        except Exception as error:  # noqa: BLE001 - report it and go on with the others
            seconds = time.perf_counter() - start
            print(f"  FAILED after {seconds:.1f} s: {_one_line(error)}")
            steps.append(Step(name, False, seconds, f"failed: {_one_line(error)}"))
            continue
        seconds, used = time.perf_counter() - start, disk_use(location(ckpt))
        print(f"  {_size(used)} on disk at {location(ckpt)} ({seconds:.1f} s)")
        steps.append(Step(name, True, seconds, "downloaded", used))
    done = [s for s in steps if s.ok]
    failed = [s.name for s in steps if not s.ok and s.note.startswith("failed")]
    print(f"downloaded {len(done)} of {len(names)} checkpoints: {_size(sum(s.bytes for s in done))} "
          "on disk in all" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return steps


# ---------------------------------------------------------------- offline: the stand-ins

def build_all(names: list[str]) -> list[Step]:
    """Build (or check) the stand-ins of ``names``, timing each; a failure does not stop the rest."""
    steps = []
    for i, name in enumerate(names, 1):
        if name not in standins.STANDINS:
            chapter = resolver.CATALOGUE[name].chapter
            print(f"[{i}/{len(names)}] {name}: no stand-in yet (chapter {chapter})")
            steps.append(Step(name, False, 0.0, f"no stand-in yet (chapter {chapter})"))
            continue
        print(f"[{i}/{len(names)}] {name}: stand-in, {standins.STANDINS[name].about}", flush=True)
        start = time.perf_counter()
        try:
            intact = standins.standin_built(name)
            folder = standins.build_standin(name)  # rebuilds, with a message, a damaged copy
        except Exception as error:  # noqa: BLE001 - report it and go on with the others
            seconds = time.perf_counter() - start
            print(f"  FAILED after {seconds:.1f} s: {_one_line(error)}")
            steps.append(Step(name, False, seconds, f"failed: {_one_line(error)}"))
            continue
        seconds = time.perf_counter() - start
        note = f"already built, checked in {seconds * 1000:.0f} ms" if intact else f"built in {seconds:.1f} s"
        steps.append(Step(name, True, seconds, note, disk_use(folder)))
        print(f"  {note}, {_size(steps[-1].bytes)}: {folder}")
    built = [s for s in steps if s.note.startswith("built")]
    print(f"built {len(built)} stand-in(s) in {sum(s.seconds for s in built):.1f} s; "
          f"{sum(s.note.startswith('already') for s in steps)} already built; "
          f"{sum(s.note.startswith('no stand-in') for s in steps)} without a stand-in yet; "
          f"{sum(s.note.startswith('failed') for s in steps)} failed")
    return steps


# ---------------------------------------------------------------- the command

def known_names() -> list[str]:
    """The catalogue's checkpoints, then any other name a stand-in is registered for."""
    return list(resolver.CATALOGUE) + [name for name in standins.STANDINS if name not in resolver.CATALOGUE]


def prepare(names: list[str] | None = None, offline: bool = False) -> int:
    """Download (online) or build (offline) ``names`` (default: all), print the checkpoint table
    and return 0 when every one of them can be used offline, 1 otherwise."""
    names = list(names or known_names())
    status = resolver.HubStatus(False, "--offline", 0.0) if offline else resolver.hub_status()
    target = resolver.hf_cache_dir() if status.online else course_cache_dir() / "standins"
    _, mb, plan = estimate(names, status.online)
    free = free_disk(target)
    if status.online:
        print(f"[course] prepare: {status.reason}; downloading {len(names)} checkpoint(s) into "
              f"{resolver.hf_cache_dir()} (openai clip: {resolver.clip_cache_dir()})")
    else:
        print(f"[course] prepare: offline ({status.reason}); building {len(names)} stand-in(s) in {target}")
    print(f"[course] prepare: {plan}; {_size(free)} free there")
    if free < mb * 1e6 * DISK_MARGIN:
        print(f"prepare: not enough disk: about {_size(mb * 1e6 * DISK_MARGIN)} needed (with a 20% margin), "
              f"{_size(free)} free at {target}. Free some space, or set HF_HOME / COURSE_UTILS_CACHE to a "
              "larger disk, and run prepare again.", file=sys.stderr)
        return 1
    start = time.perf_counter()
    steps = download_all(names) if status.online else build_all(names)
    seconds = time.perf_counter() - start
    rows = checkpoint_rows(online=False, names=names)  # what a classroom without the hub gets
    print(checkpoint_table(rows))
    missing = [r["name"] for r in rows if not r["offline_ready"]]
    real = sum(r["cached"] for r in rows)
    print(f"prepare: {len(rows) - len(missing)} of {len(rows)} checkpoint(s) ready for offline use "
          f"({real} real, {len(rows) - len(missing) - real} stand-in)"
          + (f"; missing: {', '.join(missing)}" if missing else ""))
    print(f"prepare: took {_duration(seconds)}, {_size(sum(s.bytes for s in steps))} on disk "
          f"(estimated: {plan})")
    return 1 if missing else 0


def run(args) -> int:
    """``python -m course_utils prepare [--offline] [--only NAME]...``"""
    names = list(dict.fromkeys(args.only or []))
    unknown = [name for name in names if name not in known_names()]
    if unknown:
        print(f"prepare: unknown checkpoint(s) {', '.join(map(repr, unknown))}; "
              f"known: {', '.join(known_names())}", file=sys.stderr)
        return 2
    return prepare(names, offline=args.offline)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:200]
