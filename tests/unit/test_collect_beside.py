"""What dead buildcage processes left is collected beside the sweep of sessions (and a
session's checks), not before them (its list calls were 7.5 ms of an unchanged build's 19
here); it is done before the store's flock is taken (an orphan on this very store is
collected under that flock, which the collection takes itself, without waiting); and what it
says still comes first, in order, from the runner's own thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tui.engine.config import Config
from tui.engine.events import BuildStarted, BuildWarning, Event
from tui.engine.planner import make_plan
from tui.engine.runner import BuildRunner

pytestmark = pytest.mark.usefixtures("data_home")


def test_the_collection_runs_beside_the_sweep_ends_before_the_flock_and_speaks_first(
        context: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    swept = threading.Event()
    collected = threading.Event()
    threads: list[str] = []
    flock_after_collection: list[bool] = []

    def collect(client: Any, warn: Any) -> None:
        threads.append(threading.current_thread().name)
        warn("removed container x: left by a process that is gone")
        assert swept.wait(5), "collected before the sweep of sessions, not beside it"
        time.sleep(0.2)  # still collecting when the runner comes to the flock
        warn("removed volume y: left by a process that is gone")
        collected.set()

    def open_lock(path: Path) -> Any:
        flock_after_collection.append(collected.is_set())
        return open(path, "a")

    events: list[Event] = []
    runner = BuildRunner(None, make_plan(context, config=Config(), profile="project",  # type: ignore[arg-type]
                                         project="p"), events.append)
    monkeypatch.setattr("tui.engine.runner.collect_on_start", collect)
    monkeypatch.setattr("tui.engine.runner.open_lock", open_lock)
    monkeypatch.setattr("tui.engine.runner.claim_store", lambda *a, **k: None)
    monkeypatch.setattr(runner, "_sweep_sessions", lambda: swept.set())
    monkeypatch.setattr(runner, "_heal_store", lambda: None)
    monkeypatch.setattr(runner, "_unchanged_build",
                        lambda: runner._announce("") or True)  # noqa: SLF001
    monkeypatch.setattr(runner, "_cleanup", lambda state: [])
    runner.run()
    assert flock_after_collection == [True]
    said = [e.message for e in events if isinstance(e, BuildWarning)]
    assert said[:2] == ["removed container x: left by a process that is gone",
                        "removed volume y: left by a process that is gone"]
    first_start = next(i for i, e in enumerate(events) if isinstance(e, BuildStarted))
    assert all(isinstance(e, BuildWarning) for e in events[:first_start])
    assert threads != [threading.current_thread().name]
