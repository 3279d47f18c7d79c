"""The environment report: is this machine ready for the course?

    python -m course_utils doctor        # in a terminal
    from course_utils.weights.doctor import doctor; doctor()   # in a notebook

Versions, the device, threads, whether the Hugging Face hub can be reached, and for each real
checkpoint the course uses: is it in the local cache, and which stand-in replaces it otherwise.
"""
from __future__ import annotations

import platform
import warnings
from dataclasses import dataclass, field
from importlib import metadata

from course_utils.device import default_threads, get_device
from course_utils.weights import resolver, standins

__all__ = ["Report", "doctor", "checkpoint_rows", "checkpoint_table", "PACKAGES"]

# (distribution name on PyPI, what the notebooks call it)
PACKAGES = [
    ("torch", "torch"), ("torchvision", "torchvision"), ("transformers", "transformers"),
    ("diffusers", "diffusers"), ("huggingface_hub", "huggingface_hub"), ("openai-clip", "clip"),
    ("safetensors", "safetensors"), ("einops", "einops"), ("numpy", "numpy"),
    ("matplotlib", "matplotlib"), ("scikit-learn", "sklearn"), ("scikit-image", "skimage"),
    ("tqdm", "tqdm"), ("jupyterlab", "jupyterlab"), ("ipywidgets", "ipywidgets"),
    ("jupyterlab-rise", "jupyterlab_rise"), ("nbval", "nbval"), ("setuptools", "setuptools"),
]


@dataclass
class Report:
    python: str
    platform: str
    versions: dict[str, str]          # distribution -> version, or "missing"
    device: str
    threads: int
    cores: int
    hub: resolver.HubStatus
    checkpoints: list[dict] = field(default_factory=list)  # one row per catalogued checkpoint
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        width = max(len(n) for n in self.versions)
        lines = [f"Python {self.python} on {self.platform}"]
        lines += [f"  {name:<{width}}  {version}" for name, version in self.versions.items()]
        lines += [f"device: {self.device}; torch threads: {self.threads} of {self.cores} cores",
                  f"hub: {'online' if self.hub.online else 'offline'} ({self.hub.reason})",
                  checkpoint_table(self.checkpoints), "problems: " + ("none" if self.ok else "")]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # IPython shows the report, not a dataclass repr
        printer.text(str(self))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def checkpoint_rows(online: bool, names: list[str] | None = None) -> list[dict]:
    """One row per checkpoint (``names``, default the whole catalogue): real, stand-in or missing."""
    rows = []
    for name in names or list(resolver.CATALOGUE):
        ckpt = resolver.CATALOGUE.get(name) or resolver.Checkpoint(name, "transformers", "-", "")
        try:
            cached = resolver.is_cached(ckpt.name)
            real = resolver.real_problem(ckpt.name) if ckpt.name in resolver.CATALOGUE and ckpt.needs else None
        except Exception as error:  # a broken cache must not break the report
            cached, note = False, f"cache unreadable: {error}"
        else:
            note = "" if real in (None, "is not cached") else f"the cached real copy {real}"
        registered = not cached and ckpt.name in standins.STANDINS
        problem = standins.standin_problem(ckpt.name) if registered else "is not registered"
        if cached:
            status = "real: in the local cache"
        elif online:
            status = "real: downloads when first resolved"
        elif not registered:
            status = f"unavailable offline (stand-in arrives with chapter {ckpt.chapter})"
        else:
            status = ("stand-in: built" if problem is None else
                      "stand-in: built on first use" if problem == "is not built" else
                      f"stand-in: rebuilt on first use (the cached copy {problem})")
        rows.append({"name": ckpt.name, "library": ckpt.library, "chapter": ckpt.chapter, "cached": cached,
                     "offline_ready": cached or problem is None,  # real in the cache, or a built stand-in
                     "status": status + (f"; {note}" if note else "")})
    return rows


def checkpoint_table(rows: list[dict]) -> str:
    """The "checkpoints:" table of the report, one line per row of :func:`checkpoint_rows`."""
    nw = max((len(r["name"]) for r in rows), default=0)
    return "\n".join(["checkpoints:"] + [f"  {r['name']:<{nw}}  ch {r['chapter']}  {r['status']}" for r in rows])


def doctor(print_report: bool = True) -> Report:
    """Collect (and by default print) the environment report."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        versions = {dist: _version(dist) for dist, _ in PACKAGES}
    problems = [f"{dist} is not installed (pip install -e . installs it)"
                for dist, v in versions.items() if v == "missing"]
    setuptools_major = versions["setuptools"].split(".")[0]
    if setuptools_major.isdigit() and int(setuptools_major) >= 81:
        problems.append("setuptools >= 81 removed pkg_resources, which openai clip imports: "
                        "pip install 'setuptools<81'")
    cores = default_threads()
    if torch.get_num_threads() > cores:
        problems.append(f"torch uses {torch.get_num_threads()} threads on {cores} cores: "
                        "call torch.set_num_threads(%d)" % cores)
    device = get_device()
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    status = resolver.hub_status()
    report = Report(
        python=platform.python_version(), platform=f"{platform.system()} {platform.machine()}",
        versions=versions, device=name, threads=torch.get_num_threads(), cores=cores,
        hub=status, checkpoints=checkpoint_rows(status.online), problems=problems)
    if print_report:
        print(report)
    return report


def run(args=None) -> int:
    """``python -m course_utils doctor``: 0 when the report finds no problem."""
    return 0 if doctor().ok else 1
