# Build and test pipeline of the book.  `make book` and `make test` create .venv if needed.
#
# Targets: venv, book, book-clean, test, test-fast, test-notebooks, handouts, pdf, lab, clean
#
# NOTE on the execution cache: notebooks are executed with jupyter-cache
# (`execute_notebooks: cache` in _config.yml), keyed on the *code cells only*.
# Editing mfcore/ does NOT invalidate the cache, so after changing mfcore run
#   make book-clean && make book
# to force every notebook to re-execute.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.mfbook-installed

# Resolve the "python3" Jupyter kernel to this venv even if a user-level kernel spec exists.
export JUPYTER_PATH := $(CURDIR)/$(VENV)/share/jupyter

.PHONY: venv book book-clean test test-fast test-notebooks handouts pdf lab clean

venv: $(STAMP)

# Re-runs only when the pins or the package metadata change (or .venv is deleted).
$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(VPY) || { \
	  $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: the pinned versions need Python >= 3.11; run e.g. make PYTHON=python3.11")' && \
	  echo "Creating $(VENV) with $(PYTHON)" && $(PYTHON) -m venv $(VENV); }
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -r requirements.txt -c constraints.txt
	$(VPY) -m pip install -e . --no-deps
	@touch $(STAMP)

book: venv
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Book built: _build/html/index.html"

# Removes the HTML *and* the jupyter-cache (_build/.jupyter_cache): the next
# `make book` re-executes every notebook.
book-clean:
	rm -rf _build

test: venv
	$(VPY) -m pytest -v

test-fast: venv
	$(VPY) -m pytest -v -m "not notebooks and not browser"

# Only the notebooks, at the quick profile, through nbmake (as the test suite runs them).
test-notebooks: venv
	MFBOOK_PROFILE=quick $(VPY) -m pytest -v --nbmake --nbmake-timeout=600 notebooks/

# Student edition in _build/handouts/: notebooks without solutions (profile quick), the book
# without solutions (html/), the answer key (answer-key.md, answer-key.html). The student
# notebooks are executed once (nbmake, MFBOOK_PROFILE unset: they must choose quick themselves).
HANDOUTS := _build/handouts
handouts: book
	rm -rf $(HANDOUTS)
	$(VPY) -m tools.handouts --out $(HANDOUTS)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --config $(HANDOUTS)/_config.student.yml --path-output $(HANDOUTS)/student
	mv $(HANDOUTS)/student/_build/html $(HANDOUTS)/html && rm -rf $(HANDOUTS)/student
	$(VPY) -m tools.handouts key-html --html _build/html --out $(HANDOUTS)
	# nbmake skips every path with a `_build` part: execute a copy outside _build (the notebooks find
	# the repository's files from the installed package, not from their folder)
	tmp=$$(mktemp -d) && cp $(HANDOUTS)/notebooks/*.ipynb $$tmp/ && \
	  env -u MFBOOK_PROFILE $(VPY) -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=600 $$tmp; \
	  rc=$$?; rm -rf $$tmp; exit $$rc
	@echo "Handouts: $(HANDOUTS)/ (students: notebooks/, html/; instructors: answer-key.*)"

# Printable book (Chromium prints each built page, pypdf merges): _build/pdf/book.pdf with the
# solutions, _build/pdf/book-student.pdf without, _build/handouts/answer-key.pdf.
pdf: handouts
	$(VPY) -m tools.pdf --html _build/html --out _build/pdf/book.pdf
	$(VPY) -m tools.pdf --html $(HANDOUTS)/html --out _build/pdf/book-student.pdf --edition "student edition (without solutions)"
	$(VPY) -m tools.pdf --page $(HANDOUTS)/answer-key.html --out $(HANDOUTS)/answer-key.pdf

# JupyterLab on the notebooks (MyST Markdown rendered by jupyterlab-myst). Local only; add
# LAB_ARGS=--ServerApp.open_browser=False (or other options) as you like.
LAB_ARGS ?=
lab: venv
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --notebook-dir=notebooks $(LAB_ARGS)

clean: book-clean
	rm -rf $(VENV) .pytest_cache
