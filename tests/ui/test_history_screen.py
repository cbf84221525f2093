"""The history screen lists builds from the real History; r rebuilds with the same settings."""

from __future__ import annotations

from textual.widgets import DataTable, Static
from ui_helpers import EXAMPLES, fixed_records, make_app, wait_for

from tests.support.replay import ReplayEngine
from tui.engine.history import BuildRecord
from tui.screens.build import BuildScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.history import HistoryScreen, describe


async def open_history(pilot) -> HistoryScreen:
    await pilot.press("f3")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen))
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.records, what="records loaded")
    return screen


async def test_history_lists_records_newest_first(engine, history) -> None:
    fixed_records(history)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_history(pilot)
        table = screen.query_one(DataTable)
        assert table.row_count == 5
        # Cells are Text (never read as markup): compare their plain text.
        first = [str(cell) for cell in table.get_row_at(0)]
        assert first[0] == "2025-11-29 07:46"  # UTC, from the fixed records
        assert first[1:5] == ["host-ro", "✓ succeeded", "2.8s", "3/4 warm"]
        assert str(table.get_row_at(2)[2]) == "✗ failed"
        assert str(table.get_row_at(4)[4]) == "0/4 cold"
        detail = str(screen.query_one("#detail", Static).render())
        assert "● cached" in detail and "COPY greeting.txt /greeting.txt" in detail


async def test_r_rebuilds_the_selected_build_with_its_settings(engine, history) -> None:
    fixed_records(history)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_history(pilot)
        await pilot.press("r")  # the newest: host-ro on examples/hello
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
        plan = app.screen.plan
        assert plan.profile.name == "host-ro"
        assert plan.context == (EXAMPLES / "hello").resolve()
        assert plan.tag == "localhost/buildcage/hello:latest"
        await wait_for(pilot, lambda: app.screen.finished)
        await pilot.press("escape")
        # Back on the history screen, the rebuild is listed too.
        await wait_for(pilot, lambda: len(app.screen.records) == 6)


async def test_rebuild_of_a_missing_context_says_why(engine, history) -> None:
    fixed_records(history)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_history(pilot)
        await pilot.press("down", "r")  # /srv/src/multistage does not exist here
        await pilot.pause()
        assert app.screen is screen
        assert any("does not exist" in n.message for n in app._notifications)  # noqa: SLF001 - Textual has no public list of notifications


async def test_rebuild_of_host_rw_asks_first(history) -> None:
    engine = ReplayEngine(history)
    fixed_records(history)
    history.add(history.recent()[0].__class__(
        started_at=1_764_500_000.0, profile="host-rw", context=str(EXAMPLES / "hello"),
        status="succeeded", duration_s=1.0))
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_history(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, HistoryScreen)
        assert engine.runners == []


async def test_a_build_with_a_secret_looking_argument_is_not_rebuilt_without_it(history) -> None:
    """History kept no value for TOKEN (an HMAC): the detail says so, and r refuses to build
    with something else in its place."""
    engine = ReplayEngine(history)
    history.add(BuildRecord(started_at=1_764_600_000.0, profile="host-ro",
                            context=str(EXAMPLES / "hello"), status="succeeded", duration_s=1.0,
                            build_args={"TOKEN": "hunter2", "GREETING": "hi"}))
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_history(pilot)
        await pilot.press("r")
        await pilot.pause()
        assert app.screen is screen and engine.runners == []
        assert any("TOKEN" in n.message and "looked like a secret" in n.message
                   for n in app._notifications)  # noqa: SLF001 - Textual has no public list of notifications
        detail = describe(screen.records[0], screen.records[0].context)
        assert "TOKEN=(secret: not kept)" in detail and "GREETING=hi" in detail
        assert "hunter2" not in detail


async def test_an_unchanged_build_is_listed_as_one(engine, history) -> None:
    history.add(BuildRecord(started_at=1_764_600_000.0, profile="host-ro",
                            context=str(EXAMPLES / "hello"), status="succeeded",
                            duration_s=0.02, steps_total=4, cache_hits=3, unchanged=True))
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_history(pilot)
        assert str(screen.query_one(DataTable).get_row_at(0)[4]) == "3/4 unchanged"
