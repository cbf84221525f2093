"""Shared by the UI tests and snapshot tests: a fixed-clock app around the ReplayEngine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.pilot import Pilot

from tests.support.replay import FrozenClock, ReplayEngine, add_demo_history
from tests.support.scenes import EXAMPLES, WARM_PAUSE, pick_context, wait_for
from tui.app import BuildcageApp
from tui.engine.history import History
from tui.screens.build import BuildScreen

__all__ = ["EXAMPLES", "WARM_PAUSE", "FrozenClock", "pick_context", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]


def fake_reach(host: str, tls_verify: bool) -> tuple[bool, str]:
    fake_reach.calls.append((host, tls_verify))
    return True, f"{host} answered (registry API v2)"


fake_reach.calls = []  # type: ignore[attr-defined]


def make_app(engine: ReplayEngine, start: Path = EXAMPLES, clock: FrozenClock | None = None,
             ) -> BuildcageApp:
    return BuildcageApp(engine, start, clock=clock or FrozenClock(), reach=fake_reach)


async def build_to_done(pilot: Pilot, context: str = "hello") -> BuildScreen:
    """Picks ``context``, starts its build (F5) and waits for the build screen's Done."""
    await pick_context(pilot, context)
    await pilot.press("f5")
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
    screen = app.screen
    assert isinstance(screen, BuildScreen)
    await wait_for(pilot, lambda: screen.finished, what="Done")
    return screen


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await asyncio.sleep(0)


def fixed_records(history: History) -> None:
    add_demo_history(history, EXAMPLES)
