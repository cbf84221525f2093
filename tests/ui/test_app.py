"""App-wide: help, theme toggle, command palette, styles from the package, no podman needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ui_helpers import ROOT, make_app, wait_for

from tui.app import DARK, LIGHT
from tui.screens.compare import CompareScreen
from tui.screens.help import HelpScreen
from tui.screens.history import HistoryScreen
from tui.styles_path import styles_dir


async def test_help_opens_with_f1_and_question_mark(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)


async def test_ctrl_t_toggles_light_and_dark(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        assert app.theme == DARK
        await pilot.press("ctrl+t")
        assert app.theme == LIGHT
        assert app.current_theme.dark is False
        await pilot.press("ctrl+t")
        assert app.theme == DARK


async def test_footer_shows_the_keys(engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        keys = {b.key for _, b, enabled, _ in app.screen.active_bindings.values() if b.show}
        assert {"f5", "f2", "f3", "f4", "f1", "ctrl+t"} <= keys


async def test_command_palette_has_the_screens(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"History", "Compare profiles", "Help", "Session",
                "Toggle light/dark theme"} <= titles
        await pilot.press("ctrl+p")
        await pilot.press(*"history", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.pause(0.1)
        app.action_session()
        await pilot.pause()
        app.screen.select_context(ROOT / "examples" / "hello")
        next(c for c in app.get_system_commands(app.screen)
             if c.title == "Compare profiles").callback()
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.pause(0.1)


def test_styles_come_from_one_directory_with_every_sheet() -> None:
    directory = styles_dir()
    assert directory == ROOT / "styles"  # a source checkout: tui.styles is not importable
    for name in ("app", "session", "build", "history", "compare", "help", "plan_view",
                 "confirm"):
        assert (directory / f"{name}.tcss").is_file()


def test_app_imports_without_podman() -> None:
    code = ("import sys, tui.app, tui.screens.session, tui.screens.build; "
            "print('podman' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_inline_css_outside_styles() -> None:
    """All styling lives in styles/*.tcss."""
    for path in Path(ROOT / "tui").rglob("*.py"):
        if "engine" in path.parts:
            continue
        text = path.read_text()
        assert "DEFAULT_CSS" not in text and "\n    CSS = " not in text, path


async def test_theme_change_restyles_the_step_statuses(history) -> None:
    from ui_helpers import pick_context

    from tests.support.replay import ReplayEngine
    from tui.screens.build import BuildScreen

    app = make_app(ReplayEngine(history, stream="failed-multistage"))
    async with app.run_test(size=(100, 32)) as pilot:
        await pick_context(pilot, "broken")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen) and app.screen.finished)
        table = app.screen.query_one("#steps")
        dark = table.get_cell("2:4", "status").style
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: table.get_cell("2:4", "status").style != dark,
                       what="restyled cell")


def test_cli_entry_point_exists() -> None:
    """tui/cli.py launches the TUI with ``run_app(engine, start_dir, interrupts)`` (the signal
    handlers main installed first thing; the app takes SIGHUP/SIGTERM over once it runs)."""
    import inspect

    from tui.app import run_app

    assert list(inspect.signature(run_app).parameters) == ["engine", "start_dir", "interrupts"]


async def test_real_engine_with_podman_down_shows_errors_not_tracebacks(history, tmp_path) -> None:
    """The real Engine, pointed at a socket nobody listens on: the card and the build screen
    say so (nothing is created, so this needs no podman)."""
    from ui_helpers import pick_context

    from tui.engine.config import Config
    from tui.engine.session import Engine
    from tui.screens.build import BuildScreen
    from tui.widgets.result_panel import FailurePanel
    from tui.widgets.summary_card import SummaryCard

    engine = Engine(Config(podman_url=f"unix://{tmp_path}/none.sock"), history=history)
    app = make_app(engine)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        card = app.screen.query_one(SummaryCard)
        assert card.error and "podman API service does not answer" in card.render().plain
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen) and app.screen.finished)
        text = app.screen.query_one(FailurePanel).render().plain
        assert "the build could not run: podman API service does not answer" in text
