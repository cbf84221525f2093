"""What the TUI's start leaves to the garbage collector: ``buildcage`` freezes every object alive
once the first screen is drawn (their full collections were the longest UI stalls of a
million-line build) and raises the collector's thresholds; an app made without asking for it
(every test's) does neither. And what the first build screen would do on the event loop when F5
opens it (read its stylesheet), the start did already."""

from __future__ import annotations

import gc

from ui_helpers import make_app

from tests.support.replay import ReplayEngine
from tui.app import RUN_GC_THRESHOLDS, BuildcageApp, run_app


async def test_the_command_freezes_what_its_start_made_and_tests_do_not(history) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        plain = make_app(ReplayEngine(history))
        async with plain.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.pause()
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == thresholds
        app = make_app(ReplayEngine(history))
        app.freeze_startup = True
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.pause()
            assert gc.get_freeze_count() > 10_000  # the app, its screen, Textual's modules
            assert gc.get_threshold() == RUN_GC_THRESHOLDS
    finally:
        gc.unfreeze()  # the tests' apps must stay collectable
        gc.set_threshold(*thresholds)


def test_run_app_asks_for_it(history, monkeypatch) -> None:
    asked: list[bool] = []
    monkeypatch.setattr(BuildcageApp, "run", lambda self, *a, **k: asked.append(
        self.freeze_startup))
    assert run_app(ReplayEngine(history)) == 0
    assert asked == [True]


async def test_the_first_build_screen_reads_no_stylesheet(history, monkeypatch) -> None:
    """Reading a screen's sheet when it first opens makes Textual parse every sheet again and
    restyle every widget, on the event loop: the build screen's is read at the start."""
    from textual.css.stylesheet import Stylesheet
    from ui_helpers import build_to_done

    app = make_app(ReplayEngine(history))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        reparsed: list[object] = []
        reparse = Stylesheet.reparse
        monkeypatch.setattr(Stylesheet, "reparse",
                            lambda self: (reparsed.append(self), reparse(self))[1])
        screen = await build_to_done(pilot)
        assert screen.query_one("#build-header").styles.height is not None
        assert screen.query_one("#progress").outer_size.width == 30  # (build.tcss applies)
    assert reparsed == []
