"""Shared fixtures of the test suite.

The suite runs every notebook at the ``quick`` profile: notebooks whose ``profile`` parameter is
left at ``None`` read the environment variable ``MFBOOK_PROFILE`` (see ``mfcore/notebook.py``),
which is set here for the whole session (and inherited by the kernels papermill starts).

The suite leaves the checkout as it found it: the state of the git working tree (every changed,
deleted or new file that is not ignored, with a hash of its content) is recorded when the session
starts, and ``tests/test_repo_hygiene.py::test_tests_leave_the_checkout_as_they_found_it``, moved
to the end of the session, compares it with the state after every other test.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ["MFBOOK_PROFILE"] = "quick"

#: Marker of the tests that run after every other test of the session.
LAST_MARKER = "run_last"
#: Key of the working tree's state at the start of the session (``config.stash``).
GIT_STATE_AT_START = pytest.StashKey[object]()


def git_working_tree_state(root: Path = REPO_ROOT) -> dict[str, str] | None:
    """``{path: "status content-hash"}`` of every file git reports as changed, deleted or new (not
    ignored) under ``root``; ``None`` when ``root`` is not a git checkout (or git is missing)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules"],
            cwd=root, check=True, capture_output=True, timeout=120,
        ).stdout.decode("utf-8", "surrogateescape")
    except (OSError, subprocess.SubprocessError):
        return None
    state: dict[str, str] = {}
    entries = out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if status[0] in "RC":  # a rename or copy: the next entry is the original path
            i += 1
        file = root / path
        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16] if file.is_file() else "absent"
        except OSError:
            digest = "unreadable"
        state[path] = f"{status} {digest}"
    return state


def pytest_configure(config):
    config.addinivalue_line("markers", f"{LAST_MARKER}: runs after every other test of the session")


def pytest_sessionstart(session):
    session.config.stash[GIT_STATE_AT_START] = git_working_tree_state()


def pytest_collection_modifyitems(session, config, items):
    """Move the tests marked ``run_last`` to the end of the session (keeping their order)."""
    last = [item for item in items if item.get_closest_marker(LAST_MARKER)]
    if last:
        items[:] = [item for item in items if not item.get_closest_marker(LAST_MARKER)] + last


@pytest.fixture(scope="session")
def git_state_at_start(request) -> dict[str, str] | None:
    """The working tree's state when the session started (see :func:`git_working_tree_state`)."""
    return request.config.stash.get(GIT_STATE_AT_START, None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """Absolute path of the repository root (the folder holding _config.yml)."""
    return REPO_ROOT
