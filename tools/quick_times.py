"""Store the quick run times measured by the test suite for the course page (``make quick-times``).

The notebook tests (``tests/test_notebooks.py::test_notebook_runs_quick_profile``) write each
chapter's wall time at the ``quick`` profile into ``_build/quick_times.json``, never into a tracked
file. The course page (``book/course.md``) reads ``book/quick_times.json``; this command copies the
measured times there, replacing a stored time only when it is missing or off by more than 25 %::

    python -m tools.quick_times            # show what would change
    python -m tools.quick_times --commit   # write book/quick_times.json

Exit status: 0 done (or nothing to change), 2 no measured times or an unreadable file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mfcore.notebook import MEASURED_QUICK_TIMES, QUICK_TIME_CHURN, STORED_QUICK_TIMES, commit_quick_times, repo_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.quick_times",
        description="Compare the quick run times measured by the test suite (_build/quick_times.json) with "
                    "the stored ones read by the course page (book/quick_times.json); --commit stores those "
                    f"that are new or off by more than {QUICK_TIME_CHURN:.0%}.".replace("%", "%%"),
    )
    parser.add_argument("--commit", action="store_true", help="write the stored file (default: only show)")
    parser.add_argument("--measured", type=Path, default=None,
                        help=f"measured times (default: {'/'.join(MEASURED_QUICK_TIMES)})")
    parser.add_argument("--stored", type=Path, default=None,
                        help=f"stored times (default: {'/'.join(STORED_QUICK_TIMES)})")
    args = parser.parse_args(argv)
    try:
        changes = commit_quick_times(args.measured, args.stored, write=args.commit)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stored = args.stored or repo_path(*STORED_QUICK_TIMES)
    if not changes:
        print(f"{stored}: up to date (every measured time within {QUICK_TIME_CHURN:.0%} of the stored one)")
        return 0
    for stem, (before, after) in sorted(changes.items()):
        print(f"{stem}: {'not stored' if before is None else f'{before:g} s'} -> {after:g} s")
    print(f"{'wrote' if args.commit else 'would write (add --commit)'} {stored}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
