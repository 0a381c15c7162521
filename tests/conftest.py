"""Shared fixtures of the test suite.

The suite runs every notebook at the ``quick`` profile: notebooks whose ``profile`` parameter is
left at ``None`` read the environment variable ``MFBOOK_PROFILE`` (see ``mfcore/notebook.py``),
which is set here for the whole session (and inherited by the kernels papermill starts).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ["MFBOOK_PROFILE"] = "quick"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """Absolute path of the repository root (the folder holding _config.yml)."""
    return REPO_ROOT
