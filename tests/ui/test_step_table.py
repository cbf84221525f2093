"""The step table's layout depends on the build's state, not on how its events were batched."""

from __future__ import annotations

from dataclasses import replace

from textual.app import App, ComposeResult
from textual.widgets.data_table import ColumnKey

from tui.state.build_state import StepRow, StepStatus
from tui.widgets.step_table import StepTable


class TableApp(App[None]):
    CSS = "StepTable { scrollbar-size-horizontal: 0; }"  # as on the build screen

    def compose(self) -> ComposeResult:
        yield StepTable()


def rows(live: int, status: StepStatus = "running", count: int = 12) -> list[StepRow]:
    """COUNT steps: done up to LIVE (1-based), LIVE in STATUS, queued after it."""
    def state(step: int) -> StepStatus:
        return "done" if step < live else status if step == live else "queued"
    return [StepRow(stage=1, stages=1, step=step, steps=count, status=state(step),
                    instruction=f"RUN step {step}") for step in range(1, count + 1)]


async def test_the_live_step_is_on_the_last_line_whatever_height_the_table_had() -> None:
    # The table grows with its rows. A scroll made while it was short stayed once it grew
    # (DataTable scrolls "just enough"), so where the failed step ended depended on timing.
    app = TableApp()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(StepTable)
        table.styles.height = 3  # the header and two rows
        table.sync(rows(live=9))
        await pilot.pause()
        await pilot.pause()
        assert table.cursor_row == 8
        assert table.scroll_y == 7  # rows 8 and 9 shown
        table.styles.height = 7  # six rows
        await pilot.pause()
        await pilot.pause()
        assert table.scroll_y == 3  # rows 4 to 9: the live one last


async def test_a_step_the_user_chose_stays_where_the_user_put_it() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(StepTable)
        table.styles.height = 7
        table.sync(rows(live=9))
        await pilot.pause()
        table.focus()
        await pilot.press("up", "up", "up", "up", "up", "up")
        assert table.cursor_row == 2 and not table.follow
        table.sync(rows(live=10))
        await pilot.pause()
        await pilot.pause()
        assert table.cursor_row == 2
        assert table.scroll_y == 2


async def test_the_status_column_keeps_its_width_from_start_to_end() -> None:
    # Measured from the rows, its width depended on which states were drawn, and the order in
    # which Textual measured a batch's cells (a set): the snapshot of a failed build shifted
    # by a column now and then.
    queued = rows(live=0)
    ended = [replace(row, status="skipped") if row.status == "queued" else row
             for row in rows(live=3, status="failed")]
    app = TableApp()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(StepTable)
        widths = []
        for state in (queued, ended):
            table.sync(state)
            await pilot.pause()
            await pilot.pause()  # drawn: its columns measured
            widths.append(table.columns[ColumnKey("status")].get_render_width(table))
    assert widths[0] == widths[1]
