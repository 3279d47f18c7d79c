"""A rehearsal of the real-weights path: ``python -m course_utils rehearse`` (README: "Rehearsing the real path").

It lays out a local Hugging Face cache holding every checkpoint of the catalogue as the hub serves it (the published
JSON files, tokenizers, in the hub's ``blobs/``, ``snapshots/<commit>/``, ``refs/main`` layout), with random weights,
at reduced widths unless ``--full``; then it runs every lecture and solution notebook against it with the network
unreachable and without ``COURSE_FORCE_STANDINS``, and fails on a cell that raises, on a cached checkpoint a notebook
got as a stand-in, and on any retry the Hugging Face libraries print. ``COURSE_REHEARSAL=1`` makes
``Resolved.trained`` False, so the asserts about what trained weights predict are skipped, visibly."""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from course_utils.paths import course_cache_dir
from course_utils.weights import resolver

PUBLISHED = Path(__file__).parent / "published"
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("notebooks", "solutions")
# what the Hugging Face libraries print when they try a network that is not there: offline must be quiet
RETRY_WORDS = ("Retrying in", "Trying to resume", "retrying", "reach the Hub", "connect to the Hub")

# ---------------------------------------------------------------- reduced widths, same interfaces

_VIT_SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
_TEXT_768 = dict(num_hidden_layers=1, intermediate_size=768)  # 768-wide text states, as SD's UNet reads them
# openai's clip.model.build_model gives each tower width // 64 heads: keep widths multiples of 64
_CLIP_TOWER = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=1, num_attention_heads=1)

# file inside a repository -> the keys the reduced variant changes in it
REDUCED: dict[str, dict[str, dict]] = {
    "google/vit-base-patch16-224": {"config.json": _VIT_SMALL},
    "facebook/deit-base-patch16-224": {"config.json": _VIT_SMALL},
    "microsoft/beit-base-patch16-224": {"config.json": _VIT_SMALL},
    # four stages of one block: 224 px / patch 4 = 56 = 8 windows of 7, then 28, 14, 7 (hidden = 16 x 2^3)
    "microsoft/swin-base-patch4-window7-224": {"config.json": dict(embed_dim=16, depths=[1, 1, 1, 1],
                                                                   num_heads=[1, 1, 1, 1], hidden_size=128)},
    "facebook/convnext-tiny-224": {"config.json": dict(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1])},
    "openai/clip-vit-base-patch32": {"config.json": dict(text_config=_CLIP_TOWER, vision_config=_CLIP_TOWER)},
    "stable-diffusion-v1-5/stable-diffusion-v1-5": {
        # four blocks as published (three downsamplings: 64 x 64 latents for 512 px), narrower
        "unet/config.json": dict(block_out_channels=[32, 32, 64, 64], layers_per_block=1),
        "vae/config.json": dict(block_out_channels=[32, 32, 32, 32], layers_per_block=1),
        "text_encoder/config.json": _TEXT_768,
        # the published file also carries the legacy vision_config_dict / text_config_dict, which win: reduce both
        "safety_checker/config.json": {key: tower for key, tower in [
            ("vision_config", _CLIP_TOWER), ("vision_config_dict", _CLIP_TOWER),
            ("text_config", _TEXT_768), ("text_config_dict", _TEXT_768)]},
    },
}


# ---------------------------------------------------------------- the published files

def published_files(name: str) -> dict[str, dict]:
    """The small JSON files of the real repository ``name`` as published (path -> parsed JSON), ImageNet's 1,000 labels
    filled in."""
    folder = PUBLISHED / name.replace("/", "--")
    if not folder.is_dir():
        raise FileNotFoundError(f"no published files for {name} in {folder}")
    files = {p.relative_to(folder).as_posix(): json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))}
    config = files.get("config.json", {})
    if config.get("architectures", [""])[0].endswith("ForImageClassification"):
        labels = json.loads((PUBLISHED / "imagenet-1k-labels.json").read_text())
        config["id2label"] = {str(i): label for i, label in enumerate(labels)}
        config["label2id"] = {label: i for i, label in enumerate(labels)}
    return files


def _merge(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied, nested dicts merged; a sub-config the file leaves null stays null."""
    out = dict(base)
    for key, value in changes.items():
        if not isinstance(value, dict):
            out[key] = value
        elif isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
    return out


def repository(name: str, full: bool, scratch: Path) -> dict[str, bytes]:
    """Every file of the rehearsal's copy of ``name`` (path -> bytes): the published JSON files (reduced widths unless
    ``full``), tokenizer vocabularies, and random weights that fit the configuration."""
    files = published_files(name)
    if not full:
        files = {path: _merge(content, REDUCED.get(name, {}).get(path, {})) for path, content in files.items()}
    out = {path: (json.dumps(content, indent=2, sort_keys=True) + "\n").encode() for path, content in files.items()}
    folder = scratch / name.replace("/", "--")
    folder.mkdir(parents=True)
    for path, data in out.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    library = resolver.CATALOGUE[name].library
    if library == "diffusers":
        _diffusers_weights(folder, out)
    else:
        _transformers_weights(name, folder, out)
    return out


def _tokenizer_files(folder: Path, out: dict[str, bytes], prefix: str = "", with_json: bool = False) -> None:
    """vocab.json and merges.txt (and the fast tokenizer.json) from the ``clip`` package's own BPE vocabulary:
    openai's, the same one the hub's CLIP tokenizers hold."""
    from course_utils.interop.clip_formats import clip_tokenizer, write_clip_vocabulary

    saved = folder / ".tokenizer"
    write_clip_vocabulary(saved)
    if with_json:
        clip_tokenizer().save_pretrained(saved)
    for file in ("vocab.json", "merges.txt") + (("tokenizer.json",) if with_json else ()):
        out[prefix + file] = (saved / file).read_bytes()
    shutil.rmtree(saved)


def _save_weights(model, folder: Path, out: dict[str, bytes], prefix: str = "") -> None:
    """``model``'s weights, saved by its library (model.safetensors, diffusion_pytorch_model.safetensors), into ``out``."""
    model.save_pretrained(folder / ".weights", safe_serialization=True)
    out.update({prefix + file.name: file.read_bytes() for file in (folder / ".weights").glob("*.safetensors")})
    shutil.rmtree(folder / ".weights")


def _transformers_weights(name: str, folder: Path, out: dict[str, bytes]) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForImageClassification, CLIPModel

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(folder)
    if config.model_type == "clip":
        model = CLIPModel(config)
        # the hub's weights are openai's half-precision ones stored as float32: make the random ones so too,
        # as clip.load rounds to half precision and lecture 05 compares the two libraries to 2e-3
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.half().float())
        _tokenizer_files(folder, out, with_json=True)
    else:
        model = AutoModelForImageClassification.from_config(config)
    _save_weights(model, folder, out)


def _diffusers_weights(folder: Path, out: dict[str, bytes]) -> None:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    read = lambda path: json.loads(out[path])  # noqa: E731
    _save_weights(UNet2DConditionModel.from_config(read("unet/config.json")), folder, out, "unet/")
    _save_weights(AutoencoderKL.from_config(read("vae/config.json")), folder, out, "vae/")
    _save_weights(CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")), folder, out, "text_encoder/")
    _save_weights(StableDiffusionSafetyChecker(CLIPConfig.from_pretrained(folder / "safety_checker")), folder, out,
                  "safety_checker/")
    _tokenizer_files(folder, out, prefix="tokenizer/")


# ---------------------------------------------------------------- the hub's cache layout

def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_out(name: str, files: dict[str, bytes], cache: Path) -> Path:
    """Write ``files`` as the hub's cache holds a repository: ``blobs/<digest>`` (sha256 for weights, git's sha1 for the
    rest), ``snapshots/<commit>/<path>`` linking to them, and ``refs/main`` naming the commit."""
    root = cache / ("models--" + name.replace("/", "--"))
    commit = hashlib.sha1(f"course rehearsal of {name}".encode()).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    snapshot = root / "snapshots" / commit
    for path, data in sorted(files.items()):
        lfs = path.endswith((".safetensors", ".bin")) or len(data) > 10_000_000
        blob = root / "blobs" / (hashlib.sha256(data).hexdigest() if lfs else _git_blob_sha1(data))
        blob.write_bytes(data)
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def build_cache(cache: Path, full: bool = False, names: list[str] | None = None) -> dict[str, int]:
    """Lay out the rehearsal's copy of every Hugging Face checkpoint of the catalogue under ``cache``; returns each one's
    bytes. ``ViT-B/32`` gets no archive: as on a student's machine today, it is converted from its transformers twin."""
    from tqdm.auto import tqdm

    names = names or [n for n, c in resolver.CATALOGUE.items() if c.library != "clip"]
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="rehearsal-build-") as scratch:
        for name in tqdm(names, desc=f"rehearsal cache ({'full size' if full else 'reduced widths'})"):
            files = repository(name, full, Path(scratch))
            lay_out(name, files, cache)
            sizes[name] = sum(len(d) for d in files.values())
            missing = resolver.real_problem(name, cache)
            if missing is not None:
                raise RuntimeError(f"the rehearsal's copy of {name} {missing}: the catalogue needs a file "
                                   "the published files do not provide")
    return sizes


# ---------------------------------------------------------------- running the notebooks

@dataclass
class Outcome:
    """One notebook's run against the rehearsal cache."""

    path: str
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    real: list[str] = field(default_factory=list)  # the checkpoints it resolved to real weights
    slowest: list[tuple[int, float]] = field(default_factory=list)  # (cell, seconds) of its three slowest cells

    @property
    def ok(self) -> bool:
        return not self.problems


@contextmanager
def unreachable_port():
    """A local port bound but never listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def kernel_environment(cache: Path, port: int, course_cache: Path) -> dict[str, str]:
    """The environment of a classroom that ran ``prepare``, then lost the network: the hub and every other address refuse
    connections, and nothing says offline or stand-ins. ``course_cache`` gets stand-ins and converted archives; its
    ``trained/`` links to the caller's, so live trainings already run are not run again."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"COURSE_FORCE_STANDINS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                        "NO_PROXY", "no_proxy", "MPLBACKEND"}}
    dead = f"http://127.0.0.1:{port}"
    env.update(HF_HUB_CACHE=str(cache), HF_ENDPOINT=dead, COURSE_REHEARSAL="1", PYTHONWARNINGS="ignore::DeprecationWarning",
               http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead,
               COURSE_CLIP_CACHE=str(cache.parent / "clip"), COURSE_UTILS_CACHE=str(course_cache))
    trained = course_cache / "trained"
    if not trained.exists():
        shared = course_cache_dir() / "trained"
        shared.mkdir(parents=True, exist_ok=True)
        course_cache.mkdir(parents=True, exist_ok=True)
        trained.symlink_to(shared, target_is_directory=True)
    return env


def run_notebook(path: Path, env: dict[str, str], timeout: int = 900, save: Path | None = None,
                 reached_only: bool = False) -> Outcome:
    """Execute ``path`` in a kernel with ``env`` (never writing it; with ``save``, a copy into that folder); report what
    went wrong. With ``reached_only``, only the cells the real path reaches run (``reached_cells``)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    outcome = Outcome(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
    notebook = nbformat.read(path, as_version=4)
    if reached_only:
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        reached = reached_cells([cell.source for cell in code])
        for i, cell in enumerate(code):
            if i not in reached:
                cell.source = "# not rehearsed: this cell neither resolves a checkpoint nor touches what one made"
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute(env=env)
    except CellExecutionError as error:
        index = next((i for i, c in enumerate(notebook.cells)
                      if any(o.get("output_type") == "error" for o in c.get("outputs", []))), "?")
        outcome.problems.append(f"cell {index} raised {error.ename}: {error.evalue}"[:400])
    except CellTimeoutError as error:
        outcome.problems.append(f"a cell ran past {timeout} s: {str(error).splitlines()[0]}")
    outcome.seconds = time.perf_counter() - start
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, save / f"{path.parent.name}-{path.name}")
    outcome.slowest = sorted(((i, _seconds(c)) for i, c in enumerate(notebook.cells) if c.cell_type == "code"),
                             key=lambda pair: -pair[1])[:3]
    text = "\n".join(_text(output) for cell in notebook.cells for output in cell.get("outputs", []))
    for line in text.splitlines():
        if line.startswith("[course] ") and ": real weights (" in line:
            outcome.real.append(line.split()[1].rstrip(":"))
        elif line.startswith("[course] ") and ": stand-in, " in line:
            name = line.split()[1].rstrip(":")
            if name in resolver.CATALOGUE:
                outcome.problems.append(f"got the stand-in for {name} although the cache holds it: {line}")
        if any(word in line for word in RETRY_WORDS):
            outcome.problems.append(f"printed a retry or a failed connection: {line.strip()[:200]}")
    return outcome


def _names(source: str) -> tuple[set[str], set[str]] | None:
    """The global names a cell binds (assigns, imports, defines, or changes an attribute or item of) and those it reads
    before binding them; None when it does not parse."""
    import ast
    import builtins

    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # IPython magics
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    stored = lambda tree: {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}  # noqa: E731
    bound, read = set(), set()

    def simple(statement) -> None:  # one statement without a body of statements, or a function or class
        here, loads, local = set(), set(), set()  # local: comprehension variables, arguments, a function's own names
        for node in ast.walk(statement):
            if isinstance(node, ast.comprehension):
                local |= stored(node.target)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                local |= {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
                local |= set().union(*map(stored, node.body)) if isinstance(node.body, list) else set()
            if isinstance(node, ast.Name):
                (loads if isinstance(node.ctx, ast.Load) else here).add(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                here |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                here.add(node.name)
            elif isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, ast.Store):
                while isinstance(node, (ast.Attribute, ast.Subscript)):
                    node = node.value
                if isinstance(node, ast.Name):
                    here.add(node.id)
        read.update(loads - bound - local)
        bound.update(here)

    def block(statements) -> None:  # in order; an if, for, while, with or try: its header, then each of its bodies
        for statement in statements:
            bodies = [getattr(statement, key) for key in ("body", "orelse", "finalbody") if hasattr(statement, key)]
            bodies += [handler.body for handler in getattr(statement, "handlers", [])]
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or not bodies:
                simple(statement)
                continue
            for key in ("test", "iter", "target", "items", "subject"):
                if hasattr(statement, key):
                    simple(ast.Expr(ast.Tuple(getattr(statement, key), ast.Load())) if key == "items"
                           else ast.Expr(getattr(statement, key)))
            for body in bodies:
                block(body)

    block(tree.body)
    return bound, read - set(dir(builtins))


def reached_cells(sources: list[str]) -> set[int]:
    """The code cells (indices into ``sources``) the real path reaches: those that resolve a checkpoint, those after them
    that read a name such a cell bound last, and every cell that last bound a name one of these reads, and so on.

    The other cells run the same on both paths (nbval runs them on the stand-in path), so the rehearsal skips them. Names
    only: a cell that changes an object in place without rebinding it is not followed (the course's cells that do, the
    attention recorders, undo it as they end). A cell that does not parse is always run."""
    names = [_names(source) for source in sources]

    def binder(name: str, i: int) -> int | None:  # the last cell before i that bound ``name``
        return next((j for j in range(i - 1, -1, -1) if names[j] is not None and name in names[j][0]), None)

    reached: set[int] = set()
    for i, source in enumerate(sources):
        if names[i] is None or "resolve(" in source or any(binder(n, i) in reached for n in names[i][1]):
            reached.add(i)
    todo = list(reached)
    while todo:
        i = todo.pop()
        for name in names[i][1] if names[i] is not None else ():
            j = binder(name, i)
            if j is not None and j not in reached:
                reached.add(j)
                todo.append(j)
    return reached


def _seconds(cell) -> float:
    """How long a cell ran, from the timestamps nbclient records in its metadata."""
    from datetime import datetime

    stamps = cell.get("metadata", {}).get("execution", {})
    try:
        start, end = (datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                      for k in ("iopub.execute_input", "shell.execute_reply"))
    except (KeyError, ValueError):
        return 0.0
    return round((end - start).total_seconds(), 1)


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", []))
    return output.get("data", {}).get("text/plain", "")


def notebooks(only: list[str] | None = None, real_only: bool = False) -> list[Path]:
    """Every lecture and solution notebook, or those whose path contains one of ``only``; with ``real_only``, only those
    that resolve a real checkpoint."""
    paths = [p for folder in NOTEBOOKS for p in sorted((ROOT / folder).glob("*.ipynb"))]
    paths = [p for p in paths if not only or any(o in str(p.relative_to(ROOT)) for o in only)]
    return [p for p in paths if not real_only or resolves(p)]


def resolves(path: Path) -> bool:
    """Whether a notebook's code asks the resolver for a checkpoint: it has a real-weights branch."""
    cells = json.loads(path.read_text())["cells"]
    return any("resolve(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


def rehearse(full: bool = False, hf_cache: Path | None = None, only: list[str] | None = None,
             course_cache: Path | None = None, keep: Path | None = None, timeout: int = 900,
             real_only: bool = False, save: Path | None = None, jobs: int = 1) -> int:
    """Build the cache (unless ``hf_cache`` is given), run the notebooks (``jobs`` at a time), print a table; 0 when
    all passed."""
    work = Path(tempfile.mkdtemp(prefix="vit-course-rehearsal-")) if keep is None else keep
    try:
        cache = hf_cache or work / "hub"
        if hf_cache is None:
            start = time.perf_counter()
            sizes = build_cache(cache, full=full)
            print(f"[rehearse] laid out {len(sizes)} checkpoints ({sum(sizes.values()) / 1e9:.2f} GB, "
                  f"{'published sizes' if full else 'reduced widths'}) in {time.perf_counter() - start:.0f} s at {cache}",
                  flush=True)
        else:
            print(f"[rehearse] using the cache at {cache}", flush=True)
        paths = notebooks(only, real_only)
        outcomes = {}  # path -> Outcome
        with unreachable_port() as port:
            env = kernel_environment(Path(cache), port, course_cache or work / "course")
            print(f"[rehearse] {len(paths)} notebooks, {min(jobs, len(paths))} at a time ...", flush=True)
            # each notebook runs in its own kernel, so several can run at once: one process each (spawned, so that no
            # thread state of this process is copied into them)
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context) as pool:
                biggest_first = sorted(paths, key=lambda p: -p.stat().st_size)  # a rough guess at the longest first
                running = {pool.submit(run_notebook, path, env, timeout, save, real_only): path for path in biggest_first}
                for done in concurrent.futures.as_completed(running):
                    outcome = outcomes[running[done]] = done.result()
                    verdict = "ok" if outcome.ok else "FAILED: " + "; ".join(outcome.problems)
                    slowest = ", ".join(f"cell {i} {t:.0f} s" for i, t in outcome.slowest)
                    print(f"[rehearse] {outcome.path}: {outcome.seconds:.0f} s (slowest: {slowest}), real: "
                          f"{', '.join(sorted(set(outcome.real))) or '-'}; {verdict}", flush=True)
        print(summary([outcomes[p] for p in paths]))  # in the notebooks' order
        return 0 if all(o.ok for o in outcomes.values()) else 1
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def summary(outcomes: list[Outcome]) -> str:
    width = max((len(o.path) for o in outcomes), default=10)
    lines = [f"{'notebook':<{width}}  {'time':>7}  result"]
    lines += [f"{o.path:<{width}}  {o.seconds:>6.0f}s  {'ok' if o.ok else 'FAILED'}" for o in outcomes]
    failed = [o for o in outcomes if not o.ok]
    lines.append(f"rehearsal: {len(outcomes) - len(failed)} of {len(outcomes)} notebooks passed on the real path"
                 + (f"; failed: {', '.join(o.path for o in failed)}" if failed else ""))
    return "\n".join(lines)


def run(args) -> int:
    """``python -m course_utils rehearse [--full] [--hf-cache DIR] [--only TEXT] [--real-only] ...``"""
    if args.hf_cache is not None and not args.hf_cache.is_dir():
        print(f"rehearse: --hf-cache {args.hf_cache} is not a folder", file=sys.stderr)
        return 2
    if not notebooks(args.only, args.real_only):
        print(f"rehearse: no notebook matches {args.only}", file=sys.stderr)
        return 2
    return rehearse(full=args.full, hf_cache=args.hf_cache, only=args.only, course_cache=args.course_cache,
                    keep=args.keep, timeout=args.timeout, real_only=args.real_only, save=args.save, jobs=args.jobs)
