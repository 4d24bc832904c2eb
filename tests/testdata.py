"""Where the vendored third-party test data lives: `tests/data/`, inside the repository (see its README)."""

from __future__ import annotations

from pathlib import Path

TESTDATA = Path(__file__).resolve().parent / "data"
