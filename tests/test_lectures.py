"""What every lecture promises a student and an instructor, read from the notebooks as committed.

A lecture opens with what you will learn and a measured run time, ends with a summary and a link to
its exercise, carries slide metadata (a slide per section, fragments), shows no wall of warnings,
and its explorers leave a picture behind for viewers without widgets. The decks export.
"""
import re
from pathlib import Path

import nbformat
import pytest

from course_utils.teaching.slides import WIDGET_VIEW, export_slides

ROOT = Path(__file__).resolve().parent.parent
LECTURES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SLIDE_TYPES = {"slide", "subslide", "fragment", "-", "skip", "notes"}
# each lecture's exercise notebooks (00 is the setup check; 04's hands-on is the first half of e10)
EXERCISES = {"01": ["01_attention"], "02": ["02_transformer_block"], "03": ["03_vit", "03b_debug_vit"], "04": ["04_image_processor", "e10_transformers"],
             "05": ["05_clip", "e10_transformers"], "06": ["06_diffusion"], "07": ["07_stable_diffusion"]}
# where the explorers live: the issue asks for attention (01 and 03), diffusion (06), guidance (07)
EXPLORERS = {"01": "attention_explorer", "03": "attention_explorer", "06": "diffusion_explorer",
             "07": "guidance_explorer"}


def read(path):
    return nbformat.read(path, as_version=4)


def slide_type(cell):
    return cell.metadata.get("slideshow", {}).get("slide_type")


@pytest.fixture(params=LECTURES, ids=lambda p: p.stem)
def lecture(request):
    return request.param, read(request.param)


def test_there_are_lectures():
    assert len(LECTURES) >= 8, [p.name for p in LECTURES]


def test_opens_with_what_you_will_learn_and_a_measured_run_time(lecture):
    path, nb = lecture
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{path.name}: no title cell"
    assert "> **You will learn**" in first.source, f"{path.name}: no '> **You will learn**' box in the first cell"
    run_time = re.search(r"> \*\*Run time[:*]*\**(.{0,120})", first.source, re.S)
    assert run_time, f"{path.name}: no '**Run time:**' line in the first cell's box"
    assert re.search(r"\d+(\.\d+)? (seconds|s|minutes?|min)\b", run_time.group(1)), (
        f"{path.name}: the run time should be a measured duration, got {run_time.group(1)!r}")


def test_ends_with_a_summary_and_links_to_its_exercise(lecture):
    path, nb = lecture
    tail = "\n".join(c.source for c in nb.cells[-3:] if c.cell_type == "markdown")
    assert "## Summary" in tail, f"{path.name}: no '## Summary' in its last cells"
    number = path.stem[:2]
    links = re.findall(r"\]\((\.\./exercises/[^)]+\.ipynb|\d\d_[^)]+\.ipynb)\)", tail)
    assert links, f"{path.name}: its last cells link to no exercise or next lecture"
    for link in links:
        assert (path.parent / link).resolve().is_file(), f"{path.name}: broken link {link}"
    for name in EXERCISES.get(number, []):
        assert f"../exercises/{name}.ipynb" in links, f"{path.name}: no link to exercises/{name}.ipynb"


def test_slide_metadata_a_slide_per_section_and_fragments(lecture):
    path, nb = lecture
    types = [slide_type(c) for c in nb.cells]
    assert types[0] == "slide", f"{path.name}: the title cell must open a slide"
    assert set(filter(None, types)) <= SLIDE_TYPES, f"{path.name}: unknown slide types {set(types) - SLIDE_TYPES}"
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown" and c.source.startswith("## "):
            assert types[i] in {"slide", "subslide"}, f"{path.name}, cell {i} ({c.source[:40]!r}): a section opens a slide"
    sections = sum(t == "slide" for t in types)
    assert sections >= 5, f"{path.name}: only {sections} slides"
    if path.stem[:2] != "00":  # the setup notebook has no derivation to unfold
        assert "fragment" in types, f"{path.name}: no fragments"


SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", LECTURES + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_wall_of_warnings(path):
    nb = read(path)
    for i, c in enumerate(nb.cells):
        for out in c.get("outputs", []):
            text = out.get("text", "") if out.output_type == "stream" else ""
            assert not (out.output_type == "stream" and out.name == "stderr" and "Warning" in text), (
                f"{path.name}, cell {i}: a warning reaches the student: {text[:200]!r}")
            assert out.output_type != "error", f"{path.name}, cell {i}: saved with an error"


@pytest.mark.parametrize("number,name", sorted(EXPLORERS.items()))
def test_explorers_leave_a_picture_for_viewers_without_widgets(number, name):
    path = next(p for p in LECTURES if p.stem.startswith(number))
    cells = [c for c in read(path).cells if c.cell_type == "code" and f"{name}(" in c.source]
    assert cells, f"{path.name}: no {name}"
    outputs = [o for c in cells for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
    assert outputs, f"{path.name}: the {name} cell shows no widget"
    for out in outputs:
        assert out.data["image/png"] and "explorer" in out.data["text/plain"], (
            f"{path.name}: the {name} has no picture or description for viewers without widgets")


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_every_lecture_exports_as_a_slide_deck(tmp_path):
    decks = export_slides(tmp_path, ROOT / "notebooks", reveal_prefix="reveal.js", progress=False)
    assert [d.name for d in decks] == [f"{p.stem}.slides.html" for p in LECTURES]
    for deck, path in zip(decks, LECTURES):
        html = deck.read_text(encoding="utf-8")
        nb = read(path)
        slides = sum(slide_type(c) in {"slide", "subslide"} for c in nb.cells)
        assert html.count("<section") >= slides, f"{deck.name}: {html.count('<section')} sections for {slides} slides"
        assert '"reveal.js/dist/reveal.js"' in html, "--reveal-prefix not honoured"
        assert WIDGET_VIEW not in html, f"{deck.name}: a live widget in a static deck"
        pictures = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
        assert html.count("data:image/png;base64") >= pictures, f"{deck.name}: pictures missing"


def test_ends_with_further_reading_that_links_its_sources(lecture):
    path, nb = lecture
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Further reading"), (
        f"{path.name}: its last cell is not a '## Further reading' section")
    links = re.findall(r"\[([^\]]+)\]\(([^)\s]+)\)", last.source)
    assert len(links) >= 4, f"{path.name}: further reading lists {len(links)} links, expected at least 4"
    urls = [url for _, url in links]
    assert len(set(urls)) == len(urls), f"{path.name}: a link is listed twice"
    for text, url in links:
        assert re.fullmatch(r"https://[\w.-]+\.[a-z]{2,}(/\S*)?", url), f"{path.name}: not a web address: {url}"
        if "arxiv.org" in url:  # a paper: the abstract page, cited with its authors and year
            assert re.fullmatch(r"https://arxiv\.org/abs/\d{4}\.\d{4,5}", url), f"{path.name}: {url}"
            assert re.search(r"(19|20)\d\d", text), f"{path.name}: the paper at {url} is cited without its year"


def _exercise_tasks():
    """The names students write in the exercises: the def or class in each solution block."""
    names = set()
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in read(path).cells:
            if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
                names |= set(re.findall(r"^(?:def|class) (\w+)", cell.source, re.M))
    return names


def test_no_lecture_prints_the_source_of_an_exercise_task(lecture):
    path, nb = lecture
    tasks = _exercise_tasks()
    assert len(tasks) >= 17, sorted(tasks)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        shown = re.findall(r"getsource\(\s*([\w.]+)", cell.source)  # inspect.getsource(name or name.method)
        magic = re.findall(r"%(?:psource|pinfo2)\s+([\w.]+)|^\s*([\w.]+)\?\?\s*$", cell.source, re.M)  # IPython
        shown += [name for pair in magic for name in pair if name]
        for name in shown:
            answer = tasks & set(name.split("."))
            assert not answer, (f"{path.name} cell {index} prints the source of {sorted(answer)}, which an exercise "
                                "asks students to write: teach the idea, not the answer")


# A lecture shows its training step as code students read, run and change (chapters 03, 05, 07), and an exercise asks
# students to write that step: the lecture's cell stays runnable but opens collapsed, after a note naming the exercise,
# so that nobody reads the answer before writing it.
TRAINING_STEPS = {  # lecture -> (the function its collapsed cell defines, the exercise task it would answer)
    "03_vision_transformer.ipynb": ("vit_train_steps", "train_vit"),
    "05_clip.ipynb": ("clip_train_steps", "clip_train_step"),
    "07_stable_diffusion.ipynb": ("unet_train_steps", "denoising_loss"),
}


@pytest.mark.parametrize("name", sorted(TRAINING_STEPS))
def test_a_training_step_an_exercise_asks_for_opens_collapsed_after_a_note(name):
    function, task = TRAINING_STEPS[name]
    assert task in _exercise_tasks(), f"{task} is no longer an exercise task: update TRAINING_STEPS"
    cells = read(ROOT / "notebooks" / name).cells
    index = next(i for i, c in enumerate(cells) if c.cell_type == "code" and f"def {function}(" in c.source)
    assert cells[index].metadata.get("jupyter", {}).get("source_hidden") is True, (
        f"{name}: the cell defining {function} answers the exercise task {task}; it must open collapsed")
    note = next(c.source for c in reversed(cells[:index]) if c.cell_type == "markdown")
    assert "Exercise first" in note and f"`{task}`" in note, f"{name}: the note before {function} must name {task}"
