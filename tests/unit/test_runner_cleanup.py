"""The phase containers are removed at once, and one by one when no thread can be had."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tui.engine.config import Config
from tui.engine.planner import make_plan
from tui.engine.runner import BuildRunner

pytestmark = pytest.mark.usefixtures("data_home")


class Box:
    def __init__(self, name: str) -> None:
        self.name = name


class Runner(BuildRunner):
    def __init__(self, plan: Any) -> None:
        super().__init__(None, plan, lambda event: None)  # type: ignore[arg-type]
        self.removed: list[tuple[str, str]] = []

    def _remove_builder(self, container: Any) -> str:
        self.removed.append((container.name, threading.current_thread().name))
        return "busy" if container.name == "b" else ""


def runner_with(context: Path, names: list[str]) -> Runner:
    runner = Runner(make_plan(context, config=Config(), profile="project", project="p"))
    runner._containers = [Box(n) for n in names]  # type: ignore[list-item]  # noqa: SLF001
    return runner


def test_every_container_is_removed_and_what_is_left_is_said(context: Path) -> None:
    runner = runner_with(context, ["a", "b", "c"])
    left = runner._cleanup(None)  # noqa: SLF001
    assert sorted(n for n, _ in runner.removed) == ["a", "b", "c"]
    assert left == ["container b (busy)"]
    assert all(t != threading.main_thread().name for _, t in runner.removed)  # at once


def test_without_threads_they_are_removed_one_by_one(context: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """At interpreter shutdown ThreadPoolExecutor refuses new work (RuntimeError): the clean-up
    (containers, then secrets, pins, the store lock) must not be skipped for it."""
    class Refusing:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr("tui.engine.runner.ThreadPoolExecutor", Refusing)
    runner = runner_with(context, ["a", "b", "c"])
    left = runner._cleanup(None)  # noqa: SLF001
    assert [n for n, _ in runner.removed] == ["a", "b", "c"]
    assert left == ["container b (busy)"]
