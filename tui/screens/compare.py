"""Build one context with several profiles, one after another, each twice: first with no cache
(cold), then again (warm if the profile kept its cache). Times side by side as bars."""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, Header, SelectionList, Static

from tui.engine.events import Done, Event, StepStarted
from tui.engine.request import BuildRequest
from tui.engine.text import visible
from tui.screens.base import BuildcageScreen
from tui.services import Services
from tui.styles_path import css_path
from tui.widgets.bar_chart import Bar, BarChart, BarKind

DEFAULT_PROFILES = ("host-ro", "isolated")


class CompareScreen(BuildcageScreen[None]):
    CSS_PATH = css_path("compare.tcss")
    BINDINGS = [
        Binding("f5", "run", "Run"),
        Binding("c", "cancel", "Cancel"),
        Binding("escape", "back", "Back"),
    ]

    class Progress(Message):
        """From the comparison worker: a status line, and the bar of a run that ended (or a
        "running" placeholder for one that starts); ``final`` when the worker is done."""

        def __init__(self, text: str, bar: Bar | None = None, final: bool = False) -> None:
            super().__init__()
            self.text, self.bar, self.final = text, bar, final

    def __init__(self, services: Services, request: BuildRequest) -> None:
        super().__init__()
        self.services = services
        # A comparison measures building, so it never pushes.
        self.request = request.with_profile(request.profile, no_cache=False, push="")
        self.bars: list[Bar] = []
        """Two per profile, in the order they ran."""
        self.running = False
        self._stop = threading.Event()
        """Set by cancel: the worker starts no further run."""
        self._runner: Any = None
        """The run in progress (set by the worker thread), for cancel."""

    def compose(self) -> ComposeResult:
        names = self.services.engine.profiles.names()
        yield Header()
        with Horizontal(id="compare-top"):
            yield SelectionList[str](*[(n, n, n in DEFAULT_PROFILES) for n in names],
                                     id="profiles", classes="panel")
            with Vertical(id="compare-info"):
                yield Static(Text(f"Context  {visible(self.request.context.name)}  "
                                  "(no push while comparing)"), id="compare-context")
                yield Static("choose profiles, then F5: each builds cold, then again",
                             id="compare-status")
        yield BarChart(id="chart")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "compare profiles"
        self.query_one("#profiles").border_title = "Profiles"

    def action_run(self) -> None:
        if self.running:
            return
        profiles = list(self.query_one(SelectionList).selected)
        if not profiles:
            self.notify("choose at least one profile", severity="warning")
            return
        self.confirm_then(profiles, lambda confirmed: self._begin(profiles, confirmed))

    def _begin(self, profiles: list[str], confirmed: bool) -> None:
        self.running = True
        self.refresh_bindings()
        self.bars = []
        self._stop.clear()
        self._compare(profiles, confirmed)

    @work(thread=True, exclusive=True, group="compare")
    def _compare(self, profiles: list[str], confirmed: bool) -> None:
        engine, post = self.services.engine, self.post_message
        for profile in profiles:
            for no_cache in (True, False):
                if self._stop.is_set():
                    post(self.Progress("canceled", final=True))
                    return
                run = "first run, no cache" if no_cache else "second run"
                post(self.Progress(f"{profile}: {run}…", Bar(profile, "running", 0.0)))
                try:
                    prepared = engine.prepare(
                        self.request.with_profile(profile, no_cache=no_cache),
                        confirmed=confirmed)

                    def sink(event: Event, profile: str = profile, run: str = run) -> None:
                        if isinstance(event, StepStarted):
                            post(self.Progress(f"{profile}: {run} · step {event.step}/"
                                               f"{event.steps} {event.instruction[:40]}"))

                    self._runner = engine.start(prepared, sink)
                    done: Done = self._runner.run()
                except Exception as exc:  # noqa: BLE001 - one profile failing ends its pair only
                    post(self.Progress(f"{profile}: {exc}", Bar(profile, "failed", 0.0, str(exc))))
                    break
                if done.status != "succeeded":
                    post(self.Progress(f"{profile}: {done.status}",
                                       Bar(profile, "failed", done.duration_s, done.status)))
                    break
                # Warm means the store kept the first run's layers, or the registry cache holds
                # them; a fresh store without one is cold again even when a later stage reuses
                # a layer of an earlier one in the same build, and so is one whose cache the
                # first run's steps said does not pay (tui.engine.cache_worth).
                kept = not no_cache and (prepared.plan.profile.keeps_cache
                                         or bool(prepared.plan.cache_repo))
                kind: BarKind = "warm" if kept else "cold"
                note = ("" if no_cache or kept else
                        "(cache off: it does not pay)" if prepared.plan.cache_note else
                        "(no cache kept)")
                post(self.Progress(f"{profile}: {done.duration_s:.1f}s",
                                   Bar(profile, kind, done.duration_s, note)))
        post(self.Progress("done · F5 runs the comparison again", final=True))

    def on_compare_screen_progress(self, message: Progress) -> None:
        bar = message.bar
        if bar is not None:
            if self.bars and self.bars[-1].kind == "running":
                self.bars.pop()  # the placeholder of the run that just ended
            self.bars.append(bar)
            self.query_one(BarChart).bars = list(self.bars)
        if message.final:
            self.running = False
            self.refresh_bindings()
            if self.bars and self.bars[-1].kind == "running":
                self.bars.pop()
                self.query_one(BarChart).bars = list(self.bars)
        # Instructions and errors are in it: shown as text, never read as markup.
        self.query_one("#compare-status", Static).update(Text(visible(message.text)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.running
        if action in ("run", "back"):
            return None if self.running else True
        return True

    def action_cancel(self) -> None:
        if self.running:
            self._stop.set()
            runner = self._runner
            if runner is not None:
                self.run_worker(runner.cancel, thread=True, group="cancel")

    def action_back(self) -> None:
        if self.running:
            self.notify("a comparison is running; c cancels it", severity="warning")
            return
        self.dismiss()

    def on_unmount(self) -> None:
        self._stop.set()
        if self.running and self._runner is not None:
            self._runner.cancel()
