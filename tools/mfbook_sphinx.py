"""Sphinx extension of the book (``_config.yml``: ``sphinx.local_extensions``).

Sphinx re-reads a page only when its own source changes. The course page (``book/course.md``)
computes its table from ``book/quick_times.json`` and from the chapters' text; this extension
declares those files as dependencies of the page, so that ``make book`` (and ``make pdf``, which
runs it) rebuilds the course page whenever the quick run times or a chapter change.
"""
from __future__ import annotations

from pathlib import Path

#: docname -> files (glob patterns relative to the book's root) that the page reads when built
DEPENDENCIES = {
    "book/course": ["book/quick_times.json", "notebooks/*.ipynb"],
}


def _note_dependencies(app, docname, source):
    for pattern in DEPENDENCIES.get(docname, []):
        for path in sorted(Path(app.srcdir).glob(pattern)):
            app.env.note_dependency(str(path.resolve()))


def setup(app):
    app.connect("source-read", _note_dependencies)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
