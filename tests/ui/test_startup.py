"""What the TUI's start leaves to the garbage collector: ``buildcage`` freezes every object alive
once the first screen is drawn (their full collections were the longest UI stalls of a
million-line build); an app made without asking for it (every test's) freezes nothing."""

from __future__ import annotations

import gc

from ui_helpers import make_app

from tests.support.replay import ReplayEngine
from tui.app import BuildcageApp, run_app


async def test_the_command_freezes_what_its_start_made_and_tests_do_not(history) -> None:
    gc.unfreeze()
    try:
        plain = make_app(ReplayEngine(history))
        async with plain.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.pause()
        assert gc.get_freeze_count() == 0
        app = make_app(ReplayEngine(history))
        app.freeze_startup = True
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.pause()
            assert gc.get_freeze_count() > 10_000  # the app, its screen, Textual's modules
    finally:
        gc.unfreeze()  # the tests' apps must stay collectable


def test_run_app_asks_for_it(history, monkeypatch) -> None:
    asked: list[bool] = []
    monkeypatch.setattr(BuildcageApp, "run", lambda self, *a, **k: asked.append(
        self.freeze_startup))
    assert run_app(ReplayEngine(history)) == 0
    assert asked == [True]
