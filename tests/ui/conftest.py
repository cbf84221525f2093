"""Fixtures for the UI tests: a real History in tmp_path, the ReplayEngine, UTC time."""

from __future__ import annotations

import time

import pytest
from ui_helpers import fake_reach

from tests.support.replay import ReplayEngine
from tui.engine.history import History


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    """History shows local times; UTC keeps snapshots the same on every machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    fake_reach.calls.clear()  # type: ignore[attr-defined]
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Builds prepare their plan files under XDG_DATA_HOME: keep them in the test's tmp."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def history(tmp_path) -> History:
    with History(tmp_path / "history.sqlite3") as opened:
        yield opened


@pytest.fixture
def engine(history: History) -> ReplayEngine:
    return ReplayEngine(history)
