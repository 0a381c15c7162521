"""Shared fixtures of the test suite."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """Absolute path of the repository root (the folder holding _config.yml)."""
    return REPO_ROOT
