"""Teaching and publishing tools of the book: student handouts and answer key (``handouts``), PDF (``pdf``).

Run from the repository root: ``python -m tools.handouts``, ``python -m tools.pdf`` (or ``make
handouts``, ``make pdf``).
"""
