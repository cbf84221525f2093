"""Screenshots compared with the accepted ones in __snapshots__/ (pytest-textual-snapshot).

Everything on screen is fixed: recorded streams with fixed times, recorded inspect data,
history rows at fixed times in UTC, and the build timer's clock frozen. After a deliberate UI
change, review and accept with ``pytest tests/ui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from ui_helpers import WARM_PAUSE, FrozenClock, fixed_records, make_app, pick_context, wait_for

from tui.app import LIGHT
from tui.screens.build import BuildScreen
from tui.screens.compare import CompareScreen
from tui.screens.history import HistoryScreen
from tui.testing import ReplayEngine
from tui.widgets.context_tree import ContextTree

SMALL, LARGE = (80, 24), (160, 50)


async def session_ready(pilot: Pilot, context: str = "multistage") -> None:
    tree = pilot.app.screen.query_one(ContextTree)
    await wait_for(pilot, lambda: len(tree.root.children) == 3, what="tree")
    await pick_context(pilot, context)
    tree.move_cursor(next(n for n in tree.root.children if str(n.label) == context))
    tree.focus()
    await pilot.pause()


async def build_until(pilot: Pilot, predicate, clock: FrozenClock | None = None,
                      context: str = "hello") -> None:
    await session_ready(pilot, context)
    await pilot.press("f5")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, BuildScreen))
    await wait_for(pilot, lambda: predicate(pilot.app.screen), what="build state")
    if clock is not None:
        clock.now = 7.4  # the timer shows 7.4s whatever the machine's speed
    await pilot.pause(0.25)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
def test_session(snap_compare, engine, size) -> None:
    assert snap_compare(make_app(engine), terminal_size=size, run_before=session_ready)


def test_session_light_theme(snap_compare, engine) -> None:
    app = make_app(engine)

    async def light(pilot: Pilot) -> None:
        await session_ready(pilot)
        app.theme = LIGHT

    assert snap_compare(app, terminal_size=SMALL, run_before=light)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
def test_build_in_progress_with_cache_hits(snap_compare, history, size) -> None:
    engine = ReplayEngine(history, stream="warm-push", pause_after=WARM_PAUSE)
    clock = FrozenClock()

    async def run(pilot: Pilot) -> None:
        await build_until(pilot, lambda s: s.state.running == "1:4", clock)

    assert snap_compare(make_app(engine, clock=clock), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
def test_build_failed(snap_compare, history, size) -> None:
    engine = ReplayEngine(history, stream="failed-multistage")

    async def run(pilot: Pilot) -> None:
        await build_until(pilot, lambda s: s.finished, context="broken")

    assert snap_compare(make_app(engine), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
def test_build_result(snap_compare, engine, size) -> None:
    async def run(pilot: Pilot) -> None:
        await build_until(pilot, lambda s: s.finished)

    assert snap_compare(make_app(engine), terminal_size=size, run_before=run)


def test_history(snap_compare, engine, history) -> None:
    fixed_records(history)

    async def run(pilot: Pilot) -> None:
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen)
                       and pilot.app.screen.records)
        await pilot.press("down")

    assert snap_compare(make_app(engine), terminal_size=(120, 32), run_before=run)


def test_compare(snap_compare, engine) -> None:
    async def run(pilot: Pilot) -> None:
        await session_ready(pilot, "hello")
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
        await pilot.press("f5")
        screen = pilot.app.screen
        await wait_for(pilot, lambda: len(screen.bars) == 4 and not screen.running)

    assert snap_compare(make_app(engine), terminal_size=(120, 32), run_before=run)


def test_help(snap_compare, engine) -> None:
    assert snap_compare(make_app(engine), terminal_size=(100, 40), press=["f1"])
