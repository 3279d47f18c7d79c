"""The course in a real browser: JupyterLab runs lecture 01, its explorer redraws, RISE shows slides.

Headless Chromium (Debian's, driven by Playwright) does what a student does: open the lecture in
JupyterLab, Run > Run All Cells, save; move the attention explorer's slider; open the lecture as a
Reveal.js slideshow (jupyterlab-rise) and step to the next slide; open another lecture without
running it and see its explorer's saved picture (no widget can live yet). Every check reads what the
browser produced: the notebook file JupyterLab saved, the explorer's <img>, the slide on screen.
Screenshots go to build/browser/. Skipped, with the reason, without Chromium or Playwright (see
tests/browser_helpers.py); COURSE_BROWSER_REQUIRED=1 makes that a failure.
"""
import importlib.util
import re
from types import SimpleNamespace

import nbformat
import pytest
from browser_helpers import (
    CHROMIUM_ARGS,
    NOTEBOOK_STATE_JS,
    SCREENSHOTS,
    JupyterLab,
    chromium_path,
    code_cell_errors,
    count_png,
    poll,
    scratch_course,
    sync_playwright,
)

pytestmark = pytest.mark.slow  # every test here starts kernels, servers or builds: seconds to minutes

LECTURE = "01_attention.ipynb"
RUN_TIMEOUT = 240  # s for Run All; the lecture takes 15-30 s on a 2-core CPU
VIEWPORT = {"width": 1400, "height": 900}
# the slide on screen: the innermost <section> reveal.js marks present (a slide, or a subslide in it)
PRESENT = ".reveal .slides section.present:not(:has(section.present))"


def say(config, message: str) -> None:
    """A line on the terminal even while pytest captures output (progress, screenshot paths)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # a run without a terminal (e.g. -p no:terminal)
        return
    with capture.global_and_fixture_disabled():  # what capsys.disabled() does, for a module fixture too
        reporter.write_line(f"[browser] {message}")


def screenshot_path(name: str):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name


def _read_whole(path):
    """The saved notebook, or None while the server is still writing it: jupyter_server's "atomic" save copies the
    old file aside and rewrites this one in place, so a reader can see it empty or cut short (seen in CI)."""
    try:
        return nbformat.read(path, as_version=4)
    except ValueError:  # nbformat's NotJSONError, and a notebook cut short
        return None


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()  # skips (or fails, when required) before anything starts
    playwright = sync_playwright()
    with playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):  # after `browser`: a skip for a missing browser comes before any server
    """JupyterLab on a scratch copy of the course; ``lab.original`` is the lecture as the repository has it."""
    tmp = tmp_path_factory.mktemp("browser")
    original = scratch_course(tmp / "course", strip=LECTURE)
    with JupyterLab(root=tmp / "course", home=tmp) as server:
        server.original = original
        yield server


@pytest.fixture(scope="module")
def lecture(browser, lab, request):
    """Lecture 01 opened in JupyterLab, run with Run > Run All Cells and saved; the page stays open."""
    path = lab.root / "notebooks" / LECTURE
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)  # any single click or lookup
    page = context.new_page()
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))

    def state():
        return page.evaluate(NOTEBOOK_STATE_JS) or {"status": None, "prompts": [], "running": 0, "done": 0}

    def explain():
        return (f"notebook state in the page: {state()}\nbrowser errors: {page_errors[-5:]}\n"
                f"server log ends:\n{lab.log_tail(15)}")

    def kernel_idle():
        try:
            sessions = lab.api("GET", "/api/sessions")
        except OSError:  # a busy server: ask again at the next poll
            return False
        server_idle = any(s["path"] == f"notebooks/{LECTURE}" and s["kernel"]["execution_state"] == "idle"
                          for s in sessions)
        return server_idle and state()["status"] == "idle"

    try:
        page.goto(lab.url(f"lab/tree/notebooks/{LECTURE}"), timeout=60_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
        poll(page, kernel_idle, 60, "the lecture's kernel to start and be idle", explain=explain)
        code_cells = len(state()["prompts"])

        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator('.lm-Menu-item:has(.lm-Menu-itemLabel:text-is("Run All Cells"))').click()
        poll(page, lambda: state()["running"] or state()["done"], 30, "Run All Cells to start", explain=explain)

        finished = []  # idle, nothing queued, twice in a row: a stop on an error also ends the run

        def run_over():
            s = state()
            finished.append(s["status"] == "idle" and not s["running"] and s["done"] > 0)
            return finished[-2:] == [True, True]

        def progress(elapsed):
            s = state()
            say(request.config, f"Run All: {s['done']}/{code_cells} code cells run, kernel {s['status']} ({elapsed:.0f} s)")

        poll(page, run_over, RUN_TIMEOUT, f"Run All Cells to finish {code_cells} code cells", interval=1.0,
             progress=progress, explain=explain)

        before = path.stat().st_mtime_ns
        page.locator(".jp-NotebookPanel .jp-Notebook").first.focus()
        page.keyboard.press("Control+s")
        poll(page, lambda: path.stat().st_mtime_ns != before, 30, f"JupyterLab to save {path} after Ctrl+S",
             explain=explain)
        saved = poll(page, lambda: _read_whole(path), 30, f"{path} to be whole after the save", explain=explain)

        plot = page.locator(".jp-NotebookPanel .jp-OutputArea-output img").first
        if plot.count():
            plot.scroll_into_view_if_needed()
        shot = screenshot_path("01_attention-executed.png")
        page.screenshot(path=shot)
        say(request.config, f"screenshot of the executed lecture: {shot}")
        yield SimpleNamespace(page=page, context=context, saved=saved, original=lab.original, code_cells=code_cells,
                              errors=page_errors)
    finally:
        context.close()


def test_run_all_cells_in_jupyterlab_saves_every_output(lecture):
    saved = lecture.saved
    errors = code_cell_errors(saved)
    assert not errors, f"{LECTURE} raised in JupyterLab:\n" + "\n".join(errors)
    code = [(i, c) for i, c in enumerate(saved.cells) if c.cell_type == "code"]
    assert len(code) == lecture.code_cells, f"the page showed {lecture.code_cells} code cells, the saved file has {len(code)}"
    not_run = [f"cell {i}: {c.source.splitlines()[0][:60]!r}" for i, c in code if c.execution_count is None]
    assert not not_run, f"{len(not_run)} code cells have no execution_count after Run All:\n" + "\n".join(not_run)
    counts = [c.execution_count for _, c in code]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), f"cells ran out of order: {counts}"
    reference = count_png(lecture.original)
    assert reference > 0, f"the repository's {LECTURE} has no plots to compare with"
    assert count_png(saved) >= reference, (f"the saved {LECTURE} has {count_png(saved)} image/png outputs, "
                                          f"the repository's copy {reference}: plots did not render")


def test_explorer_redraws_when_its_slider_moves(lecture, request):
    page = lecture.page
    explorer = page.locator(".course-explorer").first
    assert explorer.count(), (f"no .course-explorer in {LECTURE} in JupyterLab: the attention explorer's "
                              f"widget did not render (did its cell run? browser errors: {lecture.errors[-3:]})")
    explorer.scroll_into_view_if_needed()
    figure = explorer.locator(".course-explorer-figure").first
    slider = explorer.locator(".widget-hslider").first
    assert slider.count(), "the explorer shows no IntSlider"
    poll(page, lambda: figure.get_attribute("src"), 30, "the explorer's figure to get a src")
    src, value = figure.get_attribute("src"), slider.locator(".widget-readout").inner_text()
    picture = figure.screenshot()

    handle = slider.locator(".noUi-handle")
    top = float(handle.get_attribute("aria-valuemax") or "inf")
    key, step = ("ArrowRight", 1) if int(value) + 3 <= top else ("ArrowLeft", -1)  # three steps fit either way
    handle.click()  # focus the handle, as a student does, then three steps with the arrow key
    for _ in range(3):
        page.keyboard.press(key)
    poll(page, lambda: figure.get_attribute("src") != src, 30, "the explorer's figure to redraw after the slider moved",
         explain=lambda: f"slider readout {value!r} -> {slider.locator('.widget-readout').inner_text()!r}")
    moved = slider.locator(".widget-readout").inner_text()
    assert int(moved) == int(value) + 3 * step, f"three {key} presses moved the slider from {value} to {moved}"
    settled = []  # the last of the three redraws has arrived when src stays put for a second

    def src_settled():
        settled.append(figure.get_attribute("src"))
        return len(settled) > 2 and settled[-1] == settled[-2] == settled[-3]

    poll(page, src_settled, 30, "the explorer's figure to settle", interval=0.5)
    assert figure.screenshot() != picture, "the figure's src changed but the picture on screen did not"
    shot = screenshot_path("01_attention-explorer.png")
    explorer.screenshot(path=shot)
    say(request.config, f"screenshot of the explorer after moving the slider: {shot}")


def test_lecture_opens_as_reveal_slideshow(lecture, request):
    assert importlib.util.find_spec("jupyterlab_rise"), \
        "jupyterlab-rise is not installed: it is a course dependency, run `make setup` (pip install -e .)"
    page, saved = lecture.page, lecture.saved
    slide_starts = [c for c in saved.cells if c.get("metadata", {}).get("slideshow", {}).get("slide_type") == "slide"]
    assert len(slide_starts) >= 2, f"{LECTURE} needs at least two cells with slideshow slide_type 'slide'"
    titles = [c.source.splitlines()[0].lstrip("#").strip() for c in slide_starts[:2]]

    # RISE starts at the selected cell: select the first, then the command palette's
    # "Open as Reveal Slideshow" (RISE:slideshow) saves the notebook and opens /rise/<path> in a new tab.
    page.locator(".jp-NotebookPanel .jp-Cell").first.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("Reveal Slideshow")
    with lecture.context.expect_page(timeout=30_000) as opened:
        page.locator('.lm-CommandPalette-item[data-command="RISE:slideshow"]').click()
    slides = opened.value
    try:
        slides.wait_for_selector(PRESENT, timeout=60_000)
        poll(slides, lambda: titles[0] in slides.locator(PRESENT).inner_text(), 30,
             f"the first slide to show {titles[0]!r}",
             explain=lambda: f"slide on screen: {slides.locator(PRESENT).inner_text()[:200]!r}, url {slides.url}")
        slides.wait_for_function("document.fonts.status === 'loaded'", timeout=10_000)
        first_url, first_text = slides.url, slides.locator(PRESENT).inner_text()
        first = screenshot_path("01_attention-slide-1.png")
        first_png = slides.screenshot(path=first)

        slides.keyboard.press("ArrowRight")
        poll(slides, lambda: slides.url != first_url, 15, "ArrowRight to move to the next slide",
             explain=lambda: f"still at {slides.url}")
        slides.wait_for_timeout(1000)  # let reveal.js finish the transition before the screenshot
        second = screenshot_path("01_attention-slide-2.png")
        second_png = slides.screenshot(path=second)
        text = slides.locator(PRESENT).inner_text()
        assert text != first_text, "the slide on screen did not change after ArrowRight"
        assert titles[1] in text, f"the second slide should show {titles[1]!r}, it shows {text[:200]!r}"
        assert second_png != first_png, "the two slide screenshots are identical"
        say(request.config, f"screenshots of the slideshow: {first} and {second}")
    finally:
        slides.close()


def test_explorer_shows_its_picture_before_the_lecture_runs(browser, lab, request):
    """A lecture opened, not run: no widget can live yet, so JupyterLab must show the saved picture."""
    other = "03_vision_transformer.ipynb"  # scratch copy with its outputs as the repository has them
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        # a workspace of its own: the default one would also reopen lecture 01 and might show its tab
        page.goto(lab.url(f"lab/workspaces/unrun/tree/notebooks/{other}"), timeout=60_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
        cell = page.locator(".jp-CodeCell", has_text="attention_explorer(").first
        cell.scroll_into_view_if_needed()
        output = cell.locator(".jp-OutputArea-output").first
        poll(page, lambda: output.locator("img").count() > 0, 30, f"the explorer's saved picture in {other}",
             explain=lambda: f"the cell's output shows {output.inner_text()[:200]!r}")
        assert "Error displaying widget" not in cell.inner_text(), "the unrun explorer shows an error, not its picture"
        assert not cell.locator(".course-explorer").count(), "a live explorer before any cell ran?"
        shot = screenshot_path("03_vision_transformer-explorer-unrun.png")
        output.screenshot(path=shot)
        say(request.config, f"screenshot of an explorer before its lecture runs: {shot}")
    finally:
        context.close()
