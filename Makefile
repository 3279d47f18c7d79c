# The course's two commands (see README.md):
#   make lab    set up (first time only) and open the course in JupyterLab on notebooks/
#   make test   set up (first time only) and run every test: unit tests and every notebook
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test test-fast lint benchmark setup exercises doctor clean

# JupyterLab refuses to start as root (common in containers) unless told it may
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG)

# Tests always take the stand-in path, so they give the same outputs on every machine and never
# download gigabytes; the notebooks themselves use real checkpoints wherever they can. First the linter,
# then every test and notebook, the real path rehearsed among them (tests/test_real_path.py): every
# notebook that resolves a checkpoint runs again, the cells the real path reaches, against a local cache
# of the real checkpoints (published configurations, random weights), offline (see README.md).
#
# Two pytest workers (pytest-xdist), each test file or notebook whole on one of them, the longest first
# (tests/conftest.py), each with one torch thread (OMP_NUM_THREADS=1, which default_threads() honours): on two
# cores that is about a third faster than one worker with two threads, because small models use a second
# thread poorly. A bigger machine: make test WORKERS=4.
WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check .
	COURSE_FORCE_STANDINS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder

# The unit tests alone (no notebook, no browser, nothing that trains for long): under a minute, on the same two
# workers as make test (each file whole on one of them, one torch thread each).
test-fast: $(STAMP)
	COURSE_FORCE_STANDINS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(WORKERS) --dist loadfile tests -m "not slow and not notebook and not browser"

lint: $(STAMP)
	$(BIN)/ruff check .

# The timings the course promises (the hub check's 2 s, ...), measured and printed, not asserted.
benchmark: $(STAMP)
	$(BIN)/python tests/benchmark.py

setup: $(STAMP)

# Course authors: rewrite exercises/ from solutions/ after editing a solution notebook.
exercises: $(STAMP)
	$(BIN)/python -m course_utils generate

doctor: $(STAMP)
	$(BIN)/python -m course_utils doctor

# Re-install whenever pyproject.toml changes; the stamp records a finished install.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "the course needs Python 3.10 or newer, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install --no-compile -e ".[test]"
	@# pip compiles the modules to bytecode one at a time (a minute, for torch and transformers); compileall uses every
	@# core. A few files written for newer Pythons (torch's tests) do not compile, which pip ignores too: hence || true.
	$(BIN)/python -m compileall -qq -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" || true
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache
