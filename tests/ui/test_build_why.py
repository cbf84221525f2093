"""The build screen says why a step ran: a short reason in the step table's Why column and the
whole of it under the table for the selected step. The reasons are the engine's (its explainer
runs on the replayed stream, against the real history and a real context on disk)."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.widgets import DataTable
from ui_helpers import EXAMPLES, FrozenClock, make_app

from tests.support.replay import ReplayEngine
from tests.support.scenes import rebuilt_after_an_edit
from tui.engine.history import History
from tui.screens.build import BuildScreen
from tui.widgets.miss_detail import MissDetail
from tui.widgets.step_table import StepTable


def hello_copy(tmp_path: Path) -> Path:
    context = tmp_path / "src" / "hello"
    shutil.copytree(EXAMPLES / "hello", context)
    return context


def cell(table: DataTable, row: str, column: str) -> str:
    return str(table.get_cell(row, column))


async def test_the_step_table_says_why_each_step_ran(history: History, tmp_path: Path) -> None:
    context = hello_copy(tmp_path)
    engine = ReplayEngine(history, stream="cold-pull-push")
    app = make_app(engine, start=context.parent)
    async with app.run_test(size=(120, 36)) as pilot:
        await rebuilt_after_an_edit(
            pilot, context, lambda: (context / "greeting.txt").write_text("hi there\n"))
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        table = screen.query_one(StepTable)
        assert cell(table, "1:2", "why") == "file greeting.txt"
        assert cell(table, "1:3", "why") == "after 1:2"
        assert cell(table, "1:1", "why") == ""  # FROM never comes from cache
        detail = screen.query_one(MissDetail)
        assert detail.display
        text = detail.render().plain
        assert "Why 1:2 ran (compared with build #1)" in text
        assert "changed greeting.txt (content)" in text
        # Another step selected: its reason in full.
        await pilot.press("down")
        await pilot.pause()
        assert "an earlier step ran instead of coming from cache: step 1:2" in \
            detail.render().plain


async def test_no_detail_for_a_step_that_came_from_cache(history: History,
                                                         tmp_path: Path) -> None:
    context = hello_copy(tmp_path)
    engine = ReplayEngine(history, stream="warm-push")
    app = make_app(engine, start=context.parent, clock=FrozenClock())
    async with app.run_test(size=(120, 36)) as pilot:
        await rebuilt_after_an_edit(pilot, context, lambda: None)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert cell(screen.query_one(StepTable), "1:2", "why") == ""
        assert not screen.query_one(MissDetail).display


async def test_the_detail_waits_for_a_step_chosen_by_the_user(history: History,
                                                              tmp_path: Path) -> None:
    """While the cursor follows the build (and on the failed step it stops at), the detail
    stays hidden: the log keeps its room."""
    context = hello_copy(tmp_path)
    engine = ReplayEngine(history, stream="cold-pull-push")
    app = make_app(engine, start=context.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await rebuilt_after_an_edit(pilot, context, lambda: None)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        table = screen.query_one(StepTable)
        detail = screen.query_one(MissDetail)
        assert detail.display  # the scene selected 1:2 with the keyboard
        table.follow = True
        table.move_cursor(row=table.get_row_index("1:3"), animate=False)
        await pilot.pause()
        assert not detail.display
