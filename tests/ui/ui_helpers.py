"""Shared by the UI tests and snapshot tests: a fixed-clock app around the ReplayEngine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tui.app import BuildcageApp
from tui.engine.history import BuildRecord, History, StepRecord
from tui.testing import ReplayEngine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WARM_PAUSE = 18
"""Events of warm-push.jsonl up to step 4 starting: two steps cached, the last one running."""


class FrozenClock:
    """The build timer's clock; a test moves it by hand so screenshots never change."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fake_reach(host: str, tls_verify: bool) -> tuple[bool, str]:
    fake_reach.calls.append((host, tls_verify))
    return True, f"{host} answered (registry API v2)"


fake_reach.calls = []  # type: ignore[attr-defined]


def make_app(engine: ReplayEngine, start: Path = EXAMPLES, clock: FrozenClock | None = None,
             ) -> BuildcageApp:
    return BuildcageApp(engine, start, clock=clock or FrozenClock(), reach=fake_reach)


async def wait_for(pilot: Pilot, predicate: Callable[[], object], timeout: float = 10.0,
                   what: str = "condition") -> None:
    """Let the app run until ``predicate()`` is true (workers and timers are real)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def pick_context(pilot: Pilot, name: str) -> None:
    """Select examples/NAME as the context and wait for its summary card."""
    from tui.screens.session import SessionScreen
    from tui.widgets.summary_card import SummaryCard

    screen = pilot.app.screen
    assert isinstance(screen, SessionScreen)
    screen.select_context(EXAMPLES / name)
    card = screen.query_one(SummaryCard)
    await wait_for(pilot, lambda: card.summary is not None or card.error, what="summary card")


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await asyncio.sleep(0)


def fixed_records(history: History) -> None:
    """Five builds at fixed times (2025-11-29, UTC), for the history screen."""
    base = 1_764_400_000.0
    steps = [StepRecord(1, 1, "FROM 127.0.0.1:5000/buildcage/busybox:latest", 0.1, False),
             StepRecord(1, 2, "COPY greeting.txt /greeting.txt", 0.2, True),
             StepRecord(1, 3, 'RUN echo "built by buildcage" > /built-by', 0.2, True),
             StepRecord(1, 4, 'CMD ["cat", "/greeting.txt"]', 0.3, True)]
    rows = [
        ("isolated", "/srv/src/hello", "succeeded", 9.4, 0, 4, "", False),
        ("host-ro", "/srv/src/hello", "succeeded", 3.0, 3, 4,
         "127.0.0.1:5000/demo/hello:x@sha256:7fe85a8e3cb772c67bbc69c61b69410306d2f09cdae45de16f"
         "ec1349fbd1c3bd", False),
        ("host-ro", "/srv/src/broken", "failed", 5.2, 0, 7, "", False),
        ("project", "/srv/src/multistage", "canceled", 1.4, 1, 3, "", False),
        ("host-ro", str(EXAMPLES / "hello"), "succeeded", 2.8, 3, 4, "", False),
    ]
    for i, (profile, context, status, duration, hits, total, pushed, no_cache) in enumerate(rows):
        history.add(BuildRecord(
            started_at=base + i * 600, profile=profile, context=context,
            containerfile=f"{context}/Containerfile", tag="localhost/buildcage/hello:latest",
            target=pushed.split("@")[0], status=status, duration_s=duration, steps_total=total,
            cache_hits=hits, image_id="ab9d8035ec09" * 5 + "1e0c" if status == "succeeded" else "",
            pushed=pushed, no_cache=no_cache, steps=steps if hits == 3 else [],
        ))
