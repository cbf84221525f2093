"""A cancel that arrives while a phase container is being started still stops it.

The window: the runner has checked ``canceled`` and sent the start request; the user cancels
before the container runs. ``cancel()`` finds the container and stops it at once, but a
container that is not running yet has nothing to stop (Buildah is not there), so the stop
returns and the phase, started a moment later, ran to its end (review L3, session 6).
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tui.engine.config import Config
from tui.engine.planner import make_plan
from tui.engine.runner import BuildRunner

pytestmark = pytest.mark.usefixtures("data_home")


class Box:
    """A phase container: "created" until start() returns, "running" after."""

    def __init__(self, runner: BuildRunner, cancel_during_start: bool) -> None:
        self.name = self.id = "phase"
        self.status = "created"
        self.attrs: dict[str, Any] = {"HostConfig": {"IDMappings": {}}}
        self._runner = runner
        self._cancel_during_start = cancel_during_start

    def reload(self) -> None:
        pass

    def start(self) -> None:
        if self._cancel_during_start:
            self._runner.cancel()  # the user, while the start request is in flight
        self.status = "running"


class Runner(BuildRunner):
    def __init__(self, plan: Any) -> None:
        super().__init__(None, plan, lambda event: None)  # type: ignore[arg-type]
        self.box: Box | None = None

    def _create(self, spec: Any) -> Any:
        return self.box


def run_start(context: Path, monkeypatch: pytest.MonkeyPatch,
              cancel_during_start: bool) -> list[str]:
    """Starts one phase's container; returns the state each stop found it in."""
    seen: list[str] = []
    done = threading.Event()

    def stop(container: Box, timeout: float) -> None:
        seen.append(container.status)
        if container.status == "running":
            done.set()

    monkeypatch.setattr("tui.engine.runner.stop_gracefully", stop)
    runner = Runner(make_plan(context, config=Config(), profile="project", project="p"))
    runner.box = Box(runner, cancel_during_start)
    runner._start_builder(SimpleNamespace(name="build", mounts=()))  # type: ignore[arg-type]  # noqa: SLF001
    if cancel_during_start:
        done.wait(10.0)
    return seen


def test_a_cancel_during_the_start_stops_the_running_container(
        context: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = run_start(context, monkeypatch, cancel_during_start=True)
    # Once, and once it runs: Buildah's clean-up needs its SIGTERM once (containers.py).
    assert seen == ["running"], f"the stops found the container: {seen}"


def test_no_cancel_no_stop(context: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = run_start(context, monkeypatch, cancel_during_start=False)
    assert seen == []
