"""Shared fixtures: seeds, the shared real datasets (skipped when absent), temp run dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def seed() -> int:
    return 1234


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; tests that need it skip cleanly when it is absent (never under CI)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared datasets are missing at {SHARED_DATA}")
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA
