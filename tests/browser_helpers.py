"""Helpers for tests/test_browser.py: find Chromium and Playwright, run JupyterLab, poll a page.

The browser test drives Debian's Chromium (``apt-get install chromium``) through Playwright for
Python; it never downloads a browser (no ``playwright install``). Without Chromium or Playwright the
test is skipped with the reason, unless ``COURSE_BROWSER_REQUIRED=1`` (set by ``.ci/run`` once it has
installed Chromium), which turns a missing piece into a failure.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "build" / "browser"

# Flags known to work for headless Chromium in containers: no sandbox (we may be root), no GPU, and
# none of Chromium's own network traffic; every host except the local server fails to resolve at once.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

# JupyterLab settings for a quiet, predictable page: no news toast over the notebook, and every cell
# attached to the page so that prompts and outputs can be read from the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def missing(what: str) -> None:
    """Skip the test for a missing piece, or fail when COURSE_BROWSER_REQUIRED=1 says it must run."""
    if os.environ.get("COURSE_BROWSER_REQUIRED") == "1":
        pytest.fail(f"{what} (COURSE_BROWSER_REQUIRED=1: the browser test must run here)", pytrace=False)
    pytest.skip(what)


def chromium_path() -> str:
    """Chromium's executable: $COURSE_CHROMIUM, else `chromium` on PATH, else /usr/bin/chromium."""
    override = os.environ.get("COURSE_CHROMIUM")
    path = override or shutil.which("chromium") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        where = f"COURSE_CHROMIUM={override}" if override else "/usr/bin/chromium or on PATH"
        missing(f"Chromium not found at {where}: install Debian's chromium (`apt-get install chromium`) "
                f"to run the browser test; .ci/run does this")
    return path


def sync_playwright():
    """Playwright's sync API, or a skip (a failure when required) that says how to install it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python not installed: `pip install -e '.[test]'` (or `pip install playwright`); "
                "it drives Debian's Chromium, so never run `playwright install`")
    return sync_playwright


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now (the server is told not to try others)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_course(tmp: Path, strip: str):
    """Copy notebooks/ and exercises/ into ``tmp``; clear the outputs of notebook ``strip``.

    Cleared outputs make the test's evidence its own: every output in the saved file was made by
    the browser's run, none was left over from the copy in the repository. Returns that notebook as
    the repository has it, outputs included, to compare with.
    """
    for folder in ["notebooks", "exercises"]:
        shutil.copytree(REPO / folder, tmp / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    path = tmp / "notebooks" / strip
    original = nbformat.read(path, as_version=4)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)  # widget state saved with the repo's copy
    nbformat.write(nb, path)
    return original


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 (random port, random token) serving ``root``; a context manager."""

    def __init__(self, root: Path, home: Path, timeout: float = 60):
        self.root, self.home, self.timeout = root, home, timeout
        self.token = secrets.token_hex(16)
        self.port = self.base = self.process = self._log = None
        self.log_path = home / "jupyterlab.log"

    def url(self, path: str) -> str:
        return f"{self.base}/{path}?token={self.token}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(text[-lines:])

    def api(self, method: str, path: str) -> dict:
        """Call the server's REST API (``/api/...``) with the token; the decoded JSON reply."""
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else {}

    def _write_settings(self) -> Path:
        settings = self.home / "lab-settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        return settings

    def __enter__(self) -> JupyterLab:
        env = dict(os.environ, HF_HUB_OFFLINE="1", COURSE_FORCE_STANDINS="1", PYTHONUNBUFFERED="1",
                   JUPYTERLAB_SETTINGS_DIR=str(self._write_settings()),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.home / "lab-workspaces"),  # no layout from a past session
                   JUPYTER_RUNTIME_DIR=str(self.home / "runtime"))
        env.pop("MPLBACKEND", None)  # kernels must draw inline (see conftest.py)
        for attempt in range(3):  # another process may take the free port before the server binds it
            self.port = free_port()
            self.base = f"http://127.0.0.1:{self.port}"
            command = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
                       "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                       f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}"]
            if os.geteuid() == 0:
                command.append("--allow-root")
            self._log = open(self.log_path, "w")
            self.process = subprocess.Popen(command, cwd=self.root, env=env, stdout=self._log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                self._wait_until_up()
                return self
            except RuntimeError:
                self.stop()
                if attempt == 2 or "is not available" not in self.log_tail():
                    raise
            except BaseException:
                self.stop()
                raise

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.process.returncode} before answering; "
                                   f"its log ends:\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return
            except OSError:  # refused, reset or timed out (urllib's URLError is an OSError)
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterLab did not answer {self.base}/api/status within {self.timeout:.0f} s; "
                                   f"its log ends:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Shut the server down with its kernels: the shutdown API first, then SIGTERM, then SIGKILL."""
        try:
            if self.process is not None and self.process.poll() is None:
                try:
                    self.api("POST", "/api/shutdown")  # also shuts down every kernel it started
                except OSError:
                    pass
                for sig, wait in [(None, 10), (signal.SIGTERM, 10), (signal.SIGKILL, 5)]:
                    if sig is not None:
                        self.process.send_signal(sig)
                    try:
                        self.process.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        finally:
            if self._log is not None:
                self._log.close()

    def __exit__(self, *exc) -> None:
        self.stop()


def poll(page, check, timeout: float, what: str, interval: float = 0.5, progress=None, explain=None):
    """Call ``check()`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds.

    ``page.wait_for_timeout`` (not ``time.sleep``) keeps Playwright handling the page's events between
    checks. ``progress(elapsed)`` is called about every 10 s; ``explain()`` adds detail to a failure.
    """
    start = time.monotonic()
    last_report = start
    while True:
        result = check()
        if result:
            return result
        now = time.monotonic()
        if now - start > timeout:
            detail = f"\n{explain()}" if explain else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{detail}", pytrace=False)
        if progress and now - last_report >= 10:
            progress(now - start)
            last_report = now
        page.wait_for_timeout(interval * 1000)


# The state of the notebook in the page: the kernel's status and each code cell's prompt
# ("[ ]:" never run, "[*]:" queued or running, "[7]:" done).
NOTEBOOK_STATE_JS = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    if (!panel) return null;
    const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim());
    return {status: indicator ? indicator.dataset.status : null, prompts: prompts,
            running: prompts.filter(p => p.includes('*')).length,
            done: prompts.filter(p => /\\[\\d+\\]/.test(p)).length};
}"""


def code_cell_errors(nb) -> list[str]:
    """One line per error output in a notebook: which cell, and its ename and evalue."""
    errors = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                errors.append(f"cell {index} ({first[:60]!r}): {output.ename}: {output.evalue}")
    return errors


def count_png(nb) -> int:
    """How many outputs in a notebook carry an image/png."""
    return sum("image/png" in output.get("data", {})
               for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs)
