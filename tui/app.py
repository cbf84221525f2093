"""The Textual app: screens, global keys, theme and command palette. Thin on purpose; the
screens do the work and the engine does the building."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.engine.errors import UserError
from tui.engine.request import BuildRequest, PreparedBuild
from tui.engine.session import Engine
from tui.screens.common import Reach, Services, show_error
from tui.styles_path import css_path

DARK, LIGHT = "textual-dark", "textual-light"


class BuildcageApp(App[None]):
    """``BuildcageApp(engine, start_dir)``; ``clock`` and ``reach`` are for tests."""

    TITLE = "buildcage"
    CSS_PATH = css_path("app.tcss")
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme"),
    ]

    def __init__(self, engine: Engine, start_dir: str | Path | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 reach: Reach | None = None) -> None:
        super().__init__()
        self.start_dir = Path(start_dir).expanduser() if start_dir is not None else Path.cwd()
        self.services = Services(engine=engine, clock=clock, reach=reach or engine.reach,
                                 start_dir=self.start_dir)
        self.theme = DARK

    @property
    def engine(self) -> Engine:
        return self.services.engine

    def on_mount(self) -> None:
        from tui.screens.session import SessionScreen

        self.push_screen(SessionScreen(self.services, self.start_dir))

    # -- navigation used by the screens ---------------------------------------------------------
    def start_build(self, request: BuildRequest, confirmed: bool = False) -> None:
        """Prepare the request as the CLI does (every check, the push target's registry, the
        plan files) off the UI thread, then open the build screen, or say what is wrong. A
        second request while one is being prepared is dropped (F5 pressed twice)."""
        if any(w.group == "prepare" and not w.is_finished for w in self.workers):
            return
        self._prepare_build(request, confirmed)

    @work(thread=True, group="prepare")
    def _prepare_build(self, request: BuildRequest, confirmed: bool) -> None:
        try:
            prepared = self.engine.prepare(request, confirmed=confirmed)
        except UserError as exc:
            self.call_from_thread(show_error, self, exc)
            return
        self.call_from_thread(self._open_build, prepared)

    def _open_build(self, prepared: PreparedBuild) -> None:
        from tui.screens.build import BuildScreen

        self.push_screen(BuildScreen(self.services, prepared))

    def open_compare(self, request: BuildRequest) -> None:
        from tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(self.services, request))

    def _session(self) -> Screen | None:
        from tui.screens.session import SessionScreen

        return next((s for s in self.screen_stack if isinstance(s, SessionScreen)), None)

    # -- actions --------------------------------------------------------------------------------
    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def action_history(self) -> None:
        from tui.screens.history import HistoryScreen

        if not isinstance(self.screen, HistoryScreen):
            self.push_screen(HistoryScreen(self.services))

    def action_compare(self) -> None:
        session = self._session()
        if session is not None:
            session.action_compare()  # type: ignore[attr-defined]

    def action_session(self) -> None:
        session, stack = self._session(), self.screen_stack
        if session is not None:
            for _ in range(len(stack) - 1 - stack.index(session)):
                self.pop_screen()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Session", "Back to the session screen", self.action_session)
        yield SystemCommand("History", "Past builds; r rebuilds one", self.action_history)
        yield SystemCommand("Compare profiles", "Build this context with several profiles",
                            self.action_compare)
        yield SystemCommand("Help", "Keys and profiles", self.action_help)
        yield SystemCommand("Toggle light/dark theme", "Switch between textual-dark and "
                            "textual-light", self.action_toggle_theme)


def run_app(engine: Engine, start_dir: str | Path | None = None) -> int:
    """Run the TUI until the user quits (what ``buildcage [DIR]`` does); the exit status."""
    app = BuildcageApp(engine, start_dir)
    app.run()
    return app.return_code or 0
