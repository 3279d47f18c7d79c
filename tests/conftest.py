"""Fixtures the tests share, the markers they carry, and the isolation every test gets.

Markers (``pytest -m``): ``notebook`` (an nbval cell of a lecture or solution, set here), ``browser``
(JupyterLab in Chromium, set here), ``slow`` (a test that trains, starts kernels or runs a notebook: seconds
to minutes; set in the test files). ``make test-fast`` runs the rest: the unit tests.
"""
import os
from pathlib import Path

import pytest

# The order the two pytest-xdist workers take the files in (make test: --dist loadfile --no-loadscope-reorder): the
# longest first, measured on 2 cores (2 min down to 30 s on one thread each), so that the two end together; then the
# rest in its usual order. (pytest-xdist would otherwise order them by their number of tests.)
LONGEST_FIRST = ("notebooks/06_diffusion.ipynb", "notebooks/07_stable_diffusion.ipynb", "tests/test_real_path.py",
                 "solutions/05_clip.ipynb", "tests/test_course_exercises.py", "tests/test_sd.py",
                 "notebooks/03_vision_transformer.ipynb", "tests/test_browser.py", "tests/test_checks_vit.py",
                 "tests/test_checks_sd.py", "solutions/07_stable_diffusion.ipynb", "tests/test_checker.py")
ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.slow)
        if path.name == "test_browser.py":
            item.add_marker(pytest.mark.browser)

    def rank(item):
        path = Path(str(item.fspath))
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a file, and among the rest, the order stays


@pytest.fixture(autouse=True)
def isolated_environment():
    """No test leaves the environment changed for the next: the resolver switches a process to offline
    mode (os.environ and huggingface_hub's constant) and remembers the hub's answer; all are restored."""
    saved = dict(os.environ)
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a dependency
        constants = None
    offline = constants.HF_HUB_OFFLINE if constants else None
    yield
    os.environ.clear()
    os.environ.update(saved)
    if constants is not None:
        constants.HF_HUB_OFFLINE = offline
    from course_utils.weights import resolver

    resolver.hub_status.cache_clear()


@pytest.fixture
def lay_out():
    """``lay_out(folder, cache, repo)``: the files of ``folder`` as the hub's cache holds repository ``repo``
    (blobs named by digest, snapshots/<commit>/ linking to them, refs/main), via the rehearsal's own lay_out."""
    from course_utils.weights.rehearse import lay_out as rehearsal_lay_out

    def put(folder: Path, cache: Path, repo: str) -> Path:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}
        return rehearsal_lay_out(repo, files, Path(cache))

    return put


@pytest.fixture(scope="session")
def rehearsal_hub():
    """The rehearsal's reduced-width cache of every catalogue checkpoint (about 10 s, 0.2 GB), laid out once in the course
    cache for all workers and tests, and again when the code that lays it out changes."""
    import hashlib

    from course_utils.paths import course_cache_dir
    from course_utils.weights import rehearse, resolver
    from course_utils.weights.cache import build_checked

    code = b"".join(Path(module.__file__).read_bytes() for module in (rehearse, resolver))
    folder = build_checked(course_cache_dir() / "rehearsal", hashlib.sha256(code).hexdigest()[:16],
                           lambda scratch: rehearse.build_cache(scratch / "hub"), "the rehearsal's cache")
    return folder / "hub"
