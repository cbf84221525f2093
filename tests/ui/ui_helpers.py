"""Shared by the UI tests and snapshot tests: a fixed-clock app around the ReplayEngine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tui.app import BuildcageApp
from tui.engine.history import History
from tui.testing import FrozenClock, ReplayEngine, add_demo_history

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WARM_PAUSE = 18
"""Events of warm-push.jsonl up to step 4 starting: two steps cached, the last one running."""


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
    add_demo_history(history, EXAMPLES)
