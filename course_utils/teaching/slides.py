"""Lecture notebooks as reveal.js slide decks: ``python -m course_utils slides`` (README: "Teaching with the course").

Every lecture carries slide metadata; RISE presents it live from JupyterLab with no network, and this module exports
static HTML decks with nbconvert's ``SlidesExporter``, one file per lecture, which load reveal.js 4.0.2 from unpkg.com
(``--reveal-prefix`` for another place) and need a network. In a deck, an explorer shows its picture.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ROOT = Path(__file__).resolve().parents[2]


def static_copy(nb):
    """A copy of ``nb`` without live widgets: outputs keep their picture and text, the widget view goes."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data and len(data) > 1:
                del data[WIDGET_VIEW]
    return nb


def export_slides(out: Path | str = ROOT / "slides", notebooks: Path | str = ROOT / "notebooks",
                  reveal_prefix: str | None = None, progress: bool = True) -> list[Path]:
    """Write ``out/NAME.slides.html`` for every lecture in ``notebooks``; return the paths."""
    import nbformat
    from nbconvert import SlidesExporter
    from tqdm.auto import tqdm

    lectures = sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb"))
    if not lectures:
        raise FileNotFoundError(f"no lecture notebooks (NN_name.ipynb) in {Path(notebooks).resolve()}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exporter = SlidesExporter()
    if reveal_prefix:
        exporter.reveal_url_prefix = reveal_prefix
    written = []
    for path in tqdm(lectures, desc="slide decks", disable=not progress):
        nb = static_copy(nbformat.read(path, as_version=4))
        html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        target = out / f"{path.stem}.slides.html"
        target.write_text(html, encoding="utf-8")
        written.append(target)
    return written


def run(args) -> int:
    """``python -m course_utils slides [--out DIR] [--notebooks DIR] [--reveal-prefix URL]``."""
    start = time.perf_counter()
    written = export_slides(args.out, args.notebooks, args.reveal_prefix)
    size = sum(p.stat().st_size for p in written) / 1e6
    print(f"{len(written)} slide decks, {size:.1f} MB, in {Path(args.out).resolve()} "
          f"({time.perf_counter() - start:.0f} s). Open one in a browser; press ? for reveal.js's keys.")
    return 0
