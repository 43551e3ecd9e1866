"""Fixtures of the page tests: Debian's Chromium driven by Playwright, and `assistant serve`
processes over a seeded data folder. Loaded by the page test modules with ``pytest_plugins``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, seeded_data
from tests.web_helpers import CHROMIUM, FLAGS, data_copy, playwright_api


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield instance
        instance.close()


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
