"""The Textual app: screens, global keys, theme and command palette. Thin on purpose; the
screens do the work and the engine does the building."""

from __future__ import annotations

import asyncio
import gc
import signal
import termios
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.screen import Screen

from tui.engine.errors import UserError
from tui.engine.request import BuildRequest, PreparedBuild
from tui.engine.session import Engine
from tui.engine.signals import take_over
from tui.engine.text import visible
from tui.interrupts import APP_SIGNALS, Interrupts, detach_from_terminal
from tui.messages import BuildRequested, CompareAsked, CompareRequested, LayersRequested
from tui.services import Reach, Services, show_error
from tui.styles_path import css_path, widget_sheets

if TYPE_CHECKING:  # imported at run time inside _session, like the other screens
    from tui.engine.load import LoadConflict
    from tui.screens.session import SessionScreen

DARK, LIGHT = "textual-dark", "textual-light"

RUN_GC_THRESHOLDS = (20_000, 20, 10)
"""The collector's thresholds once the app is drawn (Python's are 700, 10, 10). A frame makes
thousands of short-lived tracked objects (each Textual ``Strip`` holds seven caches); with a
young collection every 700 of them, those a cache still held were promoted, and a million-line
build set off 4 full collections of 25-38 ms each, in the middle of a frame (the worst stalls
left). With these: 0 in that build (1 with 7000, 10, 10), the same peak RSS (68-70 MB), and its
worst stall 63 ms against 91 (bench/micro.py, median of 3 each, interleaved, load 1.5; 86
against 96 at load 3.3, median of 4)."""


def settle_collector() -> None:
    """What the app does once its first screen is drawn, when ``freeze_startup``: what is alive
    then is frozen (``BuildcageApp.freeze_startup`` says why), and the young generations grow
    (``RUN_GC_THRESHOLDS``)."""
    gc.freeze()
    gc.set_threshold(*RUN_GC_THRESHOLDS)


class BuildcageApp(App[None]):
    """``BuildcageApp(engine, start_dir)``; ``clock`` and ``reach`` are for tests.

    With ``interrupts`` (what ``main`` installed first thing), SIGHUP and SIGTERM end the app
    the clean way: running builds are canceled and cleaned up before the process exits."""

    TITLE = "buildcage"
    CSS_PATH = [css_path("app.tcss"), *widget_sheets(), css_path("build.tcss")]
    """The shared recipes, then each widget's own sheet; screens add their layout. The build
    screen's is read at the start too (its rules all begin with ``BuildScreen``): read when the
    first build screen opened, Textual parsed every sheet again and restyled every widget on the
    event loop (up to 40% of a 94-138 ms stall at F5, sampled during a million-line build; the
    bench's worst stall 176 ms with it, 206 without under load 4: median of 4, noisy)."""
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme"),
    ]

    def __init__(self, engine: Engine, start_dir: str | Path | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 reach: Reach | None = None, interrupts: Interrupts | None = None,
                 freeze_startup: bool = False) -> None:
        super().__init__()
        self.interrupts = interrupts
        self.freeze_startup = freeze_startup
        """Once the first screen is drawn, move every object alive then (modules, classes,
        stylesheets, the first screen: most of the ~110,000 the garbage collector tracks) out of
        its reach, ``gc.freeze()``. Its full collections then walk only what came later: during
        a million-line build they were the UI's longest stalls (70-174 ms each under load 4.6,
        4 of them). What is frozen is never collected, so the command does it once per process
        (``run_app``); the tests, which start hundreds of apps in one process, do not. The
        collector's thresholds are raised then too (``settle_collector``)."""
        self.hung_up: int | None = None
        """The signal that ended the app, if one did."""
        self.start_dir = Path(start_dir).expanduser() if start_dir is not None else Path.cwd()
        self.services = Services(engine=engine, clock=clock, reach=reach or engine.reach,
                                 start_dir=self.start_dir)
        self.theme = DARK

    @property
    def engine(self) -> Engine:
        return self.services.engine

    def on_mount(self) -> None:
        from tui.screens.session import SessionScreen

        if self.interrupts is not None:
            loop = asyncio.get_running_loop()

            def on_signal(signum: int, frame: FrameType | None) -> None:
                if signum == signal.SIGHUP:
                    detach_from_terminal()  # at once: the terminal is gone already
                loop.call_soon_threadsafe(self.hang_up, signum)

            for sig in APP_SIGNALS:
                take_over(sig, on_signal)  # (nohup's SIGHUP stays ignored)
            if self.interrupts.received is not None:  # came while the app was starting
                self.hang_up(self.interrupts.received)
                return
        self.push_screen(SessionScreen(self.services, self.start_dir))
        if self.freeze_startup:
            self.call_after_refresh(settle_collector)

    def hang_up(self, signum: int) -> None:
        """SIGHUP or SIGTERM: leave like quitting does. Each build screen cancels its build as
        it goes away, and the process waits for the build threads, so builders, pins and
        stores are removed before it exits."""
        if self.hung_up is not None:
            return
        self.hung_up = signum
        self.exit(return_code=130)

    def on_unmount(self) -> None:
        if self.interrupts is not None:
            for sig in APP_SIGNALS:
                # Builds may still be cleaning up: another signal must not cut that short.
                take_over(sig, self.interrupts.handle)

    def get_driver_class(self) -> type[Driver]:
        base = super().get_driver_class()
        return _survives_hangup(base) if issubclass(base, LinuxDriver) else base

    # -- what the screens ask for (tui.messages) -------------------------------------------------
    @on(BuildRequested)
    def start_build(self, message: BuildRequested) -> None:
        """Prepare the request as the CLI does (every check, the push target's registry, the
        plan files) off the UI thread, then open the build screen, or say what is wrong. A
        second request while one is being prepared is dropped (F5 pressed twice)."""
        if any(w.group == "prepare" and not w.is_finished for w in self.workers):
            return
        self._prepare_build(message.request, message.confirmed)

    @work(thread=True, group="prepare")
    def _prepare_build(self, request: BuildRequest, confirmed: bool) -> None:
        from tui.engine.load import LoadConflict

        try:
            prepared = self.engine.prepare(request, confirmed=confirmed)
        except LoadConflict as exc:  # the CLI's --load-overwrite, as a question
            self.call_from_thread(self._ask_overwrite, request, confirmed, exc)
            return
        except UserError as exc:
            self.call_from_thread(show_error, self, exc)
            return
        # Imported here, on this thread: importing the screen's modules took 22-32 ms of the
        # event loop when F5 opened the first build screen.
        import tui.screens.build  # noqa: F401

        self.call_from_thread(self._open_build, prepared)

    def _ask_overwrite(self, request: BuildRequest, confirmed: bool, conflict: LoadConflict
                       ) -> None:
        from dataclasses import replace

        from tui.screens.confirm import overwrite_question

        def answered(yes: bool | None) -> None:
            if yes:
                self._prepare_build(replace(request, load_overwrite=True), confirmed)
            else:
                self.notify(visible(f"not started: {conflict.tag} stays as it is on the host"),
                            severity="warning", markup=False)

        self.push_screen(overwrite_question(conflict.tag, conflict.host_image_id), answered)

    def _open_build(self, prepared: PreparedBuild) -> None:
        from tui.screens.build import BuildScreen

        self.push_screen(BuildScreen(self.services, prepared))

    @on(CompareRequested)
    def open_compare(self, message: CompareRequested) -> None:
        from tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(self.services, message.request))

    @on(LayersRequested)
    def open_layers(self, message: LayersRequested) -> None:
        from tui.screens.layers import LayersScreen

        self.push_screen(LayersScreen(self.services, message.source))

    def _session(self) -> SessionScreen | None:
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
            session.post_message(CompareAsked())

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


class _DropsWritesAfterHangup:
    """The terminal as the driver writes it: after a hang-up a write fails (EIO); Textual's
    writer thread would die of it, and its full queue then block the app's shutdown for good
    (seen here: the builds were cleaned up, the process never exited). Dropped instead."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file

    def write(self, text: str) -> int:
        try:
            return self._file.write(text)
        except OSError:
            return 0

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def _survives_hangup(base: type[LinuxDriver]) -> type[Driver]:
    class HangupSafeDriver(base):  # type: ignore[valid-type, misc]  # mypy takes no parameter as a base class
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Any: the base is a parameter, so mypy does not see LinuxDriver's _file (an IO[str])
            self._file: Any = _DropsWritesAfterHangup(self._file)

        def _sigcont_application(self, *args: Any) -> None:
            # A hang-up comes with SIGCONT: there is no terminal to resume into.
            try:
                termios.tcgetattr(self.fileno)
            except termios.error:
                return
            super()._sigcont_application(*args)

    return HangupSafeDriver


def run_app(engine: Engine, start_dir: str | Path | None = None,
            interrupts: Interrupts | None = None) -> int:
    """Run the TUI until the user quits (what ``buildcage [DIR]`` does); the exit status."""
    app = BuildcageApp(engine, start_dir, interrupts=interrupts or Interrupts(),
                       freeze_startup=True)
    try:
        app.run()
    finally:
        try:
            engine.end_sessions()  # the session builders its builds ran in, but busy ones
        except Exception:  # noqa: BLE001, S110 - podman gone: the next build's sweep takes them
            pass
    return app.return_code or 0
