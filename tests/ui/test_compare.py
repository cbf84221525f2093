"""The comparison runs each chosen profile cold, then again, in one worker, and draws bars."""

from __future__ import annotations

from textual.widgets import SelectionList
from ui_helpers import make_app, pick_context, wait_for

from tests.support.replay import ReplayEngine
from tui.engine.config import Config
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmScreen
from tui.widgets.bar_chart import BarChart, bar_cells


async def open_compare(pilot) -> CompareScreen:
    await pick_context(pilot, "hello")
    pilot.app.screen.query_one("#push").value = "127.0.0.1:5000/demo/hello:x"
    await pilot.press("f4")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
    return pilot.app.screen


async def test_two_profiles_cold_then_warm_as_bars(engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(pilot)
        assert list(screen.query_one(SelectionList).selected) == ["host-ro", "isolated"]
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(screen.bars) == 4 and not screen.running)
        bars = [(b.group, b.kind, b.value) for b in screen.bars]
        # host-ro keeps its cache: its second run is warm. isolated's registry cache does not
        # pay for examples/hello (one RUN step of 0.7 s in the recorded cold run, less than
        # its images cost: tui.engine.cache_worth), so its second run is cold again, and says
        # why.
        assert bars == [("host-ro", "cold", 10.15), ("host-ro", "warm", 2.9),
                        ("isolated", "cold", 10.15), ("isolated", "cold", 10.15)]
        assert screen.bars[3].note == "(cache off: it does not pay)"
        plans = [r.plan for r in engine.runners]
        assert [(p.profile.name, p.no_cache) for p in plans] == [
            ("host-ro", True), ("host-ro", False), ("isolated", True), ("isolated", False)]
        assert all(p.push == "" for p in plans)  # a comparison never pushes
        text = screen.query_one(BarChart).render().plain
        assert "host-ro   cold" in text and "warm" in text and "█" in text


async def test_a_fresh_store_warm_through_its_registry_cache(history) -> None:
    """A profile that uses its cache even where it does not pay: the second run is warm
    (the replay's registry answers)."""
    config = Config(profiles={"always": {"base": "isolated", "registry_cache_always": True}})
    engine = ReplayEngine(history, config=config)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(pilot)
        choices = screen.query_one(SelectionList)
        choices.deselect("isolated")
        choices.deselect("host-ro")
        choices.select("always")
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(screen.bars) == 2 and not screen.running)
        assert [(b.group, b.kind, b.value, b.note) for b in screen.bars] == [
            ("always", "cold", 10.15, ""), ("always", "warm", 2.9, "")]


async def test_a_fresh_store_without_a_registry_cache_is_cold_again(history) -> None:
    engine = ReplayEngine(history, config=Config(registries={}))
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(screen.bars) == 4 and not screen.running)
        assert [(b.group, b.kind) for b in screen.bars][2:] == [("isolated", "cold")] * 2
        assert screen.bars[3].note == "(no cache kept)"
        assert "(no cache kept)" in screen.query_one(BarChart).render().plain


async def test_host_rw_in_a_comparison_asks_first(history) -> None:
    engine = ReplayEngine(history)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(pilot)
        screen.query_one(SelectionList).select("host-rw")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen and engine.runners == [] and not screen.running


async def test_cancel_stops_the_comparison(history) -> None:
    engine = ReplayEngine(history, pause_after=5)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(engine.runners) == 1)
        await pilot.press("c")
        await wait_for(pilot, lambda: not screen.running)
        assert len(engine.runners) == 1
        assert [b.kind for b in screen.bars] == ["failed"]


def test_bar_cells_scale_to_the_longest() -> None:
    assert bar_cells(10, 10, 20) == "█" * 20
    assert bar_cells(5, 10, 20) == "█" * 10
    assert bar_cells(1, 10, 4) == "▍"  # 3.2 eighths of a cell round to 3
    assert bar_cells(0, 10, 20) == ""
