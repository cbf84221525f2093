"""Scripted walks through the app on recorded data, shared by the snapshot tests and
``scripts/screenshots.py`` so that the pictures and the accepted snapshots show the same states.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tests.support.replay import FrozenClock
from tui.screens.build import BuildScreen
from tui.screens.compare import CompareScreen
from tui.screens.history import HistoryScreen
from tui.screens.session import SessionScreen
from tui.widgets.context_tree import ContextTree
from tui.widgets.summary_card import SummaryCard

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WARM_PAUSE = 18
"""Events of warm-push.jsonl up to step 4 starting: two steps cached, the last one running."""


async def wait_for(pilot: Pilot, predicate: Callable[[], object], timeout: float = 30.0,
                   what: str = "condition") -> None:
    """Let the app run until ``predicate()`` is true (workers and timers are real). The
    timeout is a liveness bound, not a timing: the UI tests run beside the integration tests
    (scripts/test), on a machine that is then fully loaded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def pick_context(pilot: Pilot, name: str) -> None:
    """Select examples/NAME as the context and wait for its summary card."""
    screen = pilot.app.screen
    assert isinstance(screen, SessionScreen)
    screen.select_context(EXAMPLES / name)
    card = screen.query_one(SummaryCard)
    await wait_for(pilot, lambda: card.summary is not None or card.error, what="summary card")


async def session_ready(pilot: Pilot, context: str = "multistage") -> None:
    """The session screen with examples/CONTEXT chosen, its card filled and the tree focused."""
    tree = pilot.app.screen.query_one(ContextTree)
    await wait_for(pilot, lambda: len(tree.root.children) == 3, what="tree")
    await pick_context(pilot, context)
    tree.move_cursor(next(n for n in tree.root.children if str(n.label) == context))
    tree.focus()
    await pilot.pause()


async def build_until(pilot: Pilot, predicate: Callable[[BuildScreen], object],
                      clock: FrozenClock | None = None, context: str = "hello") -> None:
    """Start a build of examples/CONTEXT and run until ``predicate(build_screen)``."""
    await session_ready(pilot, context)
    await pilot.press("f5")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, BuildScreen))
    await wait_for(pilot, lambda: isinstance(screen := pilot.app.screen, BuildScreen)
                   and predicate(screen), what="build state")
    if clock is not None:
        clock.now = 7.4  # the timer shows 7.4s whatever the machine's speed
    await pilot.pause(0.25)


async def history_shown(pilot: Pilot) -> None:
    await pilot.press("f3")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen)
                   and pilot.app.screen.records)


async def comparison_done(pilot: Pilot) -> None:
    """hello compared across the preselected profiles, cold then again."""
    await session_ready(pilot, "hello")
    await pilot.press("f4")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
    await pilot.press("f5")
    screen = pilot.app.screen
    assert isinstance(screen, CompareScreen)
    await wait_for(pilot, lambda: len(screen.bars) == 4 and not screen.running)


async def rebuilt_after_an_edit(pilot: Pilot, context: Path, edit: Callable[[], None],
                                clock: FrozenClock | None = None) -> None:
    """Build ``context``, go back, ``edit()`` it, build it again, and select the first step
    that ran: the step table's Why column and the detail under it say why."""
    from tui.widgets.step_table import StepTable

    async def one_build() -> BuildScreen:
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, BuildScreen)
                       and pilot.app.screen.finished, what="build")
        screen = pilot.app.screen
        assert isinstance(screen, BuildScreen)
        return screen

    session = pilot.app.screen
    assert isinstance(session, SessionScreen)
    session.select_context(context)
    card = session.query_one(SummaryCard)
    await wait_for(pilot, lambda: card.summary is not None or card.error, what="summary card")
    await one_build()
    await pilot.press("escape")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionScreen))
    edit()
    screen = await one_build()
    table = screen.query_one(StepTable)
    table.focus()
    target = table.get_row_index("1:2")
    while table.cursor_row != target:  # as a person would select it
        await pilot.press("up" if table.cursor_row > target else "down")
    if clock is not None:
        clock.now = 7.4
    await pilot.pause(0.25)


async def layers_shown(pilot: Pilot) -> None:
    """hello built (warm-push), then its layers from the result (the recorded report)."""
    from tui.screens.layers import LayersScreen

    await build_until(pilot, lambda s: s.finished)
    await pilot.press("i")
    await wait_for(pilot, lambda: isinstance(screen := pilot.app.screen, LayersScreen)
                   and screen.report is not None, what="layers")
    await pilot.pause(0.25)
