# Build and test pipeline of the book.  `make book` and `make test` create .venv if needed.
#
# Targets: venv, book, book-clean, test, test-fast, clean
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

.PHONY: venv book book-clean test test-fast clean

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

clean: book-clean
	rm -rf $(VENV) .pytest_cache
