"""Fixtures shared by every test file: the tiny MVTec-layout category (helpers.make_category)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import make_category  # first import: sets OMP_NUM_THREADS before torch loads


@pytest.fixture(scope="session")
def tiny_category_ro(tmp_path_factory) -> Path:
    """A tiny MVTec-layout category shared by the session: do not modify it."""
    return make_category(tmp_path_factory.mktemp("tiny") / "widget")


@pytest.fixture
def tiny_category(tiny_category_ro, tmp_path) -> Path:
    """A private copy of the tiny category that a test may damage."""
    return Path(shutil.copytree(tiny_category_ro, tmp_path / "widget"))
