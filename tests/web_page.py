"""Fixtures of the page tests: `assistant serve` processes over a seeded data folder (the
browser is the `browser` fixture of tests/conftest.py). Loaded by the page test modules with ``pytest_plugins``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, seeded_data
from tests.web_helpers import data_copy


@pytest.fixture(scope="session")
def seeded_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the seeds, ingested once; servers run on copies of it."""
    return seeded_data(tmp_path_factory.mktemp("web-seed"))


@pytest.fixture(scope="module")
def site(seeded_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An open server (no keys, no rate limit) over the seeds."""
    data = data_copy(seeded_folder, tmp_path_factory.mktemp("site") / "data")
    server = ServerProcess(data, ASSISTANT_RATE_LIMIT_PER_MINUTE="0").start()
    yield server.url
    server.stop()
