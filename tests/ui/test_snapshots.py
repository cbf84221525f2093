"""Screenshots compared with the accepted ones in __snapshots__/ (pytest-textual-snapshot).

Everything on screen is fixed: recorded streams with fixed times, recorded inspect data,
history rows at fixed times in UTC, and the build timer's clock frozen. After a deliberate UI
change, review and accept with ``pytest tests/ui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox
from ui_helpers import fixed_records, make_app

from tests.support.replay import FrozenClock, ReplayEngine
from tests.support.scenes import (
    WARM_PAUSE,
    build_until,
    comparison_done,
    history_shown,
    layers_shown,
    session_ready,
    wait_for,
)
from tui.app import LIGHT
from tui.screens.confirm import ConfirmScreen

SMALL, LARGE = (80, 24), (160, 50)


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


def test_build_result_loaded(snap_compare, history) -> None:
    """Built with "load into host": where the image went, and r to run it."""
    engine = ReplayEngine(history, stream="warm-push-load")

    async def run(pilot: Pilot) -> None:
        await build_until(pilot, lambda s: s.finished)

    assert snap_compare(make_app(engine), terminal_size=SMALL, run_before=run)


def test_load_overwrite_question(snap_compare, history) -> None:
    """The host's tag names another image: asked before the build moves it."""
    engine = ReplayEngine(history, host_images={"localhost/buildcage/hello:latest": "0" * 64})

    async def run(pilot: Pilot) -> None:
        await session_ready(pilot, "hello")
        pilot.app.screen.query_one("#load", Checkbox).value = True
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
        await pilot.pause()

    assert snap_compare(make_app(engine), terminal_size=SMALL, run_before=run)


def test_history(snap_compare, engine, history) -> None:
    fixed_records(history)

    async def run(pilot: Pilot) -> None:
        await history_shown(pilot)
        await pilot.press("down")

    assert snap_compare(make_app(engine), terminal_size=(120, 32), run_before=run)


def test_compare(snap_compare, engine) -> None:
    assert snap_compare(make_app(engine), terminal_size=(120, 32), run_before=comparison_done)


def test_help(snap_compare, engine) -> None:
    assert snap_compare(make_app(engine), terminal_size=(100, 40), press=["f1"])


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
def test_build_why_a_step_ran(snap_compare, history, tmp_path, size) -> None:
    """A rebuild after greeting.txt was edited: the Why column, and the selected step's reason
    in full under the table."""
    import shutil

    from tests.support.scenes import EXAMPLES, rebuilt_after_an_edit

    context = tmp_path / "src" / "hello"
    shutil.copytree(EXAMPLES / "hello", context)
    engine = ReplayEngine(history, stream="cold-pull-push")
    clock = FrozenClock()

    async def run(pilot: Pilot) -> None:
        await rebuilt_after_an_edit(
            pilot, context, lambda: (context / "greeting.txt").write_text("hi there\n"), clock)

    app = make_app(engine, start=context.parent, clock=clock)
    assert snap_compare(app, terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
def test_layers(snap_compare, engine, size) -> None:
    assert snap_compare(make_app(engine), terminal_size=size, run_before=layers_shown)
