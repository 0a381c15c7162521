# Build and test pipeline of the book.  `make book` and `make test` create .venv if needed.
#
# Targets: venv, book, book-clean, test, test-fast, test-notebooks, quick-times, handouts, pdf,
#          student-kit, site, lab, clean
#
# The execution cache: notebooks are executed with jupyter-cache (`execute_notebooks: cache` in
# _config.yml), which keys a notebook on its code cells only. `make book` therefore first hashes
# mfcore/, configs/, sweeps/paper/, pyproject.toml and constraints.txt (tools/publish.py) and removes
# _build/.jupyter_cache when the hash differs from _build/.mfcore-hash: after a change of mfcore every
# notebook is executed again.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.mfbook-installed

# Resolve the "python3" Jupyter kernel to this venv even if a user-level kernel spec exists.
export JUPYTER_PATH := $(CURDIR)/$(VENV)/share/jupyter

.PHONY: venv book book-clean test test-fast test-notebooks quick-times handouts pdf student-kit site lab clean

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

# BOOK_CONFIG: the published build passes _build/_config.published.yml (launch buttons, written by
# `python -m tools.publish config --repo OWNER/NAME`); the local build is fully offline.
BOOK_CONFIG ?= _config.yml
book: venv
	$(VPY) -m tools.publish cache-check
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --config $(BOOK_CONFIG)
	@echo "Book built: _build/html/index.html"

# Removes the HTML *and* the jupyter-cache (_build/.jupyter_cache): the next
# `make book` re-executes every notebook.
book-clean:
	rm -rf _build

test: venv
	$(VPY) -m pytest -v

test-fast: venv
	$(VPY) -m pytest -v -m "not notebooks and not browser"

# The quick run times measured by the test suite (_build/quick_times.json) become the stored ones
# that the course page reads (book/quick_times.json, tracked): the only command that writes it. The
# next `make book` rebuilds the course page (tools/mfbook_sphinx.py declares the dependency).
quick-times: venv
	$(VPY) -m tools.quick_times --commit

# Only the notebooks, at the quick profile, through nbmake (as the test suite runs them).
test-notebooks: venv
	MFBOOK_PROFILE=quick $(VPY) -m pytest -v --nbmake --nbmake-timeout=600 notebooks/

# Student edition in _build/handouts/: notebooks without solutions (profile quick), the book
# without solutions (html/, built from source/: the pages and notebooks with every solution block
# and every instructors-only passage removed, so that "Download source" holds no solution; it reuses
# the execution cache of `make book`), the answer key (answer-key.md, answer-key.html, made from
# the built book). The student notebooks are executed once (nbmake, MFBOOK_PROFILE unset: they must
# choose quick themselves).
HANDOUTS := _build/handouts
handouts: book
	rm -rf $(HANDOUTS)
	$(VPY) -m tools.handouts --out $(HANDOUTS)
	$(VENV)/bin/jupyter-book build $(HANDOUTS)/source -W -n --keep-going --path-output $(HANDOUTS)/student
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
# `make book` (through handouts) rebuilds the course page first if the quick times changed.
pdf: handouts
	$(VPY) -m tools.pdf --html _build/html --out _build/pdf/book.pdf --edition "Edition with solutions"
	$(VPY) -m tools.pdf --html $(HANDOUTS)/html --out _build/pdf/book-student.pdf --edition "Student edition" \
	  --note "The exercises without their solutions."
	$(VPY) -m tools.pdf --page $(HANDOUTS)/answer-key.html --out $(HANDOUTS)/answer-key.pdf --title "Answer key" \
	  --edition "For instructors" --note "Every exercise of the book with its solution. Do not hand it to students."

# One archive for students (_build/student-kit.zip): the handout notebooks (no solutions, profile
# quick), the mfcore sources, the stored sweeps, the pinned requirements and a README with the install
# routes (Linux/macOS, Windows, conda). Needs no built book; refuses to write any solution text.
student-kit: venv
	$(VPY) -m tools.handouts kit --zip _build/student-kit.zip

# The published site (_build/site/): the book, student/ (the student edition) and downloads/ (both
# PDFs and the student kit); never the answer key. The Pages workflow uploads it.
site: pdf student-kit
	$(VPY) -m tools.publish site --out _build/site

# JupyterLab on the notebooks (MyST Markdown rendered by jupyterlab-myst). Local only; add
# LAB_ARGS=--ServerApp.open_browser=False (or other options) as you like.
LAB_ARGS ?=
lab: venv
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --notebook-dir=notebooks $(LAB_ARGS)

clean: book-clean
	rm -rf $(VENV) .pytest_cache
