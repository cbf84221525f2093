"""The live build: header with timer and counts, step table, pulls/pushes, the log, and the
result or failure at the end."""

from __future__ import annotations

import sys
import termios
import threading
import time
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from tui.batching import BuildEvents, EventBatcher, LogLines
from tui.engine.errors import UserError
from tui.engine.events import Done, Failed, ImageLoaded
from tui.engine.request import PreparedBuild, Runner
from tui.engine.text import visible
from tui.messages import LayersRequested
from tui.screens.base import BuildcageScreen
from tui.services import Services, show_error
from tui.state.build_state import BuildState
from tui.styles_path import css_path
from tui.widgets.blob_progress import BlobProgress
from tui.widgets.log_view import MAX_LINES, LogView
from tui.widgets.miss_detail import MissDetail
from tui.widgets.result_panel import TAIL_LINES, FailurePanel, ResultPanel
from tui.widgets.step_table import StepTable

if TYPE_CHECKING:
    from tui.engine.debug_record import DebugRecord
    from tui.engine.debug_shell import DebugSession
    from tui.engine.load import LoadConflict

TICK_S = 0.1
RUNNER_WAIT_S = 0.2
"""The longest the runner waits for the screen to draw a batch (a frame of a million-line build
took 20-110 ms on the wall clock, profiled under load)."""
DRAWN_LATE_S = 0.5
"""A batch applied this long ago counts as drawn, whether or not its frame said so: when a
dialog covers the screen after a batch was applied, Textual hands the batch's callback to the
dialog, which kept it (seen in test_batching), and without ``handled`` no batch would come."""
VERBS = {"succeeded": "Built", "failed": "Failed", "canceled": "Canceled"}


class BuildScreen(BuildcageScreen[None]):
    CSS_PATH = css_path("build.tcss")
    BINDINGS = [
        Binding("c", "cancel", "Cancel"),
        Binding("s", "shell", "Shell"),
        Binding("l", "load", "Load into host"),
        Binding("r", "run", "Run it"),
        Binding("i", "layers", "Layers"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, services: Services, prepared: PreparedBuild) -> None:
        super().__init__()
        self.services = services
        self.prepared = prepared
        """The checked request (from ``Engine.prepare``) this screen runs with ``Engine.start``."""
        self.plan = prepared.plan
        self.on = prepared.on
        """"local" or "kube": the plan as a builder container or as its Kubernetes Pod."""
        self.state = BuildState()
        """Everything known about the build so far, folded from its events."""
        self.batcher = EventBatcher(self.post_message, keep_lines=MAX_LINES, wait_s=RUNNER_WAIT_S)
        """The runner's on_event: events cross from its thread in batches, and the runner waits
        while the screen draws one (tui.batching says why)."""
        self.canceling = False
        """Cancel was asked for (or the screen is going away); the Done will say canceled."""
        self._runner: Runner | None = None
        """Set by the worker thread once podman answered."""
        self._started = services.clock()
        self._ticker: Timer | None = None
        self._drawing: BuildEvents | None = None
        """The batch applied and not yet drawn (``_drawn`` says when it is)."""
        self._drawing_since = 0.0
        self._why_shown: tuple[str, tuple[object, ...]] | None = None
        self._header_shown = ""
        self._loading = False
        self.debug_record: DebugRecord | None = None
        """What a failed build left for a shell (tui.engine.debug_record), None otherwise."""
        self._debug: DebugSession | None = None
        """The shell being prepared or open (one at a time)."""
        self._debugging = False

    @property
    def finished(self) -> bool:
        return self.state.done is not None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="build-top"):
            yield Static(self.header_text(), id="build-header", classes="-running")
            yield ProgressBar(total=1, show_eta=False, id="progress")
        yield StepTable(id="steps")
        yield MissDetail(id="why")
        with Horizontal(id="live"):
            yield LogView(id="log")
            yield BlobProgress(id="blobs")
        with VerticalScroll(id="end"):
            yield FailurePanel(id="failure")
            yield ResultPanel(id="result")
        yield Footer()

    def on_mount(self) -> None:
        where = " · Kubernetes Pod" if self.on == "kube" else ""
        self.sub_title = visible(f"{self.plan.context.name} · {self.plan.profile.name}{where}")
        self.query_one("#end").display = False
        self.query_one(MissDetail).display = False
        self._ticker = self.set_interval(TICK_S, self._tick)
        # The build starts once the screen is drawn: its first frame (three layout passes,
        # 70-80 ms of CPU) then has the GIL to itself, not half of it (the bench's worst stall
        # 176 ms with this, 215 without, under load 4: median of 4, noisy).
        self.call_after_refresh(self._run)

    @work(thread=True, exclusive=True, group="build")
    def _run(self) -> None:
        try:
            runner = self.services.engine.start(self.prepared, self.batcher)
            self._runner = runner
            if self.canceling:
                runner.cancel()
            runner.run()
        except Exception as exc:  # noqa: BLE001 - podman down, image missing...: shown, not raised
            self.batcher(Failed(message=f"the build could not run: {exc}"))
            self.batcher(Done(status="failed"))
        finally:
            self.batcher.flush()

    def _tick(self) -> None:
        if self._drawing is not None and time.monotonic() - self._drawing_since > DRAWN_LATE_S:
            self._drawn(self._drawing)
        self.batcher.flush()
        if not self.finished:
            self._show_header()

    # -- events ---------------------------------------------------------------------------------
    def on_build_events(self, message: BuildEvents) -> None:
        try:
            self._apply(message)
        finally:
            if self.app.screen is self:
                # Once the batch is drawn, not applied: the runner, which waits for it, would
                # take the GIL from the frame (tui.batching). The next batch comes through the
                # event loop. (Not under a dialog: Textual runs the callback on the top screen,
                # and a dialog over this one kept it, seen in test_batching.)
                self._drawing, self._drawing_since = message, time.monotonic()
                self.call_after_refresh(self._drawn, message)
            else:
                self.batcher.handled()  # covered: not drawn the usual way

    def _drawn(self, message: BuildEvents) -> None:
        if self._drawing is message:  # (not a later batch's: each is handled once)
            self._drawing = None
            self.batcher.handled()

    def _apply(self, message: BuildEvents) -> None:
        if self.finished:
            return  # the final state stays as it is
        lines: list[str] = []
        dropped = 0
        changed: set[str] = set()
        apply = self.state.apply
        for event in message.events:
            if isinstance(event, LogLines):
                dropped += event.dropped
                lines += event
                continue
            changed |= apply(event)
            if isinstance(event, Done):
                break
        self.query_one(LogView).write_batch(lines, dropped=dropped)
        table = self.query_one(StepTable)
        table.sync(row for key, row in self.state.rows.items() if key in changed)
        self._show_why()
        if self.state.transfers:
            self.query_one(BlobProgress).transfers = self.state.transfers
        self._show_progress()
        if self.finished:
            self._finish()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_why()

    def _show_why(self) -> None:
        """Why the step the user selected ran, in full (the table's Why column says it in a
        few words). Not while the cursor follows the build by itself: the detail would take
        the log's room (on the failure, at 80x24) for a step nobody chose."""
        table = self.query_one(StepTable)
        row = None if table.follow else table.step_at_cursor()
        shown = None if row is None else (row.key, row.miss)
        if shown != self._why_shown:  # redrawn when it changes, not on every batch
            self._why_shown = shown
            self.query_one(MissDetail).row = row

    def _show_progress(self) -> None:
        state = self.state
        bar = self.query_one(ProgressBar)
        total = max(1, state.steps_known)
        done = state.done is not None and state.done.status == "succeeded"
        bar.update(total=total, progress=total if done else state.steps_finished)
        self._show_header()

    def _show_header(self) -> None:
        """The header line, redrawn when its text changed. Its size is fixed (build.tcss), so
        no layout: a layout pass redrew the whole screen, once per batch of a million-line build
        (half of each frame's time, profiled)."""
        text = self.header_text()
        if text != self._header_shown:
            self._header_shown = text
            self.query_one("#build-header", Static).update(text, layout=False)

    def header_text(self) -> str:
        state = self.state
        if state.done is not None:
            verb, elapsed = VERBS[state.done.status], state.done.duration_s
            if state.unchanged is not None and state.done.status == "succeeded":
                verb = "Unchanged"  # no container ran (tui.engine.unchanged)
        else:
            verb = "Canceling" if self.canceling else "Building"
            elapsed = self.services.clock() - self._started
        if state.steps_known:
            more = "" if state.all_stages_seen else "+"
            steps = f"({state.steps_finished}/{state.steps_known}{more} steps)"
        else:
            steps = "(starting)"
        return (f"{verb} {elapsed:.1f}s {steps} · {state.cache_hits} cached"
                f" · {self.plan.profile.name}")

    def _finish(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        done = self.state.done
        assert done is not None
        self.query_one("#build-header", Static).set_classes(f"-{done.status}")
        self.refresh_bindings()
        self.query_one("#end").display = True
        # A panel shows once it has the state; the other stays hidden.
        if done.status == "failed":
            failure = self.query_one(FailurePanel)
            failure.tail = self.query_one(LogView).tail(TAIL_LINES)
            self.debug_record = self.services.engine.debug_record(self.plan.build_id)
            failure.shell = self._shell_hint()
            failure.state = self.state
        else:
            self.query_one(ResultPanel).state = self.state
        # The end panel took room from the log: keep its last lines in view.
        log = self.query_one(LogView)
        self.call_after_refresh(log.scroll_end, animate=False)

    def _shell_hint(self) -> str:
        record = self.debug_record
        if record is None:
            return ""
        if record.failed.problem:
            return f"none: {record.failed.problem}"
        how = "rebuilds in a fresh store, then " if not record.base else ""
        return f"s {how}opens one in the state before this step"

    # -- actions --------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers Cancel only while running; Back is greyed out until the end; Load
        once there is an image that is not on the host yet, Run it once it is; Shell once a
        build failed in a step that a shell can open before."""
        if action == "cancel":
            return not self.finished
        if action == "back":
            return True if self.finished else None
        if action == "load":
            return self.loadable
        if action == "run":
            return self.state.loaded is not None
        if action == "layers":
            return self.has_image
        if action == "shell":
            record = self.debug_record
            return record is not None and not record.failed.problem
        return True

    @property
    def has_image(self) -> bool:
        """A finished build that made an image (whose layers ``i`` shows)."""
        state = self.state
        return state.done is not None and state.done.status == "succeeded" \
            and bool(state.image_id)

    def action_layers(self) -> None:
        if self.has_image:
            plan = self.plan
            from tui.engine.layer_reader import LayerSource

            self.post_message(LayersRequested(LayerSource(
                image=self.state.image_id, profile=plan.profile.name, project=plan.project,
                context=str(plan.context))))

    @property
    def loadable(self) -> bool:
        """A finished local build's image that is not loaded yet (a Pod's is on its node)."""
        state = self.state
        return (state.done is not None and state.done.status != "canceled"
                and bool(state.image_id) and state.loaded is None and self.on == "local")

    def action_cancel(self) -> None:
        if self.finished or self.canceling:
            return
        self.canceling = True
        self._show_header()
        runner = self._runner
        if runner is not None:
            # Stopping a real container blocks: do it off the UI thread.
            self.run_worker(runner.cancel, thread=True, group="cancel")

    def action_load(self, overwrite: bool = False) -> None:
        if self.loadable and not self._loading:
            self._loading = True
            self.notify("loading into the host's podman…", timeout=3)
            self._load(overwrite)

    @work(thread=True, exclusive=True, group="load")
    def _load(self, overwrite: bool) -> None:
        from tui.engine.load import LoadConflict  # podman-py: not imported before it is needed

        try:
            loaded = self.services.engine.load_built(self.plan, self.state.image_id,
                                                     overwrite=overwrite)
        except LoadConflict as exc:
            self.app.call_from_thread(self._ask_overwrite, exc)
        except UserError as exc:
            self.app.call_from_thread(show_error, self, exc, "Not loaded")
        except Exception as exc:  # noqa: BLE001 - podman gone, API refused: shown, not raised
            self.app.call_from_thread(show_error, self, UserError(f"{type(exc).__name__}: "
                                                                  f"{exc}"), "Not loaded")
        else:
            self.app.call_from_thread(self._loaded, loaded)
        finally:
            self._loading = False

    def _ask_overwrite(self, conflict: LoadConflict) -> None:
        from tui.screens.confirm import overwrite_question

        def answered(yes: bool | None) -> None:
            if yes:
                self.action_load(overwrite=True)

        self.app.push_screen(overwrite_question(conflict.tag, conflict.host_image_id), answered)

    def _loaded(self, loaded: ImageLoaded) -> None:
        self.state.loaded = loaded
        self.refresh_bindings()
        panel = self.query_one(ResultPanel)
        panel.state = self.state  # the result panel says where it went (and r runs it)
        self.query_one(FailurePanel).display = False

    def action_run(self) -> None:
        """Suspends the TUI and runs the loaded image on the real terminal, then comes back."""
        from tui.engine.load import run_interactive

        loaded = self.state.loaded
        if loaded is None:
            return
        argv = self.services.engine.run_argv(loaded.image_id)
        try:
            with self.app.suspend():
                clear_terminal()
                code = run_interactive(argv)
        except SuspendNotSupported:
            self.notify(visible(f"cannot hand the terminal over here; run: {' '.join(argv)}"),
                        severity="warning", markup=False)
            return
        self.notify(f"podman run exited with {code}", markup=False)

    # -- a shell where it failed (tui.engine.debug_shell) -----------------------------------------
    def action_shell(self) -> None:
        """Prepares the shell off the UI thread, then suspends the TUI for it."""
        record = self.debug_record
        if record is None or record.failed.problem or self._debugging:
            return
        self._debugging = True
        self.notify("rebuilding in a fresh store for the shell…" if not record.base
                    else "opening a shell…", timeout=4)
        self._prepare_shell(record)

    @work(thread=True, exclusive=True, group="debug")
    def _prepare_shell(self, record: DebugRecord) -> None:
        from tui.engine.debug_shell import DebugCanceled

        def note(text: str) -> None:
            self.app.call_from_thread(self.notify, visible(text), markup=False)

        session: DebugSession | None = None
        try:
            session = self.services.engine.debug(record, secrets=self.prepared.request.secrets,
                                                 build_args=self.prepared.request.build_args,
                                                 confirmed=True, on_note=note)
            self._debug = session
            session.prepare()
        except DebugCanceled:
            self._shell_closed(session, None)
            return
        except UserError as exc:
            self.app.call_from_thread(show_error, self, exc, "No shell")
            self._shell_closed(session, None)
            return
        except Exception as exc:  # noqa: BLE001 - podman down, API refused: shown, not raised
            self.app.call_from_thread(show_error, self, UserError(f"{type(exc).__name__}: "
                                                                  f"{exc}"), "No shell")
            self._shell_closed(session, None)
            return
        try:
            self.app.call_from_thread(self._open_shell, session)
        except Exception:  # noqa: BLE001 - the app is gone (quit meanwhile): clean up here
            self._shell_closed(session, None)

    def _open_shell(self, session: DebugSession) -> None:
        """On the UI thread: the TUI hands the terminal to the shell and comes back after."""
        code: int | None = None
        try:
            if not session.canceled:  # (the screen went away meanwhile)
                with self.app.suspend():
                    clear_terminal()
                    code = session.run_shell()
        except SuspendNotSupported:
            self.notify("this terminal cannot be handed over to a shell; run "
                        "`buildcage debug --last` in one", severity="warning", markup=False)
        except (OSError, termios.error):
            pass  # the terminal went away while the shell had it (a hang-up): clean up
        finally:
            # A plain thread, not a worker: the app may be ending (a hang-up came while the
            # shell ran) and cancels workers that have not started; the process waits for
            # this one before it exits.
            threading.Thread(target=self._shell_closed, args=(session, code),
                             name="debug-close").start()

    def _shell_closed(self, session: DebugSession | None, code: int | None) -> None:
        """Off the UI thread: removes what the session made, then says so."""
        left = session.close() if session is not None else []
        self._debug = None
        self._debugging = False
        try:
            if left:
                message = "could not remove: " + "; ".join(left)
                self.app.call_from_thread(self.notify, visible(message), severity="error",
                                          markup=False)
            elif code is not None:
                self.app.call_from_thread(self.notify, f"the shell ended ({code}); its "
                                                       "container is removed", markup=False)
        except Exception:  # noqa: BLE001, S110 - the app has ended (a hang-up): nobody to tell
            pass

    def action_back(self) -> None:
        if not self.finished:
            self.notify("the build is still running; c cancels it", severity="warning")
            return
        self.dismiss()

    def on_unmount(self) -> None:
        session = self._debug
        if session is not None:  # quitting (a hang-up) while a shell is prepared or open
            session.cancel()
            threading.Thread(target=session.close, name="debug-close").start()
        # Leaving (or quitting) mid-build must not leave the builder container running. The
        # flag covers a runner the worker has not made yet; it checks it once it has.
        if not self.finished:
            self.canceling = True
            if self._runner is not None:
                self._runner.cancel()


def clear_terminal() -> None:
    """A clean screen for what the TUI hands the terminal to: after a suspend the terminal
    shows whatever was on its main screen before (a shell's output from earlier, seen in a
    tmux session), above the image's own output."""
    if sys.__stdout__ is not None and sys.__stdout__.isatty():
        sys.__stdout__.write("\x1b[H\x1b[2J")
        sys.__stdout__.flush()
